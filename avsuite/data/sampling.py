"""Batch plans: which rows go together, as pure functions of ``(seed, epoch)``.

A sampler's ``plan(rows, epoch, global_batch)`` returns the epoch's GLOBAL batches (lists of
items, ``global_batch = batch_size * world_size`` items each); the reader gives rank r the r-th
slice of every global batch. Items are row indices (``int``) or tuples a recipe's load function
understands (``("replay", i)`` from :class:`ReplayMix`, compositions in clap).

- :class:`ShuffledBatches`: a seeded permutation per epoch (or file order), optionally grouped
  by duration within windows of 32 batches (less padding), ``passes`` shuffled passes per epoch.
- :class:`LabelDistinctBatches`: labels distinct inside a global batch while possible (no false
  negatives for contrastive losses).
- :class:`ReplayMix`: a base plan plus ``k`` rehearsal items from ``memory`` per global batch.

Every sampler takes ``include`` (row indices allowed; None = all) and has ``state_dict`` /
``load_state_dict`` for what is not a function of the config (the replay memory).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from avsuite.data.rows import ManifestRows

Item = Any
Plan = list[list[Item]]


def seed_of(*parts: Any) -> int:
    """A 63-bit seed from any parts (stable across processes and Python versions)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def rng_of(*parts: Any) -> np.random.Generator:
    return np.random.default_rng(seed_of(*parts))


class Sampler(Protocol):
    def plan(self, rows: ManifestRows, epoch: int, global_batch: int) -> Plan: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _chunks(order: Sequence[Item], size: int, drop_last: bool) -> Plan:
    out = [list(order[k:k + size]) for k in range(0, len(order), size)]
    if drop_last and out and len(out[-1]) < size:
        out.pop()
    return out


def _indices(rows: ManifestRows, include: Sequence[int] | None) -> np.ndarray:
    return np.arange(len(rows)) if include is None else np.asarray(include, dtype=np.int64)


@dataclass
class ShuffledBatches:
    """Seeded shuffle per epoch (``shuffle=False``: file order), fixed-size or length-bucketed batches."""
    seed: int = 0
    shuffle: bool = True
    bucket_by_length: bool = False
    drop_last: bool = False
    passes: int = 1
    include: Sequence[int] | None = None

    def plan(self, rows: ManifestRows, epoch: int, global_batch: int) -> Plan:
        out: Plan = []
        for p in range(self.passes):
            idx = _indices(rows, self.include)
            rng = rng_of(self.seed, epoch, p, "shuffle")
            if self.shuffle:
                idx = idx[rng.permutation(len(idx))]
            if not self.bucket_by_length:
                out += _chunks(idx.tolist(), global_batch, self.drop_last)
                continue
            window = global_batch * 32
            for w in range(0, len(idx), window):
                chunk = idx[w:w + window]
                dur = np.nan_to_num(rows.durations[chunk], nan=0.0)
                chunk = chunk[np.lexsort((chunk, dur))]
                batches = _chunks(chunk.tolist(), global_batch, self.drop_last)
                if self.shuffle:
                    batches = [batches[j] for j in rng.permutation(len(batches))]
                out += batches
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@dataclass
class LabelDistinctBatches:
    """Each epoch shuffles every label's rows, then repeatedly takes one row from each of up to
    ``global_batch`` labels (labels with more rows left first, ties random). Rows without a label
    are their own label. A batch is topped up with repeated labels only when fewer labels remain."""
    seed: int = 0
    drop_last: bool = True
    include: Sequence[int] | None = None

    def plan(self, rows: ManifestRows, epoch: int, global_batch: int) -> Plan:
        rng = rng_of(self.seed, epoch, "label-distinct")
        idx = _indices(rows, self.include)
        labels = rows.labels[idx]
        groups: dict[int, list[int]] = {}
        for i, lab in zip(idx.tolist(), labels.tolist()):
            groups.setdefault(lab if lab >= 0 else -1 - i, []).append(i)
        for g in groups.values():
            rng.shuffle(g)
        batches: Plan = []
        while groups:
            keys = list(groups)
            keys = [keys[j] for j in rng.permutation(len(keys))]
            keys.sort(key=lambda k: -len(groups[k]))          # stable: ties stay in random order
            batch = [groups[k].pop() for k in keys[:global_batch]]
            if len(batch) < global_batch:                     # fewer labels left than the batch
                rest = [i for k in keys for i in groups[k]]
                extra = set(rng.permutation(rest)[: global_batch - len(batch)].tolist()) if rest else set()
                for k in keys:
                    groups[k] = [i for i in groups[k] if i not in extra]
                batch += sorted(extra)
            groups = {k: g for k, g in groups.items() if g}
            batches.append(batch)
        if self.drop_last:
            batches = [b for b in batches if len(b) == global_batch]
        return [batches[j] for j in rng.permutation(len(batches))]

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@dataclass
class ReplayMix:
    """``base``'s plan with ``k`` rehearsal items ``("replay", i)`` per global batch, drawn without
    replacement from ``memory`` (row indices; set by the continual-learning callback) with a
    generator seeded by ``(seed, epoch, batch)``. ``memory`` is saved in the reader's state."""
    base: Any
    k: int
    seed: int = 0
    memory: list[int] = field(default_factory=list)

    def plan(self, rows: ManifestRows, epoch: int, global_batch: int) -> Plan:
        plan = self.base.plan(rows, epoch, global_batch)
        if not self.memory or self.k <= 0:
            return plan
        mem = np.asarray(self.memory, dtype=np.int64)
        out = []
        for b, batch in enumerate(plan):
            pick = mem[rng_of(self.seed, epoch, b, "replay").permutation(len(mem))[: self.k]]
            out.append(list(batch) + [("replay", int(i)) for i in pick])
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"memory": list(self.memory), "base": self.base.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory = [int(i) for i in state.get("memory", [])]
        self.base.load_state_dict(state.get("base", {}))


def rank_slice(batch: list[Item], rank: int, world_size: int) -> list[Item]:
    """Rank ``rank``'s share of a global batch: every ``world_size``-th item from ``rank`` (sizes
    differ by at most one; replay items appended by :class:`ReplayMix` spread over the ranks)."""
    return batch[rank::world_size]
