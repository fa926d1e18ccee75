"""Plots of continual runs (matplotlib is imported lazily, inside the functions)."""

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


def compare_runs(runs: Mapping[str, str | Path], out_png: str | Path | None = None) -> str:
    """Read ``metrics.json`` of several runs; return a markdown table (and plot their curves).

    ``runs``: name -> run dir. Every run needs ``acc_after_task_<t>`` keys (written by continual_slu).
    """
    import json

    lines = ["| method | avg acc (%) | last acc (%) | forgetting (%) | BWT (%) | acc after each task (%) |",
             "|---|---|---|---|---|---|"]
    curves = {}
    for name, run in runs.items():
        m = json.loads((Path(run) / "metrics.json").read_text())
        n = int(m["num_tasks"])
        curves[name] = [m[f"acc_after_task_{t}"] for t in range(n)]
        lines.append(f"| {name} | {100 * m['avg_acc']:.1f} | {100 * m['last_acc']:.1f} | "
                     f"{100 * m['forgetting']:.1f} | {100 * m['bwt']:.1f} | "
                     + " / ".join(f"{100 * a:.1f}" for a in curves[name]) + " |")
    if out_png is not None:
        plot_accuracy_curves(curves, out_png)
    return "\n".join(lines)


if __name__ == "__main__":  # python -m avsuite.viz_continual OUT.png NAME=RUN_DIR ...
    import sys

    pairs = dict(arg.rsplit("=", 1) for arg in sys.argv[2:])
    print(compare_runs(pairs, sys.argv[1]))
