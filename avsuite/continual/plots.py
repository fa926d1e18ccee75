"""Plots of a continual run (matplotlib is imported lazily, inside the function)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence


def plot_accuracy_curves(curves: Mapping[str, Sequence[float]], out: str | Path, *,
                         classes_per_task: Sequence[int] | None = None,
                         title: str = "Accuracy on all seen intents") -> Path:
    """One line per method: accuracy on the seen classes after each task; saves a PNG at ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for name, acc in curves.items():
        xs = list(range(1, len(acc) + 1))
        ax.plot(xs, [100 * a for a in acc], marker="o", label=name)
    n = max((len(a) for a in curves.values()), default=1)
    ax.set_xticks(range(1, n + 1))
    if classes_per_task:
        seen = [sum(classes_per_task[: i + 1]) for i in range(len(classes_per_task))]
        ax.set_xticklabels([f"{i + 1}\n({s})" for i, s in enumerate(seen)])
        ax.set_xlabel("task (classes seen)")
    else:
        ax.set_xlabel("task")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
