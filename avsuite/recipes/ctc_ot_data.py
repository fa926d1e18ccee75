"""Data side of the ``ctc_ot`` recipe on the one reader (:mod:`avsuite.data.pipeline`).

    rows (ManifestRows, split -> row indices) --Reader(sampler=ShuffledBatches(bucketed), load=SpeechLoader,
    collate=collate)--> {"audio" (B, T), "lengths", "src", "src_len", "tgt", "tgt_len", "ids", "refs"}

:class:`SpeechLoader` is the Reader's load function: it decodes one row (a segment when the row
has an ``offset``, as MuST-C), checks it and tokenises it. Bad rows never reach the loss: each is
skipped and counted by reason in the reader's stats and in the loader's per-run tally
(``skipped_<reason>`` in ``metrics.json``), or raises naming the row with ``data.strict``.
Features are not computed here: the model runs its frontend on ``audio``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avsuite.audio.frontend import FrontendConfig
from avsuite.data.batches import pad_right
from avsuite.data.pipeline import DataConfig, ItemContext, SkipCounter, SkipRow
from avsuite.data.rows import ManifestRows
from avsuite.losses.ctc import ctc_min_frames
from avsuite.models.speech import output_lengths
from avsuite.data.text import normalize_transcript, normalize_translation


@dataclass(frozen=True, kw_only=True)
class SpeechDataConfig(DataConfig):
    """The ``data`` section of ``ctc_ot``. ``max_seconds`` FILTERS (longer rows are skipped and
    counted ``too_long``; default 20 s); ``crop_seconds`` must stay null: a crop would cut audio
    away from its transcript. Length-bucketed batches by default (less padding)."""
    max_seconds: float | None = 20.0
    bucket_by_length: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.crop_seconds is not None:
            raise ValueError("data.crop_seconds must be null for ctc_ot: a crop would cut the audio away from its "
                             "transcript; use data.max_seconds to skip long rows")


class BadRow(SkipRow):
    """A manifest row that cannot be used; ``reason`` is the skip counter's key, the message names the row."""


def split_rows(path: str | Path, split: str | None, *, own_file: bool = True) -> tuple[ManifestRows, list[int]]:
    """The manifest's rows and the indices of ``split`` (all rows when ``split`` is None). A manifest
    without splits gives all its rows when it is the split's ``own_file``, none otherwise."""
    rows = ManifestRows.from_path(path)
    splits = [rows[i].get("split") for i in range(len(rows))]
    if split is None:
        return rows, list(range(len(rows)))
    if any(s is not None for s in splits):
        return rows, [i for i, s in enumerate(splits) if s == split]
    return rows, list(range(len(rows))) if own_file else []


def duration_skips(rows: ManifestRows, include: list[int], data: DataConfig) -> Counter:
    """Rows of ``include`` the reader's duration filter skips (manifest durations), by reason."""
    d = rows.durations[np.asarray(include, dtype=np.int64)] if include else np.zeros(0)
    out: Counter = Counter()
    if data.min_seconds:
        out["too_short"] = int((d < data.min_seconds).sum())
    if data.max_seconds is not None:
        out["too_long"] = int((d > data.max_seconds).sum())
    return +out


def row_targets(row: dict[str, Any], stage: str, lang: str) -> tuple[str, str]:
    """``(source transcript, target text)`` of a row for ``stage``; raises :class:`BadRow`."""
    src = normalize_transcript(str(row.get("text") or ""))
    if not src:
        raise BadRow("empty_text", f"row {row.get('id')!r}: empty transcript (after removing annotations)")
    if stage == "st":
        tr = (row.get("translation") or {}).get(lang)
        tgt = normalize_translation(str(tr or ""))
        if not tgt:
            raise BadRow("no_translation", f"row {row.get('id')!r}: no {lang!r} translation")
        return src, tgt
    return src, src


