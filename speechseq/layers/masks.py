"""Padding and attention masks. Convention: a boolean mask is True where attention/data is ALLOWED/valid.

Dims: B batch, T frames. Chunked attention (dynamic-chunk / cache-aware streaming) lets frame i see frame j iff
``0 <= chunk(i) - chunk(j) <= left_chunks`` with ``chunk(t) = t // chunk_size`` (``left_chunks < 0``: unlimited).
"""

from __future__ import annotations

import torch
from torch import Tensor


def valid_mask(lens: Tensor, max_len: int | None = None) -> Tensor:
    """(B,) lengths -> (B, T) bool, True on valid frames."""
    max_len = int(lens.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


def chunk_mask(num_frames: int, chunk_size: int, left_chunks: int = -1, device: torch.device | None = None) -> Tensor:
    """(T, T) bool: frame i may attend to frame j (block lower-triangular at chunk granularity).

    Args:
        num_frames: T.
        chunk_size: frames per chunk (>= 1); ``chunk_size <= 0`` means full context (all True).
        left_chunks: how many earlier chunks are visible; negative = all of them.
    """
    if chunk_size <= 0:
        return torch.ones(num_frames, num_frames, dtype=torch.bool, device=device)
    chunk = torch.arange(num_frames, device=device) // chunk_size
    diff = chunk[:, None] - chunk[None, :]
    allowed = diff >= 0
    if left_chunks >= 0:
        allowed &= diff <= left_chunks
    return allowed


def band_mask(num_frames: int, left: int, right: int, device: torch.device | None = None) -> Tensor:
    """(T, T) bool limited-context mask: i sees j iff ``-left <= j - i <= right`` (negative = unlimited)."""
    idx = torch.arange(num_frames, device=device)
    diff = idx[None, :] - idx[:, None]
    allowed = torch.ones(num_frames, num_frames, dtype=torch.bool, device=device)
    if left >= 0:
        allowed &= diff >= -left
    if right >= 0:
        allowed &= diff <= right
    return allowed


def attention_mask(lens: Tensor, num_frames: int, chunk_size: int = 0, left_chunks: int = -1) -> Tensor:
    """(B, T, T) bool combining key padding with chunked context (``chunk_size <= 0``: full context).

    Padded query rows keep at least their own position visible so softmax never sees an all-masked row.
    """
    keys = valid_mask(lens, num_frames)  # (B, T)
    mask = keys[:, None, :] & chunk_mask(num_frames, chunk_size, left_chunks, lens.device)[None]
    eye = torch.eye(num_frames, dtype=torch.bool, device=lens.device)[None]
    return mask | (eye & ~keys[:, :, None])
