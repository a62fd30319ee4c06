"""Transformer decoder stack shared by the autoregressive attention decoder (causal self-attention with a KV cache)
and the Paraformer parallel decoder (no causal mask): pre-norm blocks of self-attention, cross-attention to the
encoder output and a feed-forward network.

The decoder reads embeddings, not token ids: the AED embeds its previous tokens, Paraformer feeds CIF acoustic
embeddings. Cross-attention keys/values depend only on the encoder output, so :meth:`TransformerDecoder.memory_kv`
computes them once per utterance and every decoding step reuses them.
Dims: B batch, L decoder positions, T encoder frames, D width, H heads, Dh = D / H.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechseq.layers.dropout import Dropout
from speechseq.layers.masks import valid_mask
from speechseq.text.tokenizer import EOS_ID

KV = tuple[Tensor, Tensor]
"""Keys and values, each (B, H, T, Dh)."""
IGNORE = -100
"""Target id the decoder losses skip (cross-entropy ``ignore_index``)."""


def append_eos(tokens: Tensor, token_lens: Tensor) -> Tensor:
    """Decoder targets: (B, L) ids (padding anything) -> (B, L+1) with <eos> after each and IGNORE beyond."""
    b, L = tokens.shape
    out = torch.full((b, L + 1), IGNORE, dtype=torch.long, device=tokens.device)
    valid = valid_mask(token_lens, L)
    out[:, :L] = torch.where(valid, tokens, torch.full_like(tokens, IGNORE))
    out[torch.arange(b, device=tokens.device), token_lens] = EOS_ID
    return out


@dataclass
class DecoderConfig:
    """Decoder stack.

    Attributes:
        num_layers: blocks.
        num_heads: attention heads (d_model, the encoder's width, must divide evenly).
        ffn_dim: feed-forward inner width.
        dropout: residual and feed-forward dropout.
        attention_dropout: attention-probability dropout.
    """

    num_layers: int = 6
    num_heads: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0


def sinusoidal_positions(length: int, d_model: int, offset: int = 0, device: torch.device | None = None) -> Tensor:
    """(length, D) absolute sinusoidal encodings of positions offset .. offset+length-1."""
    pos = torch.arange(offset, offset + length, device=device, dtype=torch.float32)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    angles = pos[:, None] * inv_freq[None]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)


def additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Bool mask (True = may attend) -> additive float mask; a fully masked row stays finite (uniform weights)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with separate projections of queries and of keys/values (so that keys and values
    can be cached)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim, self.dropout = num_heads, d_model // num_heads, dropout
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def _heads(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def project_kv(self, x: Tensor) -> KV:
        """(B, T, D) -> keys, values (B, H, T, Dh)."""
        k, v = self.kv(x).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def attend(self, x: Tensor, kv: KV, mask: Tensor) -> Tensor:
        """Queries from x (B, Lq, D) over kv; mask (B, Lq | 1, Tk) bool, True = may attend. Returns (B, Lq, D)."""
        q = self._heads(self.q(x))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=additive_mask(mask[:, None], q.dtype),
                                           dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, cfg: DecoderConfig):
        super().__init__()
        self.norm_self, self.norm_cross, self.norm_ffn = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, cfg.num_heads, cfg.attention_dropout)
        self.cross_attn = MultiHeadAttention(d_model, cfg.num_heads, cfg.attention_dropout)
        self.ffn = nn.Sequential(nn.Linear(d_model, cfg.ffn_dim), nn.ReLU(), Dropout(cfg.dropout),
                                 nn.Linear(cfg.ffn_dim, d_model))
        self.drop = Dropout(cfg.dropout)

    def forward(self, x: Tensor, self_mask: Tensor, memory_kv: KV, memory_mask: Tensor,
                cache: KV | None = None) -> tuple[Tensor, KV]:
        """x (B, L, D); self_mask (B, L, cache + L) bool; returns the output and the self-attention keys/values
        of cache + x (the next step's cache)."""
        h = self.norm_self(x)
        k, v = self.self_attn.project_kv(h)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        x = x + self.drop(self.self_attn.attend(h, (k, v), self_mask))
        x = x + self.drop(self.cross_attn.attend(self.norm_cross(x), memory_kv, memory_mask))
        x = x + self.drop(self.ffn(self.norm_ffn(x)))
        return x, (k, v)


class TransformerDecoder(nn.Module):
    """Stack of :class:`DecoderLayer` with a final LayerNorm (embedding and output projection belong to the model)."""

    def __init__(self, d_model: int, cfg: DecoderConfig):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(d_model, cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(d_model)

    def memory_kv(self, memory: Tensor) -> list[KV]:
        """Cross-attention keys/values of every layer for encoder output memory (B, T, D)."""
        return [layer.cross_attn.project_kv(memory) for layer in self.layers]

    def forward(self, x: Tensor, self_mask: Tensor, memory_kv: list[KV], memory_mask: Tensor,
                cache: list[KV] | None = None) -> tuple[Tensor, list[KV]]:
        """
        Args:
            x: (B, L, D) input embeddings (positions already added).
            self_mask: (B, L, C + L) bool, True where position i may attend position j (C cached positions).
            memory_kv: from :meth:`memory_kv`.
            memory_mask: (B, T) bool, True on valid encoder frames.
            cache: per layer, self-attention keys/values of the C earlier positions (None: C = 0).
        Returns:
            (B, L, D) normalised output and the per-layer cache covering C + L positions.
        """
        mem_mask = memory_mask[:, None, :]
        new_cache = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, self_mask, memory_kv[i], mem_mask, None if cache is None else cache[i])
            new_cache.append(kv)
        return self.norm(x), new_cache
