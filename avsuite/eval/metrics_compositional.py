"""Winoground-style scores for 2x2 compositional / temporal sets. Pure numpy.

Each set has two audios and two captions that differ only in order or operator ("X before Y" /
"Y before X"); ``sims (n_sets, 2, 2)`` with ``sims[n, a, t] = sim(audio_a, text_t)`` and audio_i
matching text_i. Scores (strict ``>``: ties fail) per set::

    text  = s[0,0] > s[0,1] and s[1,1] > s[1,0]     (each audio picks its caption)
    audio = s[0,0] > s[1,0] and s[1,1] > s[0,1]     (each caption picks its audio)
    group = text and audio

Returned as fractions with the chance levels of random similarities: text/audio 1/4, group 1/6.
"""

from __future__ import annotations

import numpy as np

from avsuite.eval.metrics_retrieval import _to_numpy

CHANCE = {"text": 0.25, "audio": 0.25, "group": 1.0 / 6.0}


def winoground_scores(sims) -> dict[str, np.ndarray]:
    """Per-set booleans ``{"text", "audio", "group"}`` each ``(n_sets,)``."""
    s = _to_numpy(sims, "sims").astype(np.float64)
    if s.ndim == 2 and s.shape == (2, 2):
        s = s[None]
    if s.ndim != 3 or s.shape[1:] != (2, 2) or s.shape[0] == 0:
        raise ValueError(f"sims must be (n_sets, 2, 2) [set, audio, text], got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("sims contains NaN or inf")
    text = (s[:, 0, 0] > s[:, 0, 1]) & (s[:, 1, 1] > s[:, 1, 0])
    audio = (s[:, 0, 0] > s[:, 1, 0]) & (s[:, 1, 1] > s[:, 0, 1])
    return {"text": text, "audio": audio, "group": text & audio}


def compositional_metrics(sims, prefix: str = "") -> dict[str, float]:
    """``{prefix}text_score``, ``audio_score``, ``group_score`` and their ``*_chance``."""
    per = winoground_scores(sims)
    out = {}
    for k, v in per.items():
        out[f"{prefix}{k}_score"] = float(v.mean())
        out[f"{prefix}{k}_chance"] = CHANCE[k]
    return out
