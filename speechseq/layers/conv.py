"""Conformer convolution module: pointwise -> GLU -> depthwise conv -> norm -> SiLU -> pointwise.

The depthwise conv pads symmetrically (offline) or only on the left (``causal=True``, what streaming needs). Padded
frames are zeroed before the depthwise conv so a batch gives the same result as each item alone. ``norm="layer"``
(LayerNorm over channels) is the streaming-safe choice; ``"batch"`` is the original Conformer's BatchNorm, here with
its training statistics taken over the valid frames only (:func:`masked_batch_norm`), so padding does not shift them.
Dims: B batch, T frames, D channels, K kernel size.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechseq.layers.dropout import Dropout


class ConvModule(nn.Module):
    def __init__(self, d_model: int, kernel_size: int, causal: bool = False,
                 norm: Literal["layer", "batch"] = "layer", dropout: float = 0.0):
        super().__init__()
        if not causal and kernel_size % 2 == 0:
            raise ValueError(f"a non-causal conv needs an odd kernel_size, got {kernel_size}")
        self.kernel_size, self.causal = kernel_size, causal
        self.pointwise_in = nn.Conv1d(d_model, 2 * d_model, 1)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model)
        self.norm_kind = norm
        self.norm = nn.LayerNorm(d_model) if norm == "layer" else nn.BatchNorm1d(d_model)
        self.pointwise_out = nn.Conv1d(d_model, d_model, 1)
        self.dropout = Dropout(dropout)

    @property
    def left_context(self) -> int:
        """Frames of past input the depthwise conv reads (the size of a streaming cache)."""
        return self.kernel_size - 1 if self.causal else (self.kernel_size - 1) // 2

    def forward(self, x: Tensor, valid: Tensor, cache: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """
        Args:
            x: (B, T, D) input (already layer-normed).
            valid: (B, T) bool, False on padding.
            cache: optional (B, D, K-1) previous depthwise inputs (causal streaming only).
        Returns:
            (B, T, D) output and the (B, D, T + K-1) depthwise input incl. the cache/left padding.
        """
        # The pointwise convs run as matmuls on (B, T, D) (their (out, in, 1) weights seen as (out, in)): no transposes
        # around them. The depthwise conv reads the same (B, T, D) memory as a channels-last (B, D, T, 1) image: on the
        # CPU oneDNN's channels-last depthwise conv is ~4x faster than Conv1d's (forward + backward), with no copy.
        h = F.glu(F.linear(x, self.pointwise_in.weight[:, :, 0], self.pointwise_in.bias), dim=-1)  # (B, T, D)
        if not bool(valid.all()):  # nothing to zero for an unpadded batch
            h = h * valid[:, :, None].to(h.dtype)
        if self.causal:
            left = cache.transpose(1, 2) if cache is not None else h.new_zeros(h.shape[0], self.kernel_size - 1,
                                                                                  h.shape[2])
            padded = torch.cat([left, h], dim=1)  # (B, T + K-1, D)
        else:
            pad = (self.kernel_size - 1) // 2
            padded = F.pad(h, (0, 0, pad, pad))
        weight = self.depthwise.weight[:, :, :, None].to(memory_format=torch.channels_last)  # (D, 1, K, 1)
        h = F.conv2d(padded.transpose(1, 2)[:, :, :, None], weight, self.depthwise.bias, groups=weight.shape[0])
        h = h[:, :, :, 0].transpose(1, 2)  # (B, T, D)
        h = self.norm(h) if self.norm_kind == "layer" else masked_batch_norm(self.norm, h, valid)
        h = F.linear(F.silu(h), self.pointwise_out.weight[:, :, 0], self.pointwise_out.bias)
        padded = padded.transpose(1, 2)  # (B, D, T + K-1), the layout the cache is kept in
        return self.dropout(h), padded


def masked_batch_norm(bn: nn.BatchNorm1d, h: Tensor, valid: Tensor) -> Tensor:
    """BatchNorm over (B, T, D) whose training statistics (and running averages) come from the ``valid`` (B, T)
    frames only: nn.BatchNorm1d would count the padded frames, which are not zero after the depthwise conv, so an
    utterance's output would depend on how much padding its batch has. In eval mode it is plain BatchNorm."""
    if not bn.training:
        return bn(h.transpose(1, 2)).transpose(1, 2)
    m = valid[:, :, None].to(h.dtype)
    n = m.sum().clamp(min=2.0)
    mean = (h * m).sum((0, 1)) / n
    var = ((h - mean) ** 2 * m).sum((0, 1)) / n
    with torch.no_grad():
        momentum = 0.1 if bn.momentum is None else bn.momentum
        bn.running_mean.lerp_(mean.detach().to(bn.running_mean.dtype), momentum)
        bn.running_var.lerp_((var.detach() * n / (n - 1)).to(bn.running_var.dtype), momentum)
        bn.num_batches_tracked += 1
    return (h - mean) * torch.rsqrt(var + bn.eps) * bn.weight + bn.bias


class FeedForward(nn.Module):
    """Linear -> SiLU -> dropout -> Linear -> dropout, with ``expansion`` x width in the middle."""

    def __init__(self, d_model: int, expansion: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, expansion * d_model), nn.SiLU(), Dropout(dropout),
            nn.Linear(expansion * d_model, d_model), Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
