"""Audio-text retrieval with a CLAP model (AudioCaps/Clotho rules), plus a similarity heatmap plot.

Text->audio: every caption is a query with exactly one relevant clip. Audio->text: a clip is a
hit at K if ANY of its captions ranks within K. mAP@10 as in the DCASE evaluation:
``AP@10 = (1 / min(n_rel, 10)) * sum_{relevant r <= 10} precision@r``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor


def _ranks_of_relevant(scores: Tensor, relevant: Tensor) -> list[Tensor]:
    """``scores (Q, N)``, ``relevant (Q, N)`` bool -> per query the 1-based ranks of relevant items."""
    order = scores.argsort(dim=1, descending=True, stable=True)
    rel_sorted = torch.gather(relevant, 1, order)
    return [torch.nonzero(r).flatten() + 1 for r in rel_sorted]


def recall_and_map(scores: Tensor, relevant: Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """-> ``{"r1", "r5", "r10", "map10"}`` for queries ``scores (Q, N)`` with ``relevant (Q, N)``."""
    ranks = _ranks_of_relevant(scores, relevant)
    out = {}
    for k in ks:
        out[f"r{k}"] = sum(float(len(r) > 0 and int(r[0]) <= k) for r in ranks) / len(ranks)
    aps = []
    for r in ranks:
        n_rel = min(len(r), 10)
        hits = r[r <= 10]
        aps.append(sum((i + 1) / float(rank) for i, rank in enumerate(hits.tolist())) / n_rel if n_rel else 0.0)
    out["map10"] = sum(aps) / len(aps)
    return out


@torch.no_grad()
def retrieval_eval(model: Any, audio_emb: Tensor, captions: Sequence[Sequence[str]]) -> tuple[dict[str, float], Tensor]:
    """``audio_emb (N, D)`` unit-norm, ``captions[i]`` the captions of clip i ->
    (``{r1_a2t, r5_a2t, r10_a2t, map10_a2t, r1_t2a, ..., retrieval_chance_r1}``, ``(N, N_caps)`` similarity)."""
    flat, owner = [], []
    for i, caps in enumerate(captions):
        for c in caps:
            flat.append(c)
            owner.append(i)
    if not flat:
        raise ValueError("retrieval needs captions")
    text = torch.cat([model.encode_text(flat[s:s + 256]).float().cpu() for s in range(0, len(flat), 256)])
    sim = audio_emb @ text.T                                          # (N, Q)
    owner_t = torch.tensor(owner)
    relevant = owner_t[None, :] == torch.arange(len(captions))[:, None]   # (N, Q)
    a2t = recall_and_map(sim, relevant)
    t2a = recall_and_map(sim.T, relevant.T)
    metrics = {f"{k}_a2t": v for k, v in a2t.items()}
    metrics.update({f"{k}_t2a": v for k, v in t2a.items()})
    metrics["retrieval_n"] = float(len(captions))
    metrics["retrieval_chance_r1_t2a"] = 1.0 / len(captions)
    return metrics, sim


def plot_similarity(sim: Tensor, row_names: Sequence[str], col_names: Sequence[str], path: str | Path,
                    title: str = "audio-text similarity") -> Path:
    """Heatmap of ``sim (R, C)`` (at most 40 x 40 shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sim = sim[:40, :40].detach().float().cpu()
    r, c = sim.shape
    fig, ax = plt.subplots(figsize=(max(5, 0.3 * c + 3), max(4, 0.3 * r + 2)))
    im = ax.imshow(sim.numpy(), cmap="viridis")
    ax.set_xticks(range(c), [str(n)[:30] for n in col_names[:c]], rotation=90, fontsize=6)
    ax.set_yticks(range(r), [str(n)[:30] for n in row_names[:r]], fontsize=6)
    ax.set_xlabel("text")
    ax.set_ylabel("audio")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
