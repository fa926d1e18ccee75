"""TeminAL (two-stage temporal instillation) = CompA loss + TeminAL data; caption packing helpers.

TeminAL needs no new loss: both stages are :func:`~avsuite.losses.compa.modular_loss` /
:func:`~avsuite.losses.compa.compa_loss` with stage-specific hard negatives, which
:mod:`avsuite.data.compose` builds (``CompositionSampler(..., stage="teminal_a" | "teminal_b")``):

- stage A (single vs multi-event): composite audio "X followed by Y" / "X with Y"; hard negatives
  are the single-event captions "X", "Y" (and for a single-event clip, composites that mention it);
- stage B (temporal order): "X before Y" vs the negatives "Y before X" (order swap) and
  "X while Y" (operator swap).

What is left for the loss side is turning ragged caption lists into the padded tensors the loss
takes. Encode the unique captions of a batch ONCE with the text tower, then index::

    pack = pack_captions(positives, negatives)      # lists of lists of str, one list per audio
    feats = text_tower(pack.texts)                   # (U, D), U unique captions
    pos_text, neg_text = unpack(feats, pack)         # (B, P, D), (B, K, D)
    out = modular_loss(audio, pos_text, scale, pos_mask=pack.pos_mask,
                       neg_text=neg_text, neg_mask=pack.neg_mask)

Pure Python + torch; no text model here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CaptionPack:
    """Unique ``texts`` plus index/mask tensors: ``pos_index, pos_mask: (B, P)``,
    ``neg_index, neg_mask: (B, K)`` (indices into ``texts``; 0 where masked)."""

    texts: list[str]
    pos_index: Tensor
    pos_mask: Tensor
    neg_index: Tensor
    neg_mask: Tensor


def _pad(lists: list[list[str]], lookup: dict[str, int], min_width: int) -> tuple[Tensor, Tensor]:
    width = max([len(x) for x in lists] + [min_width])
    index = torch.zeros((len(lists), width), dtype=torch.long)
    mask = torch.zeros((len(lists), width), dtype=torch.bool)
    for i, caps in enumerate(lists):
        for k, c in enumerate(caps):
            index[i, k], mask[i, k] = lookup[c], True
    return index, mask


def pack_captions(positives: list[list[str]], negatives: list[list[str]] | None = None) -> CaptionPack:
    """Pack ragged per-audio caption lists. Every audio needs >= 1 positive; negatives may be empty.
    A negative equal to one of the SAME audio's positives is dropped (it would be a false negative)."""
    negatives = negatives if negatives is not None else [[] for _ in positives]
    if len(negatives) != len(positives):
        raise ValueError(f"{len(positives)} positive lists but {len(negatives)} negative lists")
    for i, caps in enumerate(positives):
        if not caps:
            raise ValueError(f"audio {i} has no positive caption")
        if not all(isinstance(c, str) for c in caps):
            raise ValueError(f"audio {i}: captions must be strings")
    negatives = [[c for c in negs if c not in set(pos)] for pos, negs in zip(positives, negatives)]
    lookup: dict[str, int] = {}
    for caps in (*positives, *negatives):
        for c in caps:
            lookup.setdefault(c, len(lookup))
    pos_index, pos_mask = _pad(positives, lookup, 1)
    neg_index, neg_mask = _pad(negatives, lookup, 0)
    return CaptionPack(list(lookup), pos_index, pos_mask, neg_index, neg_mask)


def unpack(features: Tensor, pack: CaptionPack) -> tuple[Tensor, Tensor]:
    """``features: (U, D)`` for ``pack.texts`` -> ``pos_text (B, P, D)``, ``neg_text (B, K, D)``."""
    if features.dim() != 2 or features.shape[0] != len(pack.texts):
        raise ValueError(f"features must be ({len(pack.texts)}, D) for the packed texts, got {tuple(features.shape)}")
    dev = features.device
    return features[pack.pos_index.to(dev)], features[pack.neg_index.to(dev)]
