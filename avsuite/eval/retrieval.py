"""Audio-text retrieval with a CLAP model, plus a similarity heatmap plot.

The runner embeds captions and computes the similarity; the numbers come from
:mod:`avsuite.eval.metrics_retrieval` (AudioCaps/Clotho rules: text->audio every caption is a
query with one relevant clip; audio->text a clip is a hit at K if ANY of its captions ranks
within K; mAP@10 as in the DCASE evaluation). Keys: ``r1_a2t, r5_a2t, r10_a2t, map10_a2t,
medr_a2t, meanr_a2t`` and the same ``*_t2a``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from avsuite.eval.metrics_retrieval import retrieval_metrics


def unique_captions(captions: Sequence[Sequence[str]]) -> tuple[list[int], list[list[str]]]:
    """Keep captions that belong to ONE clip only (a caption shared by several clips, e.g. a class
    template, has no single relevant clip). -> (indices of clips that keep >= 1 caption, their captions)."""
    owners: dict[str, set[int]] = {}
    for i, caps in enumerate(captions):
        for c in caps:
            owners.setdefault(c, set()).add(i)
    keep, kept_caps = [], []
    for i, caps in enumerate(captions):
        mine = list(dict.fromkeys(c for c in caps if len(owners[c]) == 1))
        if mine:
            keep.append(i)
            kept_caps.append(mine)
    return keep, kept_caps


@torch.no_grad()
def retrieval_eval(model: Any, audio_emb: Tensor, captions: Sequence[Sequence[str]]) -> tuple[dict[str, float], Tensor]:
    """``audio_emb (N, D)`` unit-norm, ``captions[i]`` the captions of clip i ->
    (``{r1_a2t, ..., map10_t2a, retrieval_n, retrieval_captions}``, ``(N', Q)`` similarity).

    Only captions unique to one clip are queries (see :func:`unique_captions`); clips left with
    none are not part of the retrieval set (``retrieval_n`` counts the clips used)."""
    keep, captions = unique_captions(captions)
    if len(keep) < 2:
        raise ValueError("retrieval needs at least 2 clips with captions of their own")
    audio_emb = audio_emb[keep]
    flat, owner = [], []
    for i, caps in enumerate(captions):
        for c in caps:
            flat.append(c)
            owner.append(i)
    text = torch.cat([model.encode_text(flat[s:s + 256]).float().cpu() for s in range(0, len(flat), 256)])
    sim = audio_emb @ text.T                                          # (N', Q)
    raw = retrieval_metrics(sim.numpy(), np.asarray(owner))
    metrics = {}
    for key, value in raw.items():             # "t2a_R1" -> "r1_t2a", "a2t_mAP10" -> "map10_a2t"
        direction, name = key.split("_", 1)
        metrics[f"{name.lower()}_{direction}"] = value
    metrics["retrieval_n"] = float(len(keep))
    metrics["retrieval_captions"] = float(len(flat))
    metrics["retrieval_chance_r1_t2a"] = 1.0 / len(keep)
    return metrics, sim


