"""Continual-learning metrics from an accuracy matrix.

``R[i][j]`` = accuracy on the test examples of task ``j`` after training task ``i`` (``j <= i``;
entries above the diagonal are ignored). ``seen[i]`` = accuracy on the test examples of all
classes seen up to task ``i`` (example-weighted). With ``T`` tasks:

- average incremental accuracy ``avg_acc = mean_i seen[i]``;  ``last_acc = seen[T-1]``;
- forgetting (Chaudhry et al.) ``mean_{j<T-1} max_{l in [j, T-2]} R[l][j] - R[T-1][j]``;
- backward transfer (Lopez-Paz & Ranzato) ``mean_{j<T-1} R[T-1][j] - R[j][j]``.
"""

from __future__ import annotations

from typing import Sequence


class MetricsError(ValueError):
    """The accuracy matrix is malformed."""


def _check(R: Sequence[Sequence[float]]) -> int:
    t = len(R)
    if t == 0:
        raise MetricsError("empty accuracy matrix")
    for i, row in enumerate(R):
        if len(row) < i + 1:
            raise MetricsError(f"row {i} needs accuracies for tasks 0..{i}, got {len(row)} values")
    return t


def forgetting(R: Sequence[Sequence[float]]) -> float:
    t = _check(R)
    if t < 2:
        return 0.0
    return sum(max(R[l][j] for l in range(j, t - 1)) - R[t - 1][j] for j in range(t - 1)) / (t - 1)


def backward_transfer(R: Sequence[Sequence[float]]) -> float:
    t = _check(R)
    if t < 2:
        return 0.0
    return sum(R[t - 1][j] - R[j][j] for j in range(t - 1)) / (t - 1)


def summarize(R: Sequence[Sequence[float]], seen: Sequence[float]) -> dict[str, float]:
    """``{"avg_acc", "last_acc", "forgetting", "bwt", "num_tasks"}`` from ``R`` and ``seen``."""
    t = _check(R)
    if len(seen) != t:
        raise MetricsError(f"{len(seen)} seen-class accuracies for {t} tasks")
    return {"avg_acc": sum(seen) / t, "last_acc": float(seen[-1]), "forgetting": forgetting(R),
            "bwt": backward_transfer(R), "num_tasks": float(t)}
