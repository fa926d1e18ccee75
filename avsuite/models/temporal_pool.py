"""Order-aware pooling heads for the audio towers: time features ``(B, C, T)`` -> ``(B, C)``.

The towers' own pooling (mean + max over time) is blind to order: "X then Y" and "Y then X" give
(nearly) the same clip embedding, so no text tower can tell them apart through it. These heads are
ADDED to that pooling (``pooled = mean + max + head(x)``) and their output layer starts at zero,
so a fresh tower with a head computes exactly what it computed without one and learns to use
order only where the loss asks for it.

- :class:`SegmentPool` (``pool="segments"``) — each item's VALID frames are cut into ``K`` equal
  segments (relative to its own length, so padding never moves them), each segment is mean+max
  pooled, and the ``K`` vectors, concatenated in time order, go through a linear map: one
  weight block per position, so swapping the halves of a clip changes the result.
- :class:`AttentionPool` (``pool="attention"``) — HTS-AT-style time tokens: frames plus learned
  embeddings of their segment through one pre-LN transformer layer (padding masked), then the
  same per-segment pooling (means) and position-wise linear map as ``segments``.

Both are padding-aware: an item gives the same output alone or zero-padded in a batch.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

POOLS = ("meanmax", "segments", "attention")
Pool = Literal["meanmax", "segments", "attention"]


def _valid_lengths(mask: Tensor | None, b: int, t: int, device: torch.device) -> Tensor:
    """``(B,)`` valid frame counts (all ``t`` without a mask), at least 1."""
    if mask is None:
        return torch.full((b,), t, dtype=torch.long, device=device)
    return mask.sum(-1).clamp(min=1)


def segment_masks(lengths: Tensor, t: int, k: int) -> Tensor:
    """``(B,)`` valid lengths -> ``(B, K, t)`` bool: segment ``j`` of an item with ``n`` valid frames
    covers ``[floor(j n / K), max(floor((j+1) n / K), floor(j n / K) + 1))`` — every segment has at
    least one frame (short items share frames), and the segments tile the valid frames."""
    n = lengths[:, None]
    j = torch.arange(k, device=lengths.device)[None, :]
    start = torch.div(j * n, k, rounding_mode="floor")
    end = torch.maximum(torch.div((j + 1) * n, k, rounding_mode="floor"), start + 1)
    pos = torch.arange(t, device=lengths.device)[None, None, :]
    return (pos >= start[..., None]) & (pos < end[..., None])


class SegmentPool(nn.Module):
    """``x (B, C, T)`` [+ ``mask (B, T)``] -> ``(B, C)``: K segment mean+max vectors, concatenated in
    time order, through a zero-initialised ``Linear(K*C, C)``."""

    def __init__(self, channels: int, segments: int = 4):
        super().__init__()
        if segments < 2:
            raise ValueError(f"a segment pool needs >= 2 segments, got {segments}")
        self.k = segments
        self.proj = nn.Linear(segments * channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, c, t = x.shape
        seg = segment_masks(_valid_lengths(mask, b, t, x.device), t, self.k)   # (B, K, T)
        xs = x[:, None]                                                       # (B, 1, C, T)
        m = seg[:, :, None, :]                                                # (B, K, 1, T)
        mean = (xs * m).sum(-1) / m.sum(-1).clamp(min=1)                      # (B, K, C)
        mx = xs.masked_fill(~m, float("-inf")).amax(-1)                       # (B, K, C)
        return self.proj((mean + mx).reshape(b, self.k * c))


class AttentionPool(nn.Module):
    """``x (B, C, T)`` [+ ``mask (B, T)``] -> ``(B, C)``: frames + learned embeddings of their segment
    (``K`` relative positions) -> one pre-LN transformer layer over the valid frames (every frame
    sees the whole clip) -> per-segment means, concatenated in time order -> zero-initialised
    ``Linear(K*C, C)``."""

    def __init__(self, channels: int, segments: int = 4, heads: int = 4):
        super().__init__()
        if segments < 2:
            raise ValueError(f"an attention pool needs >= 2 segments, got {segments}")
        heads = heads if channels % heads == 0 else 1
        self.k = segments
        self.pos = nn.Parameter(torch.randn(segments, channels) * 0.2)
        self.layer = nn.TransformerEncoderLayer(channels, heads, 2 * channels, dropout=0.0, batch_first=True,
                                                norm_first=True)
        self.proj = nn.Linear(segments * channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, c, t = x.shape
        n = _valid_lengths(mask, b, t, x.device)
        seg = segment_masks(n, t, self.k)                                        # (B, K, T)
        valid = seg.any(1)                                                       # (B, T)
        first = seg.to(x.dtype).argmax(1)                                        # (B, T) a frame's segment
        h = self.layer(x.transpose(1, 2) + self.pos[first], src_key_padding_mask=~valid)   # (B, T, C)
        h = h.masked_fill(~valid[..., None], 0.0)
        m = seg.to(h.dtype)                                                      # (B, K, T)
        means = (m @ h) / m.sum(-1, keepdim=True).clamp(min=1)                   # (B, K, C)
        return self.proj(means.reshape(b, self.k * c))


def temporal_head(pool: str, channels: int, segments: int) -> nn.Module | None:
    """The head for ``pool`` (None for the order-blind ``meanmax``)."""
    if pool == "meanmax":
        return None
    if pool == "segments":
        return SegmentPool(channels, segments)
    if pool == "attention":
        return AttentionPool(channels, segments)
    raise ValueError(f"unknown audio pool {pool!r}; choose from: {', '.join(POOLS)}")


__all__ = ["POOLS", "SegmentPool", "AttentionPool", "segment_masks", "temporal_head"]
