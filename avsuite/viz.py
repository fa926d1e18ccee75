"""Plots people would rather look at than read: loss curves, confusion matrices, similarity
heatmaps, accuracy-per-task curves. matplotlib (Agg) is imported lazily, inside the functions.

    python -m avsuite.viz compare OUT.png finetune=runs/cl/finetune coconut=runs/cl/coconut
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence


@contextlib.contextmanager
def figure(path: str | Path, size: tuple[float, float], dpi: int = 110) -> Iterator[tuple[Any, Any]]:
    """Yield ``(fig, ax)``; on exit lay out, save a PNG at ``path`` (folders created) and close."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    try:
        yield fig, ax
        fig.tight_layout()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)


def plot_loss_curve(history: Sequence[tuple[int, float]], path: str | Path) -> Path | None:
    """Training loss per step with a moving mean; nothing is written for an empty history."""
    if not history:
        return None
    steps, losses = zip(*history)
    k = max(1, len(losses) // 50)
    smooth = [sum(losses[max(0, i - k):i + 1]) / len(losses[max(0, i - k):i + 1]) for i in range(len(losses))]
    with figure(path, (6, 3.5)) as (_, ax):
        ax.plot(steps, losses, alpha=0.3, label="loss")
        ax.plot(steps, smooth, label=f"moving mean ({k + 1})")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend()
    return Path(path)


def plot_offset_check(pairs: Sequence[tuple[int, float]], path: str | Path) -> Path | None:
    """SyncNet offset check: AV offset measured by LSE vs the true audio shift k, one dot per
    (clip, k) (jittered), the identity line with its +-1 frame band, and the fraction within it per k."""
    if not pairs:
        return None
    import numpy as np

    k = np.array([p[0] for p in pairs], dtype=float)
    got = np.array([p[1] for p in pairs], dtype=float)
    ks = np.unique(k)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(k))
    with figure(path, (6, 4)) as (_, ax):
        ax.fill_between(ks, ks - 1, ks + 1, color="tab:green", alpha=0.15, label="within 1 frame")
        ax.plot(ks, ks, color="tab:green", lw=1)
        ax.scatter(k + jitter, got, s=8, alpha=0.5, label="measured (one clip)")
        ax.plot(ks, [np.median(got[k == s]) for s in ks], "k.-", label="median")
        for s in ks:
            ax.annotate(f"{np.mean(np.abs(got[k == s] - s) <= 1):.0%}", (s, ks.max() + 2.5), ha="center", fontsize=7)
        ax.set_xlabel("true audio shift k (frames ahead of the video)")
        ax.set_ylabel("AV offset measured (LSE)")
        within = float(np.mean(np.abs(got - k) <= 1))
        ax.set_title(f"offset check: {within:.1%} of {len(k)} (clip, k) within 1 frame")
        ax.set_ylim(min(ks.min(), got.min()) - 1, ks.max() + 4)
        ax.legend(loc="lower right", fontsize=8)
    return Path(path)


def plot_confusion(cm: Any, classes: Sequence[str], path: str | Path, title: str = "zero-shot confusion") -> Path:
    """Row-normalised confusion matrix ``cm (C, C)`` (true x predicted) as a heatmap."""
    n = len(classes)
    norm = cm.float() / cm.sum(1, keepdim=True).clamp(min=1)
    with figure(path, (max(4, 0.35 * n + 2), max(4, 0.35 * n + 1.5))) as (_, ax):
        ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(n), list(classes), rotation=90, fontsize=7)
        ax.set_yticks(range(n), list(classes), fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
    return Path(path)


def plot_similarity(sim: Any, row_names: Sequence[str], col_names: Sequence[str], path: str | Path,
                    title: str = "audio-text similarity") -> Path:
    """Heatmap of ``sim (R, C)`` (at most 40 x 40 shown)."""
    sim = sim[:40, :40].detach().float().cpu()
    r, c = sim.shape
    with figure(path, (max(5, 0.3 * c + 3), max(4, 0.3 * r + 2))) as (fig, ax):
        im = ax.imshow(sim.numpy(), cmap="viridis")
        ax.set_xticks(range(c), [str(n)[:30] for n in col_names[:c]], rotation=90, fontsize=6)
        ax.set_yticks(range(r), [str(n)[:30] for n in row_names[:r]], fontsize=6)
        ax.set_xlabel("text")
        ax.set_ylabel("audio")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, fraction=0.03)
    return Path(path)


def plot_accuracy_curves(curves: Mapping[str, Sequence[float]], path: str | Path, *,
                         classes_per_task: Sequence[int] | None = None,
                         title: str = "Accuracy on all seen intents") -> Path:
    """One line per method: accuracy on the classes seen so far, after each task."""
    with figure(path, (6, 4)) as (_, ax):
        for name, acc in curves.items():
            ax.plot(range(1, len(acc) + 1), [100 * a for a in acc], marker="o", label=name)
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
    return Path(path)


def compare_runs(runs: Mapping[str, str | Path], out_png: str | Path | None = None) -> str:
    """Continual runs' ``metrics.json`` -> a markdown table (and their accuracy curves as a PNG).

    ``runs``: name -> run dir; each needs ``acc_after_task_<t>`` keys (written by continual_slu).
    """
    lines = ["| method | avg acc (%) | last acc (%) | forgetting (%) | BWT (%) | acc after each task (%) |",
             "|---|---|---|---|---|---|"]
    curves = {}
    for name, run in runs.items():
        m = json.loads((Path(run) / "metrics.json").read_text())
        curves[name] = [m[f"acc_after_task_{t}"] for t in range(int(m["num_tasks"]))]
        lines.append(f"| {name} | {100 * m['avg_acc']:.1f} | {100 * m['last_acc']:.1f} | "
                     f"{100 * m['forgetting']:.1f} | {100 * m['bwt']:.1f} | "
                     + " / ".join(f"{100 * a:.1f}" for a in curves[name]) + " |")
    if out_png is not None:
        plot_accuracy_curves(curves, out_png)
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 4 or sys.argv[1] != "compare":
        raise SystemExit("usage: python -m avsuite.viz compare OUT.png NAME=RUN_DIR [NAME=RUN_DIR ...]")
    print(compare_runs(dict(arg.rsplit("=", 1) for arg in sys.argv[3:]), sys.argv[2]))