class SpeechLoader:
    """Reader load function ``(ctx, row index, gen) -> {"id", "wave" (T,), "src", "tgt", "ref"} | None``.

    Checks, in order: transcript / translation (:func:`row_targets`), out-of-vocabulary characters
    (``on_oov``: ``unk`` keeps, ``skip`` skips, ``error`` raises), decoding, encoder frames from the
    sample count (:func:`avsuite.models.speech.output_lengths`): none (``too_short``), fewer than
    the CTC target needs (``too_short``, pre-training with ``check_ctc``), more than ``max_frames``
    (``too_long``). ``skipped`` / ``used`` tally distinct rows over the run.
    """

    def __init__(self, *, stage: str, lang: str, on_oov: str, src_tok: Any, tgt_tok: Any, frontend: FrontendConfig,
                 max_frames: int, check_ctc: bool = True):
        self.stage, self.lang, self.on_oov = stage, lang, on_oov
        self.src_tok, self.tgt_tok, self.frontend = src_tok, tgt_tok, frontend
        self.max_frames, self.check_ctc = max_frames, check_ctc
        self.skipped: dict[int, str] = {}
        self.used: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, ctx: ItemContext, item: Any, gen: torch.Generator) -> dict[str, Any] | None:
        i = int(item)
        row = ctx.row(i)
        try:
            src, tgt = row_targets(row, self.stage, self.lang)
            self._check_oov(row, src, tgt)
            wave = self._wave(ctx, i, row, gen)
            src_ids, tgt_ids = self.src_tok.encode(src), self.tgt_tok.encode(tgt)
            self._check_frames(row, wave, src_ids)
        except BadRow as exc:
            self._note(i, exc.reason)
            ctx.skip(exc.reason, str(exc))
            return None
        with self._lock:
            self.used.add(i)
        return {"id": row["id"], "wave": wave, "src": src_ids, "tgt": tgt_ids, "ref": tgt}

    def _note(self, i: int, reason: str) -> None:
        with self._lock:
            self.skipped[i] = reason

    def counts(self) -> Counter:
        """Distinct rows skipped so far, by reason."""
        with self._lock:
            return Counter(self.skipped.values())

    def _check_oov(self, row: dict[str, Any], src: str, tgt: str) -> None:
        for tok, text in ((self.src_tok, src), (self.tgt_tok, tgt)):
            if tok.count_oov(text) and self.on_oov != "unk":
                msg = f"row {row['id']!r}: characters outside the vocabulary in {text!r} (task.on_oov={self.on_oov})"
                if self.on_oov == "error":
                    raise ValueError(msg)
                raise BadRow("oov", msg)

    def _wave(self, ctx: ItemContext, i: int, row: dict[str, Any], gen: torch.Generator) -> torch.Tensor:
        """The row's ``(T,)`` audio from the shared decode (an ``offset``/``duration`` row is read as
        that segment of its file, with a seek)."""
        local = dataclasses.replace(ctx, stats=SkipCounter())     # learn why a decode failed
        wave = local.decode(i, gen)
        if wave is None:
            reason = next(iter(local.stats.counts), "unreadable")
            raise BadRow(reason, local.stats.examples[0] if local.stats.examples else f"row {row['id']!r}")
        return wave

    def _check_frames(self, row: dict[str, Any], wave: torch.Tensor, src_ids: list[int]) -> None:
        frames = int(output_lengths(torch.tensor([wave.numel()]), self.frontend)[0])
        seconds = wave.numel() / (self.frontend.input_sample_rate or self.frontend.sample_rate)
        if frames < 1:
            raise BadRow("too_short", f"row {row['id']!r}: {seconds:.3f} s gives no encoder frame")
        if self.check_ctc and self.stage == "pretrain":
            need = int(ctc_min_frames(torch.tensor([src_ids]), torch.tensor([len(src_ids)]))[0])
            if need > frames:
                raise BadRow("too_short", f"row {row['id']!r}: {frames} encoder frames cannot fit "
                                          f"{len(src_ids)} CTC labels")
        if frames > self.max_frames:
            raise BadRow("too_long", f"row {row['id']!r}: {frames} encoder frames > model.max_frames={self.max_frames}")


def _pad_ids(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists -> ``(B, S)`` 0-padded (S >= 1) and lengths ``(B,)``."""
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    toks = torch.zeros(len(seqs), max(int(lens.max()), 1), dtype=torch.long)
    for i, s in enumerate(seqs):
        toks[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return toks, lens


def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Examples -> ``audio (B, T)`` 0-padded waves, ``lengths (B,)`` samples, ``src``/``tgt`` ``(B, S)``
    0-padded ids + ``src_len``/``tgt_len`` ``(B,)``, ``ids`` and ``refs`` (target texts)."""
    audio, lengths = pad_right([e["wave"] for e in examples])
    src, src_len = _pad_ids([e["src"] for e in examples])
    tgt, tgt_len = _pad_ids([e["tgt"] for e in examples])
    return {"audio": audio, "lengths": lengths, "src": src, "src_len": src_len, "tgt": tgt, "tgt_len": tgt_len,
            "ids": [e["id"] for e in examples], "refs": [e["ref"] for e in examples]}
