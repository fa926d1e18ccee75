"""Audio towers for CLAP: log-mel ``(B, n_mels, F)`` [+ frame lengths] -> clip embedding ``(B, D)``.

Two families, each with a ``tiny`` (CPU, seconds per step) and a ``base`` (paper-size) preset:

- :class:`Cnn14Encoder` — PANN CNN14-style: BatchNorm over mel bins, blocks of two 3x3
  conv-BN-ReLU + 2x2 average pooling, then mean over frequency and (max + mean) over time.
- :class:`HtsatEncoder` — HTS-AT-style hierarchical Swin transformer over the (time, mel) patch
  grid: windowed self-attention with shifted windows, patch merging between stages, masked
  mean pooling over time at the end.

Both pool only over valid (non-padded) frames when frame lengths are given, so zero padding at
the end of a batch never changes an item's embedding pooling statistics.

That pooling is blind to order ("X then Y" ~ "Y then X"). ``build_audio_encoder(..., pool=...)``
adds an order-aware head from :mod:`avsuite.models.temporal_pool` (``segments`` / ``attention``)
whose output is added to the pooled vector; the default ``meanmax`` adds nothing (same weights,
same outputs as before).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avsuite.audio.masks import lengths_to_mask, masked_mean
from avsuite.models.temporal_pool import temporal_head


# ----------------------------------------------------------------------------- helpers
def _time_mask(n: int, lengths: Tensor | None, device: torch.device) -> Tensor | None:
    """``(B, n)`` boolean mask of valid time steps, or None when no lengths are known."""
    if lengths is None:
        return None
    return lengths_to_mask(lengths.to(device), n, min_len=1)


def _down(lengths: Tensor | None, factor: int) -> Tensor | None:
    """Frame lengths after a stride-``factor`` pooling (ceil: a partial window is still valid)."""
    if lengths is None:
        return None
    return torch.div(lengths + factor - 1, factor, rounding_mode="floor").clamp(min=1)


def masked_mean_max(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """``x (B, C, T)`` -> (mean, max) over valid T, each ``(B, C)``."""
    if mask is None:
        return x.mean(-1), x.amax(-1)
    mean = masked_mean(x, mask[:, None, :].expand_as(x), dim=-1)
    mx = x.masked_fill(~mask[:, None, :], float("-inf")).amax(-1)
    return mean, mx


# ----------------------------------------------------------------------------- CNN14
@dataclass(frozen=True, kw_only=True)
class Cnn14Config:
    n_mels: int = 64
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    dropout: float = 0.2


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor, pool: bool) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, 2, ceil_mode=True) if pool else x


class Cnn14Encoder(nn.Module):
    """``(B, n_mels, F)`` -> ``(B, channels[-1])``. The last block does not pool (as PANN's 2x... 1x1)."""

    def __init__(self, cfg: Cnn14Config):
        super().__init__()
        self.cfg = cfg
        self.bn0 = nn.BatchNorm2d(cfg.n_mels)
        chans = (1, *cfg.channels)
        self.blocks = nn.ModuleList(_ConvBlock(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.fc = nn.Linear(cfg.channels[-1], cfg.channels[-1])
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_dim = cfg.channels[-1]
        self.temporal: nn.Module | None = None     # order-aware head over (B, C, T') (build_audio_encoder)

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = mel.transpose(1, 2)[:, None]                         # (B, 1, F, M)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)         # BN over mel bins
        # pad time to a multiple of the total pooling so that an item's last (partial) pooling
        # windows see the same zeros alone or in a batch; re-zero padded frames after each block
        x = F.pad(x, (0, 0, 0, (-x.shape[2]) % 2 ** (len(self.blocks) - 1)))
        if lengths is not None:
            x = x * _time_mask(x.shape[2], lengths, x.device)[:, None, :, None]
        for i, block in enumerate(self.blocks):
            pool = i < len(self.blocks) - 1
            x = self.dropout(block(x, pool)) if i > 0 else block(x, pool)
            if pool:
                lengths = _down(lengths, 2)
            if lengths is not None:
                x = x * _time_mask(x.shape[2], lengths, x.device)[:, None, :, None]
        x = x.mean(dim=3)                                       # (B, C, T') mean over frequency
        mask = _time_mask(x.shape[-1], lengths, x.device)
        mean, mx = masked_mean_max(x, mask)
        pooled = mean + mx if self.temporal is None else mean + mx + self.temporal(x, mask)
        return F.relu(self.fc(self.dropout(pooled)))


# ----------------------------------------------------------------------------- HTS-AT (Swin)
@dataclass(frozen=True, kw_only=True)
class HtsatConfig:
    n_mels: int = 64
    patch: int = 4
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    heads: tuple[int, ...] = (4, 8, 16, 32)
    window: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1


def _window_partition(x: Tensor, w: int) -> Tensor:
    """``(B, H, W, C)`` (H, W multiples of w) -> ``(B*nW, w*w, C)``."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _window_merge(x: Tensor, w: int, b: int, h: int, wd: int) -> Tensor:
    """Inverse of :func:`_window_partition`: ``(B*nW, w*w, C)`` -> ``(B, H, W, C)``."""
    c = x.shape[-1]
    x = x.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


def _shift_mask(h: int, wd: int, w: int, s: int, device: torch.device) -> Tensor:
    """``(nW, w*w, w*w)`` additive mask: tokens from different regions of a rolled grid don't attend."""
    region = torch.zeros(1, h, wd, 1, device=device)
    cnt = 0
    for hs in (slice(0, -w), slice(-w, -s), slice(-s, None)):
        for ws in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            region[:, hs, ws] = cnt
            cnt += 1
    ids = _window_partition(region, w)[..., 0]               # (nW, w*w)
    diff = ids[:, None, :] != ids[:, :, None]
    return torch.zeros(diff.shape, device=device).masked_fill(diff, float("-inf"))


class _SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: bool, mlp_ratio: float, dropout: float):
        super().__init__()
        self.window, self.shift, self.heads = window, shift, heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, H, W, C)``; H, W are multiples of the window."""
        b, h, wd, c = x.shape
        w = self.window
        s = w // 2 if self.shift and min(h, wd) > w else 0
        y = self.norm1(x)
        if s:
            y = torch.roll(y, (-s, -s), dims=(1, 2))
        win = _window_partition(y, w)                            # (B*nW, w*w, C)
        mask = None
        if s:
            m = _shift_mask(h, wd, w, s, x.device)               # (nW, L, L)
            mask = m.repeat(b, 1, 1).repeat_interleave(self.heads, dim=0)
        out, _ = self.attn(win, win, win, attn_mask=mask, need_weights=False)
        y = _window_merge(out, w, b, h, wd)
        if s:
            y = torch.roll(y, (s, s), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class HtsatEncoder(nn.Module):
    """``(B, n_mels, F)`` -> ``(B, embed_dim * 2**(stages-1))``.

    The spectrogram is cut into ``patch x patch`` patches (a conv), laid out as a (time, mel)
    grid, padded to a multiple of the window times the total merging factor, and passed through
    Swin stages; the output is a masked mean over valid time rows (after LayerNorm).
    """

    def __init__(self, cfg: HtsatConfig):
        super().__init__()
        if len(cfg.depths) != len(cfg.heads):
            raise ValueError("depths and heads must have the same length")
        self.cfg = cfg
        self.bn0 = nn.BatchNorm2d(cfg.n_mels)
        self.patch = nn.Conv2d(1, cfg.embed_dim, cfg.patch, stride=cfg.patch)
        self.stages = nn.ModuleList()
        self.merges = nn.ModuleList()
        dim = cfg.embed_dim
        for i, (depth, heads) in enumerate(zip(cfg.depths, cfg.heads)):
            self.stages.append(nn.ModuleList(
                _SwinBlock(dim, heads, cfg.window, j % 2 == 1, cfg.mlp_ratio, cfg.dropout) for j in range(depth)))
            if i < len(cfg.depths) - 1:
                self.merges.append(nn.Sequential(nn.LayerNorm(4 * dim), nn.Linear(4 * dim, 2 * dim, bias=False)))
                dim *= 2
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim
        self.temporal: nn.Module | None = None     # order-aware head over (B, C, T'') (build_audio_encoder)

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> Tensor:
        cfg = self.cfg
        x = mel.transpose(1, 2)[:, None]                         # (B, 1, F, M)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        if lengths is not None:
            x = x * _time_mask(x.shape[2], lengths, x.device)[:, None, :, None]
        unit = cfg.patch * cfg.window * 2 ** (len(cfg.depths) - 1)
        pad_t, pad_m = (-x.shape[2]) % unit, (-x.shape[3]) % unit
        x = F.pad(x, (0, pad_m, 0, pad_t))
        x = self.patch(x).permute(0, 2, 3, 1)                    # (B, T', M', C)
        lengths = _down(lengths, cfg.patch)
        for i, blocks in enumerate(self.stages):
            for blk in blocks:
                x = blk(x)
            if i < len(self.merges):
                b, h, wd, c = x.shape
                x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
                x = self.merges[i](x)
                lengths = _down(lengths, 2)
        x = self.norm(x).mean(dim=2).transpose(1, 2)             # (B, C, T'')
        mask = _time_mask(x.shape[-1], lengths, x.device)
        mean, _ = masked_mean_max(x, mask)
        return mean if self.temporal is None else mean + self.temporal(x, mask)


# ----------------------------------------------------------------------------- presets
def cnn14_tiny(n_mels: int = 64) -> Cnn14Encoder:
    return Cnn14Encoder(Cnn14Config(n_mels=n_mels, channels=(16, 32, 64, 128), dropout=0.1))


def cnn14_base(n_mels: int = 64) -> Cnn14Encoder:
    return Cnn14Encoder(Cnn14Config(n_mels=n_mels))


def htsat_tiny(n_mels: int = 64) -> HtsatEncoder:
    return HtsatEncoder(HtsatConfig(n_mels=n_mels, embed_dim=32, depths=(1, 1, 1), heads=(2, 4, 4), window=4))


def htsat_base(n_mels: int = 64) -> HtsatEncoder:
    return HtsatEncoder(HtsatConfig(n_mels=n_mels))


AUDIO_PRESETS: dict[str, Callable[[int], nn.Module]] = {
    "cnn14_tiny": cnn14_tiny, "cnn14_base": cnn14_base, "htsat_tiny": htsat_tiny, "htsat_base": htsat_base,
}


def build_audio_encoder(name: str, n_mels: int, *, pool: str = "meanmax", segments: int = 4) -> nn.Module:
    """Preset ``name`` [+ the order-aware ``pool`` head with ``segments`` segments / position buckets]."""
    if name not in AUDIO_PRESETS:
        raise ValueError(f"unknown audio encoder {name!r}; choose from: {', '.join(AUDIO_PRESETS)}")
    encoder = AUDIO_PRESETS[name](n_mels)
    encoder.temporal = temporal_head(pool, encoder.out_dim, segments)
    return encoder


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["Cnn14Encoder", "HtsatEncoder", "AUDIO_PRESETS", "build_audio_encoder", "masked_mean_max",
           "param_count"]
