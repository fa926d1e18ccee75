"""Zero-shot classification metrics from a similarity matrix. Pure numpy.

``sim (n_clips, n_classes)`` (e.g. audio embeddings x class-prompt embeddings), ``labels (n_clips,)``
class indices. ``top{k}`` = fraction of clips whose true class is among the k best-scored classes,
ties broken AGAINST the true class (a constant similarity scores 0 top-1, not 1); ``chance`` =
1 / n_classes (top-1 of a random guess); ``balanced_acc`` = mean per-class recall over classes
present in ``labels``. :func:`confusion_matrix` counts ``[true, predicted]`` with prediction =
argmax (first index on ties).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from avsuite.eval.metrics_retrieval import _to_numpy


def check_zeroshot_inputs(sim, labels) -> tuple[np.ndarray, np.ndarray]:
    s = _to_numpy(sim, "sim").astype(np.float64)
    y = _to_numpy(labels, "labels")
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"sim must be a non-empty (n_clips, n_classes) matrix, got shape {s.shape}")
    if y.ndim != 1 or y.shape[0] != s.shape[0]:
        raise ValueError(f"labels must be (n_clips,) = ({s.shape[0]},), got shape {y.shape}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= s.shape[1]:
        raise ValueError(f"labels must be class indices in [0, {s.shape[1]}), got [{y.min()}, {y.max()}]")
    if not np.all(np.isfinite(s)):
        raise ValueError("sim contains NaN or inf")
    return s, y


def true_class_rank(sim, labels) -> np.ndarray:
    """1-based rank of the true class per clip (ties against it)."""
    s, y = check_zeroshot_inputs(sim, labels)
    target = s[np.arange(s.shape[0]), y]
    return np.sum(s >= target[:, None], axis=1)


def confusion_matrix(sim, labels) -> np.ndarray:
    """``(n_classes, n_classes)`` int64 counts, rows = true class, columns = argmax prediction."""
    s, y = check_zeroshot_inputs(sim, labels)
    cm = np.zeros((s.shape[1], s.shape[1]), dtype=np.int64)
    np.add.at(cm, (y, s.argmax(axis=1)), 1)
    return cm


def zeroshot_metrics(sim, labels, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """``top1``, ``top5`` (only k <= n_classes), ``chance``, ``balanced_acc``."""
    s, y = check_zeroshot_inputs(sim, labels)
    rank = true_class_rank(s, y)
    out = {f"top{k}": float(np.mean(rank <= k)) for k in ks if k <= s.shape[1]}
    out["chance"] = 1.0 / s.shape[1]
    hit = rank == 1
    out["balanced_acc"] = float(np.mean([hit[y == c].mean() for c in np.unique(y)]))
    return out
