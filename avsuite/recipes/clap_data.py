"""Data glue for the clap recipe (not a recipe itself): in-memory clip banks, label-aware batches.

Sound-event corpora here are small (hundreds to a few thousand clips) and trained for many
epochs on CPU, so the clap recipe decodes every clip ONCE (``avsuite.audio.io.load_audio``,
resampled to the model rate, bad files skipped and counted) and crops per step from memory.

:class:`LabelUniqueBatchSampler` builds batches whose clips have distinct labels where possible,
so InfoNCE is not asked to push apart two "dog" clips (false negatives) — a real gain on corpora
with few classes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from avsuite.audio.io import AudioDecodeError, load_audio


@dataclass
class Clip:
    id: str
    wave: Tensor                      # (T,) float32 at the bank's rate
    captions: list[str]
    label: str | None
    row: dict[str, Any] = field(default_factory=dict)


def row_captions(row: dict[str, Any]) -> list[str]:
    caps = row.get("captions") or ([row["text"]] if row.get("text") else [])
    if not caps and row.get("label"):
        caps = [f"the sound of {row['label']}"]
    return [str(c) for c in caps]


def load_clips(rows: list[dict[str, Any]], sr: int, *, max_seconds: float = 30.0,
               min_seconds: float = 0.0) -> tuple[list[Clip], dict[str, int]]:
    """Decode rows into memory at ``sr`` (each capped at ``max_seconds``); -> (clips, stats)."""
    clips, stats = [], {"loaded": 0, "skipped_decode": 0, "skipped_short": 0, "skipped_nocaption": 0}
    for row in rows:
        try:
            wave, _ = load_audio(row["audio"], sr)
        except AudioDecodeError:
            stats["skipped_decode"] += 1
            continue
        if wave.numel() < max(1, int(min_seconds * sr)):
            stats["skipped_short"] += 1
            continue
        caps = row_captions(row)
        if not caps:
            stats["skipped_nocaption"] += 1
            continue
        clips.append(Clip(str(row["id"]), wave[: int(max_seconds * sr)].contiguous(), caps, row.get("label"), row))
        stats["loaded"] += 1
    return clips, stats


def crop(wave: Tensor, n: int, *, train: bool, gen: torch.Generator | None = None) -> Tensor:
    """Random (train) or centre (eval) crop of ``(T,)`` to at most ``n`` samples."""
    if wave.numel() <= n:
        return wave
    span = wave.numel() - n
    start = int(torch.randint(span + 1, (), generator=gen)) if train else span // 2
    return wave[start:start + n]


class ClipDataset(Dataset):
    """Items ``{"id", "wave" (T,), "captions", "label"}``; train: random crop + random gain."""

    def __init__(self, clips: list[Clip], sr: int, max_seconds: float, *, train: bool, gain_db: float = 0.0):
        self.clips, self.n, self.train, self.gain_db = clips, int(sr * max_seconds), train, gain_db

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, Any]:
        c = self.clips[i]
        wave = crop(c.wave, self.n, train=self.train)
        if self.train and self.gain_db:
            wave = wave * 10 ** (float(torch.empty(()).uniform_(-self.gain_db, self.gain_db)) / 20)
        return {"id": c.id, "wave": wave, "captions": c.captions, "label": c.label}


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """-> ``{"audio" (B, T), "lengths" (B,), "captions": list[list[str]], "labels", "ids", "negatives"}``."""
    lengths = torch.tensor([it["wave"].numel() for it in items], dtype=torch.long)
    audio = torch.zeros(len(items), int(lengths.max()))
    for i, it in enumerate(items):
        audio[i, : it["wave"].numel()] = it["wave"]
    return {"audio": audio, "lengths": lengths, "captions": [it["captions"] for it in items],
            "labels": [it["label"] for it in items], "ids": [it["id"] for it in items],
            "negatives": [it.get("negatives", []) for it in items]}


def collate_examples(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate for the shared streaming pipeline (``{"id", "wave", "row"}`` examples)."""
    return collate_clips([{"id": e["id"], "wave": e["wave"], "captions": row_captions(e["row"]),
                           "label": e["row"].get("label")} for e in examples])


