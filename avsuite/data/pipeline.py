"""The one stateful reader: manifest rows -> typed batches, for every workload (fairseq2.data).

    rows (ManifestRows) --duration filter--> sampler plan of GLOBAL batches (pure function of
    seed + epoch) --> rank slice --> skip(consumed) --> map(load items + collate, parallel)
    --> prefetch --> batches

The plan is built on row *indices*, so resuming is exact and cheap: the state is
``{"epoch", "consumed", "sampler"}`` and a restore skips consumed batches without decoding them.
Every random choice made while loading (crop offset, gain, caption, composition) comes from a
generator seeded by ``(seed, epoch, global batch, slot)``: the same bytes whatever the thread
count, the rank or an interruption. Rows that cannot be used are skipped and counted by reason
(``unreadable``, ``too_short``, ``too_long``, or a recipe's own) with a summary at the end of each
epoch, unless ``strict`` is set (the first bad file raises). See docs/data_layer.md.
"""

from __future__ import annotations

import logging
import math
import pickle
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

import numpy as np
import torch

from avsuite.audio.io import MAX_SECONDS_DEFAULT, AudioDecodeError, load_audio
from avsuite.data.rows import ManifestRows
from avsuite.data.sampling import Item, Sampler, ShuffledBatches, rank_slice, seed_of
from avsuite.data.workers import one_op_thread

log = logging.getLogger(__name__)

Example = dict[str, Any]
Collate = Callable[[list[Example]], Any]


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """The data section every recipe embeds (recipes subclass it to add their own fields)."""
    manifest: str = ""
    valid_manifest: str | None = None
    test_manifest: str | None = None
    #: decode audio to this rate; must equal the model frontend's input rate
    sample_rate: int = 16000
    #: per device: a step sees batch_size * world_size rows in total
    batch_size: int = 16
    #: FILTER: rows shorter / longer than this (manifest duration, else decoded) are skipped and counted
    min_seconds: float = 0.0
    max_seconds: float | None = None
    #: CROP: random window (train) or centre (eval) of this length; null keeps the whole clip
    crop_seconds: float | None = None
    shuffle: bool = True
    #: group rows of similar duration (within windows of 32 batches) to cut padding
    bucket_by_length: bool = False
    drop_last: bool = False
    seed: int = 0
    #: decode threads in this process (fairseq2's map); used when num_workers is 0
    num_parallel_calls: int = 2
    #: decode in this many worker PROCESSES instead (torch DataLoader workers: no GIL shared with the
    #: training thread); same plan, seeds and bytes as the threads, resume stays exact
    num_workers: int = 0
    prefetch: int = 2
    #: the first unreadable or unusable row raises instead of being skipped and counted
    strict: bool = False
    #: on-disk cache of decoded, resampled audio (memory-mapped); null = off
    cache_dir: str | None = None
    #: what the cache keeps: "audio" (decoded waves) or "features" (the frontend's output of the whole
    #: row, computed by a standalone frontend from the recipe's FrontendConfig; needs crop_seconds null)
    cache_stage: Literal["audio", "features"] = "audio"

    def __post_init__(self) -> None:
        if self.sample_rate < 1:
            raise ValueError(f"sample_rate must be >= 1, got {self.sample_rate}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        for key in ("max_seconds", "crop_seconds"):
            v = getattr(self, key)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"{key} must be a positive number or null, got {v}")
        if not (math.isfinite(self.min_seconds) and self.min_seconds >= 0):
            raise ValueError(f"min_seconds must be >= 0, got {self.min_seconds}")
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise ValueError(f"max_seconds {self.max_seconds} < min_seconds {self.min_seconds}")
        if self.num_parallel_calls < 1 or self.prefetch < 0 or self.num_workers < 0:
            raise ValueError("num_parallel_calls must be >= 1, num_workers >= 0 and prefetch >= 0")
        if self.cache_stage not in ("audio", "features"):
            raise ValueError(f"cache_stage must be 'audio' or 'features', got {self.cache_stage!r}")
        if self.cache_stage == "features":
            from avsuite.data.features import check_feature_stage

            check_feature_stage(self, None, need_frontend=False)


