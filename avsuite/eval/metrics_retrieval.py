"""Audio-text retrieval metrics with several captions per clip (AudioCaps / Clotho rules). Pure numpy.

Input: ``sim (n_clips, n_captions)`` similarity (higher = closer) and ``caption_clip (n_captions,)``,
the clip index of every caption (e.g. 5 captions per Clotho clip).

- text->audio: every caption is a query with exactly ONE relevant clip. ``R@K`` = fraction of
  captions whose clip ranks within the top K; ``mAP@10`` = mean over captions of ``1/rank`` if
  ``rank <= 10`` else 0 (the DCASE task-6b / Clotho evaluation).
- audio->text: every clip is a query; its relevant items are ALL its captions. ``R@K`` = fraction of
  clips with ANY of their captions in the top K; ``mAP@10`` = mean over clips of
  ``(1/|R|) sum_{relevant r at position p_r <= 10} (hits up to p_r) / p_r`` with ``|R|`` the number
  of captions of the clip (the DCASE baseline divides by its 5 captions likewise).

Ranks are 1-based. Ties are broken AGAINST relevant items (a relevant item sits after every
irrelevant item with an equal score), so a constant similarity scores chance, never perfect.
``medr``/``meanr`` are the median/mean rank of the first relevant item. All metrics in [0, 1].
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _to_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def check_retrieval_inputs(sim, caption_clip) -> tuple[np.ndarray, np.ndarray]:
    """Validate; return ``(sim float64 (C, Q), caption_clip int64 (Q,))``."""
    s = _to_numpy(sim, "sim").astype(np.float64)
    c = _to_numpy(caption_clip, "caption_clip")
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"sim must be a non-empty (n_clips, n_captions) matrix, got shape {s.shape}")
    if c.ndim != 1 or c.shape[0] != s.shape[1]:
        raise ValueError(f"caption_clip must be (n_captions,) = ({s.shape[1]},), got shape {c.shape}")
    if c.dtype.kind == "f" and not np.all(c == np.round(c)):
        raise ValueError("caption_clip must hold integer clip indices")
    c = c.astype(np.int64)
    if c.min() < 0 or c.max() >= s.shape[0]:
        raise ValueError(f"caption_clip values must be in [0, {s.shape[0]}), got [{c.min()}, {c.max()}]")
    missing = np.setdiff1d(np.arange(s.shape[0]), c)
    if missing.size:
        raise ValueError(f"clips {missing[:5].tolist()} have no caption (audio->text is undefined for them)")
    if not np.all(np.isfinite(s)):
        raise ValueError("sim contains NaN or inf")
    return s, c


def relevant_positions(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based sorted positions of the relevant items in the ranking of ``scores (n,)`` (descending,
    ties against relevant items). ``relevant``: bool ``(n,)``."""
    rel = np.sort(scores[relevant])[::-1]
    irr = np.sort(scores[~relevant])  # ascending
    above = irr.size - np.searchsorted(irr, rel, side="left")  # irrelevant with score >= s_r
    return above + np.arange(1, rel.size + 1)


def _summary(prefix: str, first: np.ndarray, ap10: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    out = {f"{prefix}_R{k}": float(np.mean(first <= k)) for k in ks}
    out[f"{prefix}_mAP10"] = float(np.mean(ap10))
    out[f"{prefix}_medr"] = float(np.median(first))
    out[f"{prefix}_meanr"] = float(np.mean(first))
    return out


def text_to_audio(sim, caption_clip, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``t2a_R1, t2a_R5, t2a_R10, t2a_mAP10, t2a_medr, t2a_meanr``."""
    s, c = check_retrieval_inputs(sim, caption_clip)
    target = s[c, np.arange(s.shape[1])]  # (Q,)
    ranks = np.sum(s >= target[None, :], axis=0)  # 1 + (other clips scoring >= the relevant one)
    ap10 = np.where(ranks <= 10, 1.0 / ranks, 0.0)
    return _summary("t2a", ranks, ap10, ks)


def audio_to_text(sim, caption_clip, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``a2t_R1, a2t_R5, a2t_R10, a2t_mAP10, a2t_medr, a2t_meanr``."""
    s, c = check_retrieval_inputs(sim, caption_clip)
    first, ap10 = np.empty(s.shape[0]), np.empty(s.shape[0])
    for i in range(s.shape[0]):
        pos = relevant_positions(s[i], c == i)
        first[i] = pos[0]
        hit = pos <= 10
        ap10[i] = np.sum(np.arange(1, pos.size + 1)[hit] / pos[hit]) / pos.size
    return _summary("a2t", first, ap10, ks)


def retrieval_metrics(sim, caption_clip, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Both directions in one flat dict (see module docstring)."""
    return {**text_to_audio(sim, caption_clip, ks), **audio_to_text(sim, caption_clip, ks)}
