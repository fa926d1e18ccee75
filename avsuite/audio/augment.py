"""Train-time feature augmentation: one SpecAugment for every model.

:func:`spec_augment` masks frequency bands and time spans of log-mel features ``(B, M, F)``. Its
randomness comes from the global torch RNG (or an explicit ``generator``), so inside a model's
``forward`` it is reproduced by whatever checkpoints the global RNG (the training engine does).

Presets of the callers:

- speech (``ctc_ot``): ``spec_augment(feats, lengths, n_freq_masks=2, freq_width=10, n_time_masks=2,
  time_fraction=0.1)`` — zero fill, time masks up to 10 % of each item's valid frames.
- CLAP: ``spec_augment(mel, None, n_freq_masks=2, freq_width=cfg.spec_freq_mask, n_time_masks=2,
  time_width=cfg.spec_time_mask, fill="mean")`` — masks filled with the item's mean, drawn in the
  order time, freq, time, freq (the draws of the former ``ClapModel._spec_augment``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor


def _draw(high: int, generator: torch.Generator | None) -> int:
    """One integer in ``[0, high)`` (``high >= 1``) from ``generator`` or the global RNG."""
    return int(torch.randint(high, (), generator=generator))


def _mask(x: Tensor, dim: int, width: int, span: int, fill: str, generator: torch.Generator | None) -> None:
    """Mask one item ``x (M, F)`` in place: ``w`` in ``[0, width]`` rows (``dim=0``, mel bins) or
    columns (``dim=1``, frames) from a start in ``[0, max(1, span - w))``."""
    w = _draw(width + 1, generator)
    start = _draw(max(1, span - w), generator)
    value = float(x.mean()) if fill == "mean" else 0.0
    if dim == 0:
        x[start:start + w] = value
    else:
        x[:, start:start + w] = value


def spec_augment(feats: Tensor, lengths: Tensor | None = None, *, n_freq_masks: int = 2, freq_width: int = 10,
                 n_time_masks: int = 2, time_fraction: float = 0.1, time_width: int | None = None,
                 fill: Literal["zero", "mean"] = "zero", generator: torch.Generator | None = None) -> Tensor:
    """SpecAugment (frequency + time masking) of ``feats (B, M, F)`` -> a masked copy ``(B, M, F)``.

    Per item, ``max(n_time_masks, n_freq_masks)`` rounds, each drawing one time mask then one
    frequency mask (while that kind has masks left). A frequency mask covers ``[0, freq_width]``
    mel bins; a time mask ``[0, W]`` frames with ``W = time_width`` when given, else
    ``max(1, int(time_fraction * n_i))``, placed inside the item's ``n_i = lengths[i]`` valid frames
    (all ``F`` when ``lengths`` is None). ``fill="mean"``: masked values become the item's current
    mean, else zero. A kind with width 0 (or ``time_fraction == 0``) draws nothing.
    """
    if feats.dim() != 3:
        raise ValueError(f"spec_augment expects (B, M, F) features, got shape {tuple(feats.shape)}")
    if fill not in ("zero", "mean"):
        raise ValueError(f"fill must be 'zero' or 'mean', got {fill!r}")
    out = feats.clone()
    n_mels, n_frames = feats.shape[1], feats.shape[2]
    do_time = n_time_masks > 0 and (time_width > 0 if time_width is not None else time_fraction > 0)
    do_freq = n_freq_masks > 0 and freq_width > 0
    for i in range(out.shape[0]):
        n = int(lengths[i]) if lengths is not None else n_frames
        t_width = time_width if time_width is not None else max(1, int(time_fraction * n))
        for k in range(max(n_time_masks, n_freq_masks)):
            if do_time and k < n_time_masks:
                _mask(out[i], 1, t_width, n, fill, generator)
            if do_freq and k < n_freq_masks:
                _mask(out[i], 0, freq_width, n_mels, fill, generator)
    return out


# ----------------------------------------------------------------------------- waveform augmentations
# Source-identity breakers for training (issue 12): a model that learns "this recording" instead
# of "this sound" is confused by changing the channel (EQ), the speed/pitch and the background.
# Each is a pure function of its inputs and an explicit ``generator`` (resume-exact in the Reader).


def random_eq(wave: Tensor, sr: int, generator: torch.Generator, *, max_db: float = 12.0, n_bands: int = 6) -> Tensor:
    """``(T,)`` -> ``(T,)`` through a random smooth EQ: gains uniform in ``[-max_db, max_db]`` dB at
    ``n_bands`` log-spaced frequencies (50 Hz .. Nyquist), interpolated on a log-frequency axis and
    applied in the frequency domain. ``max_db=0`` returns the input unchanged."""
    if max_db <= 0 or wave.numel() < 2:
        return wave
    gains = (torch.rand(n_bands, generator=generator, dtype=torch.float64) * 2 - 1) * max_db
    freqs = torch.fft.rfftfreq(wave.numel(), 1.0 / sr, dtype=torch.float64)
    anchors = torch.logspace(math.log10(50.0), math.log10(sr / 2), n_bands, dtype=torch.float64)
    pos = torch.log(freqs.clamp(min=50.0)) - math.log(50.0)
    grid = torch.log(anchors) - math.log(50.0)
    idx = torch.searchsorted(grid, pos).clamp(1, n_bands - 1)
    w = ((pos - grid[idx - 1]) / (grid[idx] - grid[idx - 1])).clamp(0, 1)
    db = gains[idx - 1] * (1 - w) + gains[idx] * w
    spec = torch.fft.rfft(wave.double()) * (10 ** (db / 20))
    return torch.fft.irfft(spec, n=wave.numel()).to(wave.dtype)


def speed_perturb(wave: Tensor, sr: int, factor: float) -> Tensor:
    """Play ``(T,)`` ``factor`` times faster (tempo and pitch together, as tape speed): the result
    has ``ceil(T / factor)`` samples at the same rate."""
    if not factor > 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    if factor == 1.0:
        return wave
    from avsuite.audio.resample import resample

    return resample(wave, int(round(sr * factor)), sr)


def mix_at_snr(wave: Tensor, other: Tensor, snr_db: float) -> Tensor:
    """``wave + k * other`` (``other`` looped/cut to ``wave``'s length) with ``k`` chosen so the
    power ratio wave : added is ``snr_db``; a silent ``other`` leaves ``wave`` unchanged."""
    if other.numel() == 0:
        return wave
    reps = -(-wave.numel() // other.numel())
    other = other.repeat(reps)[: wave.numel()]
    p_w, p_o = float(wave.pow(2).mean()), float(other.pow(2).mean())
    if p_o <= 0 or p_w <= 0:
        return wave
    return wave + other * math.sqrt(p_w / (p_o * 10 ** (snr_db / 10)))
