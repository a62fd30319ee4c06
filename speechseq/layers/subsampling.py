"""Convolutional front-end subsampling of feature frames by 4 or 8.

kinds:
- ``conv2d``: stacked 3x3 stride-2 Conv2d + ReLU (the classic Conformer/ESPnet front end), no padding:
  each stage maps T -> (T - 1) // 2.
- ``dw_striding``: FastConformer-style: a full 3x3 stride-2 Conv2d, then depthwise-separable stride-2 stages
  (depthwise 3x3 + pointwise 1x1 + ReLU), padding 1: each stage maps T -> (T - 1) // 2 + 1. Far cheaper at x8.
Frames beyond each item's length are zeroed after every stage so batched and single results agree.
Dims: B batch, T frames, F feature bins, C channels, D model width.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechseq.layers.masks import valid_mask


class Subsampling(nn.Module):
    def __init__(self, num_features: int, d_model: int, factor: int = 4,
                 kind: Literal["conv2d", "dw_striding"] = "conv2d", channels: int = 0):
        super().__init__()
        if factor not in (2, 4, 8):
            raise ValueError(f"subsampling factor must be 2, 4 or 8, got {factor}")
        self.factor, self.kind = factor, kind
        channels = channels or d_model
        stages = int(math.log2(factor))
        self.pad = 0 if kind == "conv2d" else 1
        convs: list[nn.Module] = [nn.Conv2d(1, channels, 3, 2, self.pad)]
        for _ in range(stages - 1):
            if kind == "conv2d":
                convs.append(nn.Conv2d(channels, channels, 3, 2, 0))
            else:
                convs.append(nn.Sequential(nn.Conv2d(channels, channels, 3, 2, 1, groups=channels),
                                           nn.Conv2d(channels, channels, 1)))
        self.convs = nn.ModuleList(convs)
        freq = num_features
        for _ in range(stages):
            freq = self._stage_len(freq)
        if freq < 1:
            raise ValueError(f"{num_features} feature bins are too few for subsampling x{factor}")
        self.out = nn.Linear(channels * freq, d_model)

    def _stage_len(self, n: int) -> int:
        return (n - 1) // 2 if self.pad == 0 else (n - 1) // 2 + 1

    def output_lens(self, lens: Tensor) -> Tensor:
        """(B,) input frame counts -> (B,) output frame counts (clamped at 0)."""
        for _ in self.convs:
            lens = torch.div(lens - 1, 2, rounding_mode="floor") + (0 if self.pad == 0 else 1)
        return lens.clamp(min=0)

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, F), (B,) -> (B, T', D), (B,)."""
        x = feats[:, None]  # (B, 1, T, F)
        lens = feat_lens
        # every masking multiply is skipped where no item has padding (a lone utterance): a pass over the
        # (B, C, T, F) activations each (the first stage's output is 20 MB for 10 s at 256 channels)
        if not bool((lens >= x.shape[2]).all()):
            x = x * valid_mask(lens, x.shape[2])[:, None, :, None].to(x.dtype)
        # channels-last activations and weights: oneDNN's depthwise and single-input-channel convolutions are 3-10x
        # faster in NHWC than in NCHW on the CPU (a training step of the small synth_en model: -15%). `.to` rather
        # than `.contiguous`, which leaves a size-1 channel dimension's strides as they are.
        x = x.to(memory_format=torch.channels_last)
        for conv in self.convs:
            for layer in (conv if isinstance(conv, nn.Sequential) else [conv]):
                x = F.conv2d(x, layer.weight.to(memory_format=torch.channels_last), layer.bias, layer.stride,
                             layer.padding, layer.dilation, layer.groups)
            lens = torch.div(lens - 1, 2, rounding_mode="floor") + (0 if self.pad == 0 else 1)
            if not bool((lens >= x.shape[2]).all()):
                valid = valid_mask(lens, x.shape[2])
                # in place on the conv output, which autograd does not keep: relu(x * valid) == relu(x) * valid
                x = x.mul_(valid[:, None, :, None].to(x.dtype))
            x = torch.relu_(x)
        b, c, t, f = x.shape
        return self.out(x.transpose(1, 2).reshape(b, t, c * f)), lens.clamp(min=0)
