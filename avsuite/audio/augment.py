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
