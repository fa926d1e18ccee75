"""Class-incremental scenarios: an ordered sequence of tasks, each a disjoint set of class labels.

    sc = class_incremental(labels, first=10, increment=5, seed=0)        # FSC-style 10 + 5 + 5 ...
    sc = by_group(labels, groups={"weather.is_rain": "weather", ...})    # one task per skill
    sc.task_of("weather.is_rain") -> 0;  sc.seen_classes(1) -> classes of tasks 0 and 1

Every class appears in exactly one task; empty tasks and unknown classes are errors.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence


class ScenarioError(ValueError):
    """A scenario is malformed: empty task, class in two tasks, unknown or missing class."""


@dataclass(frozen=True)
class Scenario:
    """``tasks[t]`` lists the class labels introduced at task ``t``; ``classes`` is their concatenation."""

    tasks: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ScenarioError("a scenario needs at least one task")
        seen: dict[str, int] = {}
        for t, task in enumerate(self.tasks):
            if not task:
                raise ScenarioError(f"task {t} is empty")
            for c in task:
                if c in seen:
                    raise ScenarioError(f"class {c!r} is in task {seen[c]} and task {t}")
                seen[c] = t

    @property
    def classes(self) -> list[str]:
        """All classes in task order: the index of a class is its output unit."""
        return [c for task in self.tasks for c in task]

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def task_of(self, label: str) -> int:
        for t, task in enumerate(self.tasks):
            if label in task:
                return t
        raise ScenarioError(f"label {label!r} is not in the scenario")

    def seen_classes(self, task: int) -> list[str]:
        """Classes of tasks ``0..task`` inclusive."""
        return [c for t in self.tasks[: task + 1] for c in t]

    def num_seen(self, task: int) -> int:
        return sum(len(t) for t in self.tasks[: task + 1])

    def check_labels(self, labels: Iterable[str], *, where: str = "data") -> None:
        """Raise if ``labels`` holds a class outside the scenario (listing a few)."""
        known = set(self.classes)
        unknown = sorted({lab for lab in labels if lab not in known})
        if unknown:
            shown = ", ".join(map(repr, unknown[:8])) + (" ..." if len(unknown) > 8 else "")
            raise ScenarioError(f"{len(unknown)} label(s) in {where} are not in the scenario: {shown}")

    def to_dict(self) -> dict:
        return {"tasks": [list(t) for t in self.tasks]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Scenario":
        return cls(tuple(tuple(t) for t in data["tasks"]))


def _ordered(labels: Iterable[str], seed: int | None) -> list[str]:
    classes = sorted(set(labels))
    if not classes:
        raise ScenarioError("no class labels given")
    if seed is not None:
        random.Random(seed).shuffle(classes)
    return classes


def class_incremental(labels: Iterable[str], *, first: int, increment: int, seed: int | None = 0,
                      order: Sequence[str] | None = None) -> Scenario:
    """``first`` classes in task 0, then ``increment`` per task (the last task takes the rest).

    ``order`` fixes the class order explicitly (it must be a permutation of the labels);
    otherwise the sorted labels are shuffled with ``seed`` (``None``: sorted order).
    """
    classes = _ordered(labels, seed)
    if order is not None:
        order = list(order)
        if sorted(order) != classes or len(set(order)) != len(order):
            missing = sorted(set(classes) - set(order))
            extra = sorted(set(order) - set(classes))
            raise ScenarioError(f"class order must list each label once; missing {missing[:5]}, unknown {extra[:5]}")
        classes = order
    if first < 1 or increment < 1:
        raise ScenarioError(f"first ({first}) and increment ({increment}) must be >= 1 (an empty task)")
    if first > len(classes):
        raise ScenarioError(f"first task wants {first} classes but only {len(classes)} exist")
    tasks = [tuple(classes[:first])]
    for i in range(first, len(classes), increment):
        tasks.append(tuple(classes[i:i + increment]))
    return Scenario(tuple(tasks))


def by_group(labels: Iterable[str], groups: Mapping[str, str], *, group_order: Sequence[str] | None = None) -> Scenario:
    """One task per group (e.g. per skill): ``groups[label] -> group name``.

    Groups come in ``group_order`` or sorted order; classes inside a group are sorted.
    """
    classes = sorted(set(labels))
    missing = [c for c in classes if c not in groups]
    if missing:
        raise ScenarioError(f"no group (task hint) for label(s) {missing[:5]}")
    names = list(group_order) if group_order is not None else sorted({groups[c] for c in classes})
    tasks = []
    for name in names:
        task = tuple(c for c in classes if groups[c] == name)
        if not task:
            raise ScenarioError(f"group {name!r} has no classes (an empty task)")
        tasks.append(task)
    left = [c for c in classes if groups[c] not in names]
    if left:
        raise ScenarioError(f"label(s) {left[:5]} belong to groups not in group_order")
    return Scenario(tuple(tasks))
