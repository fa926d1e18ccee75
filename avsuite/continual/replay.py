"""Experience-replay memories with a fixed budget of stored examples (ids + labels).

- :class:`ReservoirBuffer` — reservoir sampling over the stream of training examples: after
  ``n`` examples each one is in memory with probability ``capacity / n`` (random replay).
- :class:`ClassBalancedBuffer` — ``capacity // n_classes`` exemplars per seen class, picked by
  iCaRL herding on embeddings (``selection="herding"``) or at random (``"random"``); when new
  classes arrive the older classes keep the first exemplars of their (ordered) lists.

Buffers store example ids and labels only (any hashable ids: ``continual_slu`` uses manifest row
indices, which its reader's replay mix turns back into audio). ``state_dict()``
holds plain lists, ints and a generator-state tensor, so it saves in a ``weights_only`` checkpoint.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor


class ReplayError(ValueError):
    """Bad buffer configuration or input (e.g. budget smaller than the number of classes)."""


def herding_order(features: Tensor, k: int) -> list[int]:
    """iCaRL herding: indices of ``k`` rows of ``features (N, D)`` whose running mean tracks the mean.

    Rows are L2-normalised; step ``j`` picks (without replacement) the row ``i`` minimising
    ``|| mu - (sum_{picked} f + f_i) / j ||``; the first pick is the row nearest to the class mean.
    """
    if features.dim() != 2:
        raise ReplayError(f"herding expects (N, D) features, got shape {tuple(features.shape)}")
    n = features.shape[0]
    k = min(k, n)
    f = torch.nn.functional.normalize(features.double(), dim=1)
    mu = f.mean(dim=0)
    picked: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(n, dtype=torch.bool)
    for j in range(1, k + 1):
        dist = ((mu[None, :] - (running[None, :] + f) / j) ** 2).sum(dim=1)
        dist[~available] = float("inf")
        i = int(torch.argmin(dist))
        picked.append(i)
        available[i] = False
        running += f[i]
    return picked


class ReplayBuffer:
    """Common interface: ``update`` after each task, ``ids``/``labels`` to replay, state save/load."""

    kind = "base"

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ReplayError(f"memory capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.generator = torch.Generator().manual_seed(seed)
        self.ids: list[str] = []
        self.labels: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def update(self, ids: Sequence[str], labels: Sequence[str], features: Tensor | None = None) -> None:
        raise NotImplementedError

    def items(self) -> list[tuple[str, str]]:
        return list(zip(self.ids, self.labels))

    def class_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for lab in self.labels:
            counts[lab] = counts.get(lab, 0) + 1
        return counts

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "capacity": self.capacity, "ids": list(self.ids),
                "labels": list(self.labels), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind or int(state["capacity"]) != self.capacity:
            raise ReplayError(f"buffer state is for {state.get('kind')}/{state.get('capacity')}, "
                              f"not {self.kind}/{self.capacity}")
        self.ids, self.labels = list(state["ids"]), list(state["labels"])
        self.generator.set_state(state["generator"])

    @staticmethod
    def _check(ids: Sequence[str], labels: Sequence[str], features: Tensor | None) -> None:
        if len(ids) != len(labels):
            raise ReplayError(f"{len(ids)} ids but {len(labels)} labels")
        if features is not None and features.shape[0] != len(ids):
            raise ReplayError(f"{len(ids)} ids but {features.shape[0]} feature rows")


class ReservoirBuffer(ReplayBuffer):
    """Reservoir sampling (Vitter's algorithm R) over every example passed to :meth:`update`."""

    kind = "reservoir"

    def __init__(self, capacity: int, seed: int = 0):
        super().__init__(capacity, seed)
        self.n_seen = 0

    def update(self, ids: Sequence[str], labels: Sequence[str], features: Tensor | None = None) -> None:
        """Stream ``ids`` (in the given order) through the reservoir; features are ignored."""
        self._check(ids, labels, features)
        for cid, lab in zip(ids, labels):
            self.n_seen += 1
            if len(self.ids) < self.capacity:
                self.ids.append(cid)
                self.labels.append(lab)
                continue
            j = int(torch.randint(self.n_seen, (1,), generator=self.generator))
            if j < self.capacity:
                self.ids[j], self.labels[j] = cid, lab

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "n_seen": self.n_seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.n_seen = int(state["n_seen"])


class ClassBalancedBuffer(ReplayBuffer):
    """``capacity // n_classes`` exemplars per class; herding (needs features) or random picks."""

    kind = "class_balanced"

    def __init__(self, capacity: int, seed: int = 0, selection: str = "herding"):
        super().__init__(capacity, seed)
        if selection not in ("herding", "random"):
            raise ReplayError(f"selection must be 'herding' or 'random', got {selection!r}")
        self.selection = selection
        self.per_class: dict[str, list[str]] = {}   # class -> ordered exemplar ids

    def update(self, ids: Sequence[str], labels: Sequence[str], features: Tensor | None = None) -> None:
        """Add the classes in ``labels`` (new ones), then shrink every class to the new quota."""
        self._check(ids, labels, features)
        if self.selection == "herding" and features is None:
            raise ReplayError("herding selection needs features (N, D) for the examples")
        new = sorted(set(labels) - set(self.per_class))
        n_classes = len(self.per_class) + len(new)
        if n_classes == 0:                          # nothing seen yet and nothing given (all unreadable)
            return
        if n_classes > self.capacity:
            raise ReplayError(f"memory budget {self.capacity} is smaller than the {n_classes} classes seen; "
                              "a class-balanced memory needs at least one slot per class")
        quota = self.capacity // n_classes
        for lab in new:
            idx = [i for i, x in enumerate(labels) if x == lab]
            if self.selection == "herding":
                order = [idx[i] for i in herding_order(features[idx], quota)]
            else:
                perm = torch.randperm(len(idx), generator=self.generator)[:quota].tolist()
                order = [idx[i] for i in perm]
            self.per_class[lab] = [ids[i] for i in order]
        for lab in self.per_class:
            self.per_class[lab] = self.per_class[lab][:quota]
        self.ids = [cid for lab in self.per_class for cid in self.per_class[lab]]
        self.labels = [lab for lab in self.per_class for _ in self.per_class[lab]]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "selection": self.selection,
                "classes": list(self.per_class), "per_class": [list(v) for v in self.per_class.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.selection = state["selection"]
        self.per_class = {c: list(v) for c, v in zip(state["classes"], state["per_class"])}


def make_buffer(kind: str, capacity: int, seed: int = 0) -> ReplayBuffer:
    """``"reservoir"``, ``"herding"`` or ``"random_balanced"``."""
    if kind == "reservoir":
        return ReservoirBuffer(capacity, seed)
    if kind == "herding":
        return ClassBalancedBuffer(capacity, seed, "herding")
    if kind == "random_balanced":
        return ClassBalancedBuffer(capacity, seed, "random")
    raise ReplayError(f"unknown memory kind {kind!r}; choose reservoir, herding or random_balanced")
