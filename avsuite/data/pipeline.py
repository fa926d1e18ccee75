"""The one data pipeline: manifest rows -> decoded, cropped, collated batches (fairseq2.data).

    rows --read_sequence--> shuffle(window, seed+epoch) --> shard(rank, world) --> bucket(B)
         --> skip(consumed) --> map(decode + crop + collate, parallel) --> prefetch --> batches

Shuffling, sharding and batching act on row *indices*, so the batch plan of an epoch is a pure
function of ``(seed, epoch, rank, world_size)``. Resuming is exact and cheap: the state is
``{"epoch", "consumed"}`` and a restore skips the consumed index-batches without decoding them.
Unreadable audio is skipped and counted (a summary is logged at the end of each epoch) unless
``strict`` is set, in which case the first bad file raises :class:`AudioDecodeError`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from avsuite.audio.io import AudioDecodeError, load_audio
from avsuite.audio.resample import resample

log = logging.getLogger(__name__)

Example = dict[str, Any]
Collate = Callable[[list[Example]], Any]


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    manifest: str = ""
    valid_manifest: str | None = None
    test_manifest: str | None = None
    sample_rate: int = 16000
    #: crop length in seconds (random offset in training, centred in evaluation); None keeps all
    max_seconds: float | None = 10.0
    #: rows whose manifest duration is below this are skipped (counted as "too_short")
    min_seconds: float = 0.0
    batch_size: int = 16
    num_parallel_calls: int = 2
    #: 0 = no shuffling; otherwise the fairseq2 shuffle window (examples held in memory)
    shuffle_window: int = 10000
    #: group rows of similar duration (within windows of 32 batches) to cut padding
    bucket_by_length: bool = False
    seed: int = 0
    prefetch: int = 2
    strict: bool = False
    drop_last: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive or null, got {self.max_seconds}")
        if self.num_parallel_calls < 1:
            raise ValueError("num_parallel_calls must be >= 1")


def _example_seed(seed: int, epoch: int, example_id: str) -> int:
    digest = hashlib.blake2b(f"{seed}/{epoch}/{example_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def crop(wave: torch.Tensor, n: int, *, train: bool, seed: int) -> torch.Tensor:
    """Crop ``(T,)`` to at most ``n`` samples: a seeded random window (train) or the centre (eval)."""
    t = wave.shape[-1]
    if t <= n:
        return wave
    if train:
        g = torch.Generator().manual_seed(seed)
        start = int(torch.randint(0, t - n + 1, (1,), generator=g))
    else:
        start = (t - n) // 2
    return wave[..., start:start + n]


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

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()))
        return f"skipped {self.total} row(s) ({parts}); e.g. " + "; ".join(self.examples)


class AudioPipeline:
    """Iterable of collated batches over ``rows``; one pass per ``iter()``, then the epoch advances.

    ``state_dict()`` / ``load_state_dict()`` make an interrupted epoch resume at the exact next
    batch. ``lookahead`` is how many batches the consumer fetches ahead of what it has used
    (Lightning's fetcher: 1), so the saved position is the last batch actually consumed.
    """

    def __init__(self, rows: list[dict[str, Any]], cfg: DataConfig, *, collate: Collate, train: bool,
                 epoch: int = 0, rank: int = 0, world_size: int = 1, lookahead: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.rows, self.cfg, self.collate, self.train = rows, cfg, collate, train
        self.rank, self.world_size, self.lookahead = rank, world_size, lookahead
        self.epoch, self.consumed = epoch, 0
        self.stats = SkipCounter()
        self._keep = self._filter_rows()

    def _filter_rows(self) -> list[int]:
        keep = []
        for i, row in enumerate(self.rows):
            dur = row.get("duration")
            if self.cfg.min_seconds and dur is not None and dur < self.cfg.min_seconds:
                self.stats.add("too_short", f"{row['id']} ({dur:.2f} s)")
                continue
            keep.append(i)
        return keep

    # ------------------------------------------------------------------ batch plan
    def _index_pipeline(self):
        from fairseq2.data.data_pipeline import read_sequence

        cfg = self.cfg
        builder = read_sequence(self._keep)
        if self.train and cfg.shuffle_window:
            builder = builder.shuffle(cfg.shuffle_window, seed=cfg.seed + self.epoch)
        if self.world_size > 1:  # equal counts on every rank (no uneven shards: DDP would hang)
            builder = builder.shard(self.rank, self.world_size, allow_uneven=False)
        if cfg.bucket_by_length:
            builder = builder.bucket(cfg.batch_size * 32).yield_from(self._length_buckets)
        else:
            builder = builder.bucket(cfg.batch_size, drop_remainder=cfg.drop_last)
        return builder

    def _length_buckets(self, chunk: list[int]):
        from fairseq2.data.data_pipeline import read_sequence

        chunk = sorted(chunk, key=lambda i: (self.rows[i].get("duration") or 0.0, i))
        b = self.cfg.batch_size
        batches = [chunk[k:k + b] for k in range(0, len(chunk), b)]
        if self.cfg.drop_last:
            batches = [x for x in batches if len(x) == b]
        if self.train:  # batch order within the window is shuffled, deterministically
            g = torch.Generator().manual_seed(_example_seed(self.cfg.seed, self.epoch, str(chunk[0])))
            batches = [batches[j] for j in torch.randperm(len(batches), generator=g).tolist()]
        return read_sequence(batches).and_return()

    def batch_plan(self) -> list[list[str]]:
        """The ids of every batch of the current epoch (before decoding), in order."""
        pipe = self._index_pipeline().and_return()
        return [[self.rows[i]["id"] for i in batch] for batch in pipe]

    # ------------------------------------------------------------------ decoding
    def _decode(self, i: int) -> Example | None:
        """Decode at the file's own rate, crop there, then resample only the kept window."""
        row, cfg = self.rows[i], self.cfg
        try:
            wave, native = load_audio(row["audio"], None)
        except AudioDecodeError as exc:
            if cfg.strict:
                raise
            self.stats.add("unreadable", f"{row['id']}: {exc.reason}")
            return None
        if cfg.max_seconds is not None:
            n = math.ceil(cfg.max_seconds * native)
            wave = crop(wave, n, train=self.train, seed=_example_seed(cfg.seed, self.epoch, row["id"]))
        wave = resample(wave, native, cfg.sample_rate)
        if cfg.max_seconds is not None:
            wave = wave[: int(round(cfg.max_seconds * cfg.sample_rate))]
        return {"id": row["id"], "wave": wave, "row": row}

    def _decode_batch(self, batch: list[int]) -> Any:
        examples = [ex for ex in (self._decode(i) for i in batch) if ex is not None]
        return self.collate(examples) if examples else None

    # ------------------------------------------------------------------ iteration + state
    def __iter__(self) -> Iterator[Any]:
        cfg = self.cfg
        if self.consumed >= len(self):          # state saved after the last batch: next epoch
            self.epoch, self.consumed = self.epoch + 1, 0
        start = self.consumed
        pipe = (self._index_pipeline()
                .skip(start)
                .map(self._decode_batch, num_parallel_calls=cfg.num_parallel_calls)
                .prefetch(cfg.prefetch)
                .and_return())
        yielded = start
        for batch in pipe:
            yielded += 1
            self.consumed = max(yielded - self.lookahead, 0)
            if batch is not None:
                yield batch
        if self.stats.total:
            log.warning("epoch %d: %s", self.epoch, self.stats.summary())
        self.epoch += 1
        self.consumed = 0

    def __len__(self) -> int:
        """Exact number of index-batches per epoch (a batch whose every file fails is dropped)."""
        n = len(self._keep) // self.world_size if self.world_size > 1 else len(self._keep)
        b = self.cfg.batch_size

        def count(size: int) -> int:
            return size // b if self.cfg.drop_last else -(-size // b)

        if not self.cfg.bucket_by_length:
            return count(n)
        chunk = b * 32
        return (n // chunk) * count(chunk) + count(n % chunk)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed, "skipped": dict(self.stats.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.consumed = int(state["consumed"])


def build_pipeline(rows: list[dict[str, Any]], cfg: DataConfig, *, collate: Collate, train: bool,
                   epoch: int = 0, rank: int = 0, world_size: int = 1, lookahead: int = 0) -> AudioPipeline:
    """See :class:`AudioPipeline`."""
    return AudioPipeline(rows, cfg, collate=collate, train=train, epoch=epoch, rank=rank,
                         world_size=world_size, lookahead=lookahead)