class LabelUniqueBatchSampler(Sampler[list[int]]):
    """Epoch-seeded batches of indices; within a batch labels are distinct while possible.

    Each epoch shuffles every label's clips, then repeatedly takes one clip from each of up to
    ``batch_size`` labels (labels with more clips left go first, ties random). With
    ``rank/world_size`` each rank gets every ``world_size``-th batch (equal counts, DDP-safe).
    """

    def __init__(self, labels: list[str | None], batch_size: int, *, seed: int = 0, drop_last: bool = True,
                 rank: int = 0, world_size: int = 1):
        self.labels, self.batch_size, self.seed = labels, batch_size, seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1000003 + self.epoch)
        groups: dict[str, list[int]] = {}
        for i, lab in enumerate(self.labels):
            groups.setdefault(lab if lab is not None else f"__item{i}", []).append(i)
        for g in groups.values():
            rng.shuffle(g)
        batches = []
        while any(groups.values()):
            keys = [k for k, g in groups.items() if g]
            rng.shuffle(keys)
            keys.sort(key=lambda k: -len(groups[k]))
            batch = [groups[k].pop() for k in keys[: self.batch_size]]
            if len(batch) < self.batch_size:   # fewer labels than batch: top up (duplicates allowed)
                rest = [i for k in keys for i in groups[k]]
                rng.shuffle(rest)
                extra = rest[: self.batch_size - len(batch)]
                for k in keys:
                    groups[k] = [i for i in groups[k] if i not in set(extra)]
                batch += extra
            batches.append(batch)
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        rng.shuffle(batches)
        n = len(batches) // self.world_size * self.world_size if self.world_size > 1 else len(batches)
        return batches[self.rank:n:self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        return len(self._batches())


def class_disjoint_split(rows: list[dict[str, Any]], test_fraction: float, *, seed: int = 0,
                         min_clips: int = 2) -> tuple[list[dict], list[dict]]:
    """Split rows by LABEL: a seeded ``test_fraction`` of the labels having >= ``min_clips`` clips
    go to test (never seen in training); all other rows train. -> (train_rows, test_rows)."""
    counts: dict[str, int] = {}
    for r in rows:
        if r.get("label"):
            counts[r["label"]] = counts.get(r["label"], 0) + 1
    eligible = sorted(lab for lab, n in counts.items() if n >= min_clips)
    rng = random.Random(seed)
    rng.shuffle(eligible)
    test_labels = set(eligible[: max(2, round(len(eligible) * test_fraction))])
    train = [r for r in rows if r.get("label") not in test_labels]
    test = [r for r in rows if r.get("label") in test_labels]
    return train, test


class CompositionMix(Dataset):
    """``base`` items, each replaced with probability ``prob`` by a composition from
    :class:`avsuite.data.compose.CompositionSampler` (CompA / TeminAL stages) over the same clips.

    Items gain ``"negatives"`` (hard-negative captions; empty for plain clips). The composition
    index is drawn from the torch RNG, so runs are reproducible under a seed.
    """

    def __init__(self, base: ClipDataset, stage: str, prob: float, *, sr: int, seed: int = 0,
                 gap_seconds: float = 0.25):
        from avsuite.data.compose import CompositionSampler

        rows = [{"id": c.id, "wave": c.wave, "label": c.label or c.captions[0]} for c in base.clips]
        half = base.n / sr / 2                       # two events fit in one training window
        self.base, self.prob = base, prob
        self.sampler = CompositionSampler(rows, seed, sr=sr, stage=stage, clip_seconds=half,
                                          gap_s=(gap_seconds * 0.5, gap_seconds * 1.5))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.base[i]
        if float(torch.rand(())) >= self.prob:
            return {**item, "negatives": []}
        ex = self.sampler[int(torch.randint(2**31 - 1, ()))]
        wave = ex["wave"][: self.base.n]
        label = "+".join(x for x in ex["labels"] if x) if ex["kind"] != "single" else ex["labels"][0]
        return {"id": "+".join(ex["ids"]), "wave": wave, "captions": ex["captions"], "label": label,
                "negatives": ex["negatives"]}
