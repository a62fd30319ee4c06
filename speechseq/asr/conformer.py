"""Conformer encoder: subsampling, then blocks of (1/2 FF, rel-pos MHSA, conv module, 1/2 FF, LayerNorm).

    enc = ConformerEncoder(ConformerConfig(num_features=80, d_model=144, num_layers=8))
    out = enc(feats, feat_lens)              # full context
    out = enc(feats, feat_lens, chunk_size=4, left_chunks=2)   # chunked, limited left context

Streaming-ready choices: ``causal_conv`` (left-only depthwise padding), ``conv_norm="layer"``, chunk masks from
``speechseq.layers.masks``. Intermediate layer outputs (for intermediate CTC) are returned on request, and a
``condition`` module (self-conditioned CTC) may rewrite the hidden state after those layers.
Dims: B batch, T feature frames, T' = encoder frames (T / subsampling), D d_model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from speechseq.layers.attention import RelPositionAttention, rel_positions
from speechseq.layers.conv import ConvModule, FeedForward
from speechseq.layers.dropout import Dropout
from speechseq.layers.masks import attention_mask, valid_mask
from speechseq.layers.subsampling import Subsampling


@dataclass
class ConformerConfig:
    """Conformer encoder hyper-parameters.

    Attributes:
        num_features: input feature bins (n_mels).
        d_model: model width D.
        num_layers: conformer blocks.
        num_heads: attention heads.
        ff_expansion: feed-forward width multiplier.
        conv_kernel: depthwise kernel size (odd unless causal).
        causal_conv: left-only depthwise padding (streaming).
        conv_norm: "layer" (streaming-safe) or "batch".
        subsampling: "conv2d" or "dw_striding" (FastConformer).
        subsampling_factor: 4 or 8.
        subsampling_channels: conv channels (0 = d_model).
        dropout: dropout in FF/conv/residual paths.
        attention_dropout: dropout on attention probabilities.
        chunk_size: default attention chunk in encoder frames (0 = full context).
        left_chunks: visible earlier chunks (-1 = unlimited).
    """

    num_features: int = 80
    d_model: int = 144
    num_layers: int = 8
    num_heads: int = 4
    ff_expansion: int = 4
    conv_kernel: int = 15
    causal_conv: bool = False
    conv_norm: Literal["layer", "batch"] = "layer"
    subsampling: Literal["conv2d", "dw_striding"] = "conv2d"
    subsampling_factor: int = 4
    subsampling_channels: int = 0
    dropout: float = 0.1
    attention_dropout: float = 0.1
    chunk_size: int = 0
    left_chunks: int = -1


@dataclass
class ConformerOutput:
    """Encoder result: ``y`` (B, T', D), ``y_lens`` (B,) int64, ``inter`` hidden states of requested layers."""

    y: Tensor
    y_lens: Tensor
    inter: list[Tensor]


class ConformerBlock(nn.Module):
    def __init__(self, cfg: ConformerConfig):
        super().__init__()
        d = cfg.d_model
        self.ff1_norm, self.ff1 = nn.LayerNorm(d), FeedForward(d, cfg.ff_expansion, cfg.dropout)
        self.att_norm = nn.LayerNorm(d)
        self.att = RelPositionAttention(d, cfg.num_heads, cfg.attention_dropout)
        self.conv_norm = nn.LayerNorm(d)
        self.conv = ConvModule(d, cfg.conv_kernel, cfg.causal_conv, cfg.conv_norm, cfg.dropout)
        self.ff2_norm, self.ff2 = nn.LayerNorm(d), FeedForward(d, cfg.ff_expansion, cfg.dropout)
        self.out_norm = nn.LayerNorm(d)
        self.dropout = Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor, valid: Tensor, pos: Tensor | None = None) -> Tensor:
        """x (B, T, D), mask (B, T, T) bool, valid (B, T) bool, pos: optional ``rel_positions(T, T, D)`` shared by
        the layers -> (B, T, D)."""
        x = x + 0.5 * self.ff1(self.ff1_norm(x))
        att, _ = self.att(self.att_norm(x), mask, pos=pos)
        x = x + self.dropout(att)
        conv, _ = self.conv(self.conv_norm(x), valid)
        x = x + conv
        x = x + 0.5 * self.ff2(self.ff2_norm(x))
        return self.out_norm(x)


class ConformerEncoder(nn.Module):
    def __init__(self, cfg: ConformerConfig):
        super().__init__()
        self.cfg = cfg
        self.subsampling = Subsampling(cfg.num_features, cfg.d_model, cfg.subsampling_factor, cfg.subsampling,
                                       cfg.subsampling_channels)
        self.dropout = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.num_layers))

    def forward(self, feats: Tensor, feat_lens: Tensor, chunk_size: int | None = None, left_chunks: int | None = None,
                inter_layers: tuple[int, ...] = (), condition: nn.Module | None = None) -> ConformerOutput:
        """Encode a padded batch.

        Args:
            feats: (B, T, F) normalised features.
            feat_lens: (B,) int64 valid frames.
            chunk_size: attention chunk in encoder frames (None: config default; 0: full context).
            left_chunks: visible earlier chunks (None: config default; -1: unlimited).
            inter_layers: 1-based block indices whose outputs are returned in ``inter``.
            condition: optional module x -> x applied after each of ``inter_layers`` (self-conditioning).
        """
        chunk_size = self.cfg.chunk_size if chunk_size is None else chunk_size
        left_chunks = self.cfg.left_chunks if left_chunks is None else left_chunks
        x, lens = self.subsampling(feats, feat_lens)
        x = self.dropout(x)
        t = x.shape[1]
        mask = attention_mask(lens, t, chunk_size, left_chunks)
        valid = valid_mask(lens, t)
        pos = rel_positions(t, t, self.cfg.d_model, x.device, x.dtype)
        inter = []
        for i, block in enumerate(self.blocks, 1):
            x = block(x, mask, valid, pos)
            if i in inter_layers and i < len(self.blocks):
                inter.append(x)
                if condition is not None:
                    x = condition(x)
        return ConformerOutput(x, lens, inter)
