"""Multi-head self-attention with relative positional encoding (Transformer-XL style, as used by Conformer).

score(i, j) = (q_i + u)·k_j + (q_i + v)·p_{i-j}, with learned biases u, v per head and sinusoidal p over the
relative distance. Queries may be a suffix of the keys (Tq <= Tk: queries sit at key positions Tk-Tq .. Tk-1),
which is the shape a cached streaming step has; the offline forward is the case Tq == Tk.
Dims: B batch, H heads, Tq queries, Tk keys, D model width, Dh = D / H.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def rel_positions(num_queries: int, num_keys: int, d_model: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(Tk + Tq - 1, D) sinusoidal embeddings of relative distances Tk-1, Tk-2, ..., -(Tq-1)."""
    dist = torch.arange(num_keys - 1, -num_queries, -1, device=device, dtype=torch.float32)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    angles = dist[:, None] * inv_freq[None, :]
    pe = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)
    return pe.to(dtype)


def rel_shift(scores: Tensor, num_keys: int) -> Tensor:
    """Pick, for query i and key j, the column ``Tq-1-i+j`` of ``scores`` (B, H, Tq, Tk+Tq-1) -> (B, H, Tq, Tk)."""
    b, h, tq, tp = scores.shape
    scores = scores.contiguous()
    s = scores.stride()
    return scores.as_strided((b, h, tq, num_keys), (s[0], s[1], s[2] - 1, s[3]), scores.storage_offset() + tq - 1)


class RelPositionAttention(nn.Module):
    """Relative-position multi-head attention.

    Args:
        d_model: D.
        num_heads: H (D must divide evenly).
        dropout: attention-probability dropout.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.pos = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model)
        self.pos_bias_u = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        self.pos_bias_v = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.dropout = dropout

    def _heads(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, mask: Tensor, cache: Tensor | None = None,
                pos: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Self-attention over ``cat(cache, x)`` keys.

        Args:
            x: (B, Tq, D) layer input (already normalised).
            mask: (B, Tq, Tk) bool, True where query i may attend key j; Tk = cache frames + Tq. Every row must
                allow at least one key.
            cache: optional (B, Tc, D) earlier layer inputs prepended as keys/values (streaming).
            pos: optional ``rel_positions(Tq, Tk, D)`` table, to compute it once for all layers.
        Returns:
            (B, Tq, D) output and the (B, Tk, D) key/value input (the next cache is a suffix of it).
        """
        kv_in = x if cache is None else torch.cat([cache, x], dim=1)
        b, tq, d = x.shape
        tk = kv_in.shape[1]
        if cache is None:  # one matmul for q, k and v
            q, k, v = self.qkv(x).view(b, tq, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        else:
            w_q, w_kv = self.qkv.weight.split([d, 2 * d], dim=0)
            b_q, b_kv = self.qkv.bias.split([d, 2 * d], dim=0)
            q = self._heads(F.linear(x, w_q, b_q))
            k, v = F.linear(kv_in, w_kv, b_kv).view(b, tk, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if pos is None:
            pos = rel_positions(tq, tk, d, x.device, x.dtype)
        p = self.pos(pos).view(-1, self.num_heads, self.head_dim).transpose(0, 1)  # (H, Tk+Tq-1, Dh)
        scale = 1.0 / math.sqrt(self.head_dim)
        # The position term enters as an additive bias; the content term, softmax and weighted sum run fused
        # (scaled_dot_product_attention computes (q + u) k^T * scale + bias). The scale goes on the (Tq, Dh) query
        # side, not the (Tq, Tk) scores; a mask that allows everything (a lone full-context utterance) is not
        # applied at all: both save a pass over the (B, H, Tq, Tk) scores in every layer.
        bd = rel_shift(torch.matmul((q + self.pos_bias_v[None, :, None]) * scale, p.transpose(-1, -2)[None]), tk)
        if not bool(mask.all()):
            bd = bd.masked_fill(~mask[:, None], float("-inf"))
        y = F.scaled_dot_product_attention(q + self.pos_bias_u[None, :, None], k, v, attn_mask=bd,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, tq, d)), kv_in
