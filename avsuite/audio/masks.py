"""Length masks and masked pooling: the one implementation every model and the frontend use.

    mask = lengths_to_mask(torch.tensor([3, 5]))           # (2, 5) bool, True on valid steps
    mean = masked_mean(x, mask)                           # x (B, T, D) -> (B, D)
"""

from __future__ import annotations

import torch
from torch import Tensor


def lengths_to_mask(lengths: Tensor, max_len: int | None = None, *, min_len: int = 0) -> Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool mask, True on valid positions; lengths are raised to
    at least ``min_len`` (1: an empty item still pools one step instead of dividing by zero)."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths.clamp(min=min_len)[:, None]


def masked_mean(x: Tensor, mask: Tensor, dim: int = 1) -> Tensor:
    """Mean of ``x`` over ``dim`` where ``mask`` (``x``'s shape up to ``dim``) is True, e.g.
    ``x (B, T, D)``, ``mask (B, T)`` -> ``(B, D)``; a row with no valid step gives zeros."""
    m = mask.to(x.dtype)
    while m.dim() < x.dim():
        m = m.unsqueeze(-1)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1e-9)
