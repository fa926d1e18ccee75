"""Typed batches and their collate functions.

Every batch holds padded audio ``(B, T)`` and its ``lengths (B,)`` in samples; models turn them into
features with their own :class:`~avsuite.audio.frontend.AudioFrontend` (and frame lengths/masks).
With the feature cache stage (``data.cache_stage="features"``) ``audio`` is ``(B, n_mels, F)``
features and ``lengths`` frames: the model's frontend passes them through.
Collate functions take the pipeline's examples ``{"id", "wave": (T,), "row": dict}``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


def pad_right(items: list[Tensor], *, multiple_of: int = 1) -> tuple[Tensor, Tensor]:
    """Right-pad ``(..., T_i)`` tensors with zeros along the last dim -> ``(B, ..., T_max)`` and
    ``lengths (B,)`` (int64): waves ``(T_i,)`` or features ``(M, F_i)`` alike."""
    if not items:
        raise ValueError("cannot collate an empty list of tensors")
    lead = items[0].shape[:-1]
    if any(x.shape[:-1] != lead for x in items):
        raise ValueError(f"all items need the leading shape {tuple(lead)}; got "
                         f"{sorted({tuple(x.shape[:-1]) for x in items})}")
    lengths = torch.tensor([x.shape[-1] for x in items], dtype=torch.long)
    t = int(lengths.max())
    t = -(-t // multiple_of) * multiple_of
    out = torch.zeros(len(items), *lead, t, dtype=items[0].dtype)
    for i, x in enumerate(items):
        out[i, ..., : x.shape[-1]] = x
    return out, lengths


class _Movable:
    def to(self, device: torch.device | str):
        """A copy with every tensor field on ``device`` (lists and strings untouched)."""
        changes = {f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)
                   if isinstance(getattr(self, f.name), Tensor)}
        return dataclasses.replace(self, **changes)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class AudioTextBatch(_Movable):
    """Audio + captions. ``captions[i]`` lists every caption of clip i (>= 1)."""
    audio: Tensor
    lengths: Tensor
    captions: list[list[str]]
    labels: list[str | None]
    ids: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class IntentBatch(_Movable):
    """Spoken commands + intent labels (strings; the recipe maps them to class indices)."""
    audio: Tensor
    lengths: Tensor
    labels: list[str]
    texts: list[str]
    ids: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)


def row_captions(row: dict[str, Any]) -> list[str]:
    """A row's captions: ``captions``, else ``[text]``, else ``[label]``."""
    if row.get("captions"):
        return list(row["captions"])
    if row.get("text"):
        return [row["text"]]
    if row.get("label"):
        return [row["label"]]
    raise ValueError(f"row {row.get('id')!r} has no captions, text or label")


def pad_audio(examples: list[dict[str, Any]]) -> tuple[Tensor, Tensor]:
    """Examples' waves -> ``(B, T)`` + sample lengths; from the feature cache stage (``"feats"``)
    -> ``(B, n_mels, F)`` + frame lengths, which a model's frontend passes through."""
    key = "feats" if "feats" in examples[0] else "wave"
    return pad_right([e[key] for e in examples])


def collate_audio_text(examples: list[dict[str, Any]]) -> AudioTextBatch:
    audio, lengths = pad_audio(examples)
    rows = [e["row"] for e in examples]
    return AudioTextBatch(audio, lengths, [row_captions(r) for r in rows], [r.get("label") for r in rows],
                          [e["id"] for e in examples], rows)


def collate_intent(examples: list[dict[str, Any]]) -> IntentBatch:
    audio, lengths = pad_audio(examples)
    rows = [e["row"] for e in examples]
    missing = [r["id"] for r in rows if not r.get("label")]
    if missing:
        raise ValueError(f"intent rows without a 'label': {missing[:5]}")
    return IntentBatch(audio, lengths, [r["label"] for r in rows], [r.get("text", "") for r in rows],
                       [e["id"] for e in examples], rows)