def check_sample_rate(data: DataConfig, frontend: Any) -> None:
    """Fail at config load when the data rate is not the rate the model's frontend expects."""
    expected = getattr(frontend, "input_sample_rate", None) or frontend.sample_rate
    if data.sample_rate != expected:
        raise ValueError(f"data.sample_rate={data.sample_rate} but the frontend expects {expected} Hz input "
                         f"(frontend.input_sample_rate or frontend.sample_rate); make them equal")


class SkipCounter:
    """Thread-safe counts of skipped rows by reason, with a few examples for the summary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.examples: list[str] = []

    def add(self, reason: str, detail: str) -> None:
        with self._lock:
            self.counts[reason] += 1
            if len(self.examples) < 5:
                self.examples.append(detail)

    def merge(self, counts: Counter[str], examples: list[str]) -> None:
        """Add a worker process's counts (its examples fill the free example slots)."""
        with self._lock:
            self.counts.update(counts)
            self.examples.extend(examples[:max(5 - len(self.examples), 0)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()))
        return f"skipped {self.total} row(s) ({parts}); e.g. " + "; ".join(self.examples)


class SkipRow(Exception):
    """Raised by a load function for an unusable row: counted under ``reason`` (fatal when strict)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.reason, str(self))


@dataclass
class ItemContext:
    """What a load function sees: the rows, the config, the mode, the epoch, the skip counter."""
    rows: ManifestRows
    cfg: DataConfig
    train: bool
    epoch: int
    stats: SkipCounter
    cache: Any = None
    #: the feature cache stage (:class:`~avsuite.data.features.FeatureCache`) when ``cache_stage="features"``
    feature_cache: Any = None
    #: rows parsed for this batch (a load reads a row for decode and again for its example)
    _parsed: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def row(self, i: int) -> dict[str, Any]:
        row = self._parsed.get(i)
        if row is None:
            row = self._parsed[i] = self.rows[i]
        return row

    def skip(self, reason: str, message: str) -> None:
        """Count a skipped row (raise :class:`SkipRow` when ``strict``)."""
        if self.cfg.strict:
            raise SkipRow(reason, message)
        self.stats.add(reason, message)

    def decode(self, i: int, gen: torch.Generator, *, crop_seconds: float | None | str = "cfg") -> torch.Tensor | None:
        """Row ``i``'s audio ``(T,)`` float32 at ``cfg.sample_rate``, cropped (random window from
        ``gen`` in training, centre in eval) to ``crop_seconds`` (default ``cfg.crop_seconds``);
        None after counting when unreadable / too short / too long. A row with ``offset`` (and
        ``duration``) is that segment of its file, read with a seek (:func:`row_segment`)."""
        row, cfg = self.row(i), self.cfg
        crop = cfg.crop_seconds if crop_seconds == "cfg" else crop_seconds
        pos = float(torch.rand((), generator=gen)) if self.train else None
        window, segment = ((crop, pos) if crop else None), row_segment(row)
        try:
            if self.cache is not None:
                wave = self.cache.load(row["audio"], max_seconds=cfg.max_seconds, window=window, segment=segment)
            else:
                wave, _ = load_audio(row["audio"], cfg.sample_rate, max_seconds=cfg.max_seconds or MAX_SECONDS_DEFAULT,
                                     window=window, segment=segment)
        except AudioDecodeError as exc:
            return self._failed(row, exc)
        if cfg.min_seconds and np.isnan(self.rows.durations[i]) and wave.numel() < cfg.min_seconds * cfg.sample_rate:
            self.skip("too_short", f"{row['id']}: {wave.numel() / cfg.sample_rate:.2f} s < {cfg.min_seconds} s")
            return None
        return wave

    def features(self, i: int) -> torch.Tensor | None:
        """Row ``i``'s frontend features ``(n_mels, F)`` from the feature cache stage (computed once per
        file or segment by a standalone frontend built from the recipe's FrontendConfig, then read
        memory-mapped); None after counting, as :meth:`decode`. Models take them in place of waves."""
        if self.feature_cache is None:
            raise RuntimeError("no feature cache stage: set data.cache_stage='features' and data.cache_dir, "
                               "and give the Reader the recipe's frontend config (Reader(frontend=...))")
        row, cfg = self.row(i), self.cfg
        try:
            return self.feature_cache.load(row["audio"], max_seconds=cfg.max_seconds, segment=row_segment(row))
        except AudioDecodeError as exc:
            return self._failed(row, exc)

    def _failed(self, row: dict[str, Any], exc: AudioDecodeError) -> None:
        if self.cfg.strict:
            raise exc
        reason = "too_long" if exc.reason.startswith("too long") and self.cfg.max_seconds else "unreadable"
        self.stats.add(reason, f"{row['id']}: {exc.reason}")
        return None


def row_segment(row: dict[str, Any]) -> tuple[float, float | None] | None:
    """``(offset, duration | None)`` seconds of a row that is a segment of a longer file (MuST-C
    style ``offset`` / ``duration``), else None (the whole file)."""
    if row.get("offset") is None:
        return None
    return float(row["offset"]), (float(row["duration"]) if row.get("duration") else None)


def load_row(ctx: ItemContext, item: Item, gen: torch.Generator) -> Example | None:
    """The default load: ``{"id", "wave" (T,), "row", "index", "replay"}``; items are row indices
    or ``("replay", i)`` (rehearsal rows from :class:`~avsuite.data.sampling.ReplayMix`)."""
    replay = isinstance(item, tuple) and item[0] == "replay"
    i = int(item[1] if replay else item)
    wave = ctx.decode(i, gen)
    if wave is None:
        return None
    row = ctx.row(i)
    return {"id": row["id"], "wave": wave, "row": row, "index": i, "replay": replay}


def load_features_row(ctx: ItemContext, item: Item, gen: torch.Generator) -> Example | None:
    """The load of ``cache_stage="features"``: ``{"id", "feats" (n_mels, F), "row", "index", "replay"}``
    (collate pads ``feats`` along frames; a model's frontend passes ``(B, n_mels, F)`` through)."""
    replay = isinstance(item, tuple) and item[0] == "replay"
    i = int(item[1] if replay else item)
    feats = ctx.features(i)
    if feats is None:
        return None
    row = ctx.row(i)
    return {"id": row["id"], "feats": feats, "row": row, "index": i, "replay": replay}


Load = Callable[[ItemContext, Item, torch.Generator], "Example | None"]

class Reader:
    """Iterable of collated batches; one epoch per ``iter()``, then the epoch advances.

    The sampler is kept as ``planner`` (Lightning takes any object with a ``sampler`` attribute
    for a torch DataLoader and tries to rebuild it). ``lookahead`` is how many batches the consumer fetches ahead of what it has used, so the
    saved position is the last batch actually consumed (Lightning's fetcher: 0 for a loader with
    ``__len__``, which this has).
    """

    def __init__(self, source: str | Path | ManifestRows | Iterable[dict[str, Any]], cfg: DataConfig, *,
                 train: bool, collate: Collate, sampler: Sampler | None = None, load: Load | None = None,
                 rank: int = 0, world_size: int = 1, lookahead: int = 0, epoch: int = 0, frontend: Any = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.rows = ManifestRows.of(source)
        self.cfg, self.train, self.collate = cfg, train, collate
        self.planner = sampler if sampler is not None else ShuffledBatches(
            seed=cfg.seed, shuffle=cfg.shuffle and train, bucket_by_length=cfg.bucket_by_length,
            drop_last=cfg.drop_last and train)
        self.load = load or (load_features_row if cfg.cache_stage == "features" else load_row)
        self.rank, self.world_size, self.lookahead = rank, world_size, lookahead
        self.epoch, self.consumed = epoch, 0
        self.stats = SkipCounter()
        self.allowed = self._duration_filter()
        self._plan: tuple[Any, list[list[tuple[int, Item]]]] | None = None
        self._loader: Any = None                 # the worker processes (num_workers > 0), made once
        self._keys: list[tuple[int, list[tuple[int, int, Item]]]] = []
        from avsuite.data.cache import AudioCache
        from avsuite.data.features import FeatureCache, check_feature_stage

        check_feature_stage(cfg, frontend)
        features = cfg.cache_stage == "features"
        self.cache = AudioCache(cfg.cache_dir, cfg.sample_rate) if cfg.cache_dir and not features else None
        self.feature_cache = FeatureCache(cfg.cache_dir, frontend, cfg.sample_rate) if features else None

    def _duration_filter(self) -> np.ndarray | None:
        d, cfg = self.rows.durations, self.cfg
        short = d < cfg.min_seconds if cfg.min_seconds else np.zeros(len(d), bool)
        long = d > cfg.max_seconds if cfg.max_seconds is not None else np.zeros(len(d), bool)
        for reason, mask in (("too_short", short), ("too_long", long)):
            idx = np.flatnonzero(mask)
            if len(idx) and cfg.strict:
                raise SkipRow(reason, f"{self.rows[int(idx[0])]['id']}: {reason.replace('_', ' ')} "
                                      f"({d[idx[0]]:.2f} s in the manifest; data.strict is set)")
            for i in idx[:5].tolist():
                self.stats.add(reason, f"{self.rows[i]['id']} ({d[i]:.2f} s)")
            if len(idx) > 5:
                self.stats.counts[reason] += len(idx) - 5
        bad = short | long
        return None if not bad.any() else np.flatnonzero(~bad)

    # ------------------------------------------------------------------ batch plan
    def plan(self) -> list[list[tuple[int, Item]]]:
        """This rank's batches of the current epoch as ``(global batch, slot, item)`` triples (the
        item's seed); cached per epoch and sampler state."""
        key = (self.epoch, repr(self.planner))
        if self._plan is None or self._plan[0] != key:
            sampler = self.planner
            if self.allowed is not None:
                sampler = _Restricted(sampler, self.allowed)
            world = self.world_size
            plan = sampler.plan(self.rows, self.epoch, self.cfg.batch_size * world)
            mine = []
            for b, batch in enumerate(plan):
                if len(batch) < world:         # every rank needs a share (DDP would hang)
                    continue
                slots = list(range(len(batch)))
                mine.append([(b, s, batch[s]) for s in rank_slice(slots, self.rank, world)])
            self._plan = (key, mine)
        return self._plan[1]

    def batch_plan(self) -> list[list[Item]]:
        """The items of every batch of the current epoch, in order (before loading)."""
        return [[item for _, _, item in batch] for batch in self.plan()]

    # ------------------------------------------------------------------ loading
    def _load_batch(self, batch: list[tuple[int, int, Item]], epoch: int) -> Any:
        one_op_thread()
        ctx = ItemContext(self.rows, self.cfg, self.train, epoch, self.stats, self.cache, self.feature_cache)
        examples = []
        for b, slot, item in batch:
            gen = torch.Generator().manual_seed(seed_of(self.cfg.seed, epoch, b, slot, "item"))
            try:
                ex = self.load(ctx, item, gen)
            except SkipRow as exc:
                if self.cfg.strict:
                    raise ValueError(str(exc)) from None
                self.stats.add(exc.reason, str(exc))
                ex = None
            if ex is not None:
                examples.append(ex)
        return self.collate(examples) if examples else None

    # ------------------------------------------------------------------ iteration + state
    def __iter__(self) -> Iterator[Any]:
        from fairseq2.data.data_pipeline import read_sequence

        if self.consumed >= len(self):          # state saved after the last batch: next epoch
            self.epoch, self.consumed = self.epoch + 1, 0
        epoch, start = self.epoch, self.consumed
        if self.cfg.num_workers:
            pipe = self._worker_batches(epoch, start)
        else:
            pipe = (read_sequence(self.plan()).skip(start)
                    .map(lambda b: self._load_batch(b, epoch), num_parallel_calls=self.cfg.num_parallel_calls)
                    .prefetch(self.cfg.prefetch).and_return())
        yielded = start
        for batch in pipe:
            yielded += 1
            self.consumed = max(yielded - self.lookahead, 0)
            if batch is None and self.world_size > 1:   # the other ranks would wait for this one forever
                raise RuntimeError(f"rank {self.rank}: every row of batch {yielded} (epoch {epoch}) failed to load "
                                   f"({self.stats.summary()}); under DDP this would hang the other ranks. "
                                   "Remove the unreadable rows from the manifest or use a larger data.batch_size")
            if batch is not None:
                yield batch
        if self.stats.total:
            log.warning("epoch %d: %s", epoch, self.stats.summary())
        self.epoch, self.consumed = epoch + 1, 0

    def _worker_batches(self, epoch: int, start: int) -> Iterator[Any]:
        """This epoch's batches from ``start`` on, loaded by ``cfg.num_workers`` persistent worker
        processes (a torch DataLoader over the plan: each index is one whole planned batch, so the
        order, seeds and bytes are those of the threaded path); skip counts come back with each batch."""
        from torch.utils.data import DataLoader

        self._keys = [(epoch, batch) for batch in self.plan()[start:]]
        if self._loader is None:
            n = self.cfg.num_workers
            self._loader = DataLoader(_PlannedBatches(self), batch_size=None, sampler=_CurrentKeys(self),
                                      num_workers=n, persistent_workers=True, collate_fn=_as_is,
                                      prefetch_factor=max(1, -(-max(self.cfg.prefetch, 1) // n)),
                                      multiprocessing_context="fork")
        for batch, counts, examples in self._loader:
            if isinstance(batch, _Raised):
                raise batch.exc
            if counts:
                self.stats.merge(counts, examples)
            yield batch

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loader": None}   # worker processes are not copied with the Reader

    def __len__(self) -> int:
        """Exact number of batches of this rank this epoch (a batch whose every row fails is dropped)."""
        return len(self.plan())

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed, "sampler": self.planner.state_dict(),
                "skipped": dict(self.stats.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])
        self.planner.load_state_dict(state.get("sampler", {}))
        self._plan = None


class _Restricted:
    """A sampler limited to ``allowed`` rows (intersected with its own ``include``)."""

    def __init__(self, sampler: Any, allowed: np.ndarray):
        self.sampler, self.allowed = sampler, allowed

    def plan(self, rows: ManifestRows, epoch: int, global_batch: int):
        inner = getattr(self.sampler, "base", self.sampler)
        include = getattr(inner, "include", None)
        keep = self.allowed if include is None else np.intersect1d(np.asarray(include), self.allowed)
        old = inner.include
        inner.include = keep
        try:
            return self.sampler.plan(rows, epoch, global_batch)
        finally:
            inner.include = old


class _PlannedBatches:
    """Map-style dataset for the worker processes: key ``(epoch, planned batch)`` -> ``(collated
    batch, skip counts, skip examples)`` (each worker counts into a fresh counter per batch)."""

    def __init__(self, reader: Reader):
        self.reader = reader

    def __getitem__(self, key: tuple[int, list[tuple[int, int, Item]]]) -> tuple[Any, Counter[str], list[str]]:
        epoch, batch = key
        self.reader.stats = SkipCounter()
        try:
            out = self.reader._load_batch(batch, epoch)
        except Exception as exc:                 # re-raised as itself in the main process (strict mode)
            return _Raised(exc), None, []
        return out, self.reader.stats.counts, self.reader.stats.examples


class _Raised:
    """An exception from a worker, carried to the main process to be raised there as itself (torch
    would re-wrap it with the worker's traceback as its message)."""

    def __init__(self, exc: Exception):
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        self.exc = exc


class _CurrentKeys:
    """The sampler of the persistent DataLoader: the keys the Reader set for the current epoch."""

    def __init__(self, reader: Reader):
        self.reader = reader

    def __iter__(self) -> Iterator[tuple[int, list[tuple[int, int, Item]]]]:
        return iter(self.reader._keys)

    def __len__(self) -> int:
        return len(self.reader._keys)


def _as_is(batch: Any) -> Any:
    return batch
