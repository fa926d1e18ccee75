"""Data side of the ``ctc_ot`` recipe: rows -> targets, decoding once, cached features, batches.

Bad rows never reach the loss: each is skipped and counted by reason (or raises naming the row in
strict mode); see :mod:`avsuite.recipes.ctc_ot` for the reasons.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from avsuite.audio.frontend import AudioFrontend
from avsuite.data.batches import pad_right
from avsuite.data.pipeline import DataConfig, build_pipeline
from avsuite.losses.ctc import ctc_min_frames
from avsuite.models.speech import output_lengths
from avsuite.models.text_tokenizer import normalize_transcript, normalize_translation

if TYPE_CHECKING:
    from avsuite.recipes.ctc_ot import Config


class BadRow(ValueError):
    """A manifest row that cannot be used; ``reason`` is the skip counter's key, the message names the row."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def read_rows(path: str | Path, split: str | None = None, *, own_file: bool = True) -> list[dict[str, Any]]:
    """Rows of a manifest; with ``split``, only that split when rows carry one. A manifest without
    splits gives all its rows when it is the split's ``own_file``, none otherwise."""
    from avsuite.data.manifest import read_manifest

    rows = read_manifest(path)
    if split is None:
        return rows
    if any("split" in r for r in rows):
        return [r for r in rows if r.get("split") == split]
    return rows if own_file else []


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


def decode_rows(rows: list[dict[str, Any]], data: DataConfig) -> tuple[dict[str, Tensor], Counter]:
    """Decode every row's audio once with the shared pipeline (no cropping) -> ``{id: (T,) wave}``."""
    dcfg = dataclasses.replace(data, max_seconds=None, min_seconds=0.0, shuffle_window=0, bucket_by_length=False,
                               drop_last=False)
    pipe = build_pipeline(rows, dcfg, collate=lambda examples: examples, train=False)
    waves = {}
    for batch in pipe:
        for ex in batch:
            wave, row = ex["wave"], ex["row"]
            if "offset" in row:   # a segment of a longer recording (MuST-C)
                start = int(float(row["offset"]) * data.sample_rate)
                wave = wave[start: start + int(float(row.get("duration", 0)) * data.sample_rate) or None]
            waves[ex["id"]] = wave
    return waves, Counter(pipe.stats.counts)


def prepare(rows: list[dict[str, Any]], cfg: Config, frontend: AudioFrontend, src_tok: Any, tgt_tok: Any,
            *, training: bool = True) -> tuple[list[dict[str, Any]], Counter]:
    """Decode, featurise, tokenise and filter rows -> examples + ``Counter`` of skip reasons.

    ``training=False`` (scoring) keeps rows whose CTC target would not fit their frames."""
    waves, skipped = decode_rows(rows, cfg.data)
    examples = []
    for row in rows:
        if row["id"] not in waves:
            continue              # unreadable audio: counted by the pipeline
        try:
            examples.append(_example(row, waves[row["id"]], cfg, frontend, src_tok, tgt_tok, training))
        except BadRow as exc:
            if cfg.data.strict:
                raise
            skipped[exc.reason] += 1
    return examples, skipped


def _example(row: dict[str, Any], wave: Tensor, cfg: Config, frontend: AudioFrontend, src_tok: Any, tgt_tok: Any,
             training: bool) -> dict:
    src, tgt = row_targets(row, cfg.task.stage, cfg.task.target_lang)
    for tok, text in ((src_tok, src), (tgt_tok, tgt)):
        if tok.count_oov(text) and cfg.task.on_oov != "unk":
            err = BadRow("oov", f"row {row['id']!r}: characters outside the vocabulary in {text!r} "
                                f"(task.on_oov={cfg.task.on_oov})")
            if cfg.task.on_oov == "error":
                raise ValueError(str(err))
            raise err
    seconds = wave.numel() / cfg.data.sample_rate
    if cfg.data.max_seconds is not None and seconds > cfg.data.max_seconds:
        raise BadRow("too_long", f"row {row['id']!r}: {seconds:.1f} s > data.max_seconds={cfg.data.max_seconds}")
    if seconds < cfg.data.min_seconds or wave.numel() < frontend.frame_length:
        raise BadRow("too_short", f"row {row['id']!r}: {seconds:.3f} s is too short")
    src_ids, tgt_ids = src_tok.encode(src), tgt_tok.encode(tgt)
    enc_frames = output_lengths(torch.tensor([wave.numel()]), cfg.frontend)
    if training and cfg.task.stage == "pretrain" and int(ctc_min_frames(torch.tensor([src_ids]), torch.tensor([len(src_ids)]))) \
            > int(enc_frames):
        raise BadRow("too_short", f"row {row['id']!r}: {int(enc_frames)} encoder frames cannot fit "
                                  f"{len(src_ids)} CTC labels")
    if int(enc_frames) > cfg.model.max_frames:
        raise BadRow("too_long", f"row {row['id']!r}: {int(enc_frames)} frames > model.max_frames")
    return {"id": row["id"], "wave": wave, "src": src_ids, "tgt": tgt_ids, "ref": tgt}


def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Examples -> ``feats (B, M, F)``, ``n_frames (B,)``, ``src``/``tgt`` ``(B, S)`` 0-padded + lengths."""
    audio, lengths = pad_right([e["wave"] for e in examples])
    out = {"audio": audio, "lengths": lengths, "ids": [e["id"] for e in examples], "refs": [e["ref"] for e in examples]}
    for key in ("src", "tgt"):
        lens = torch.tensor([len(e[key]) for e in examples])
        toks = torch.zeros(len(examples), max(int(lens.max()), 1), dtype=torch.long)
        for i, e in enumerate(examples):
            toks[i, : len(e[key])] = torch.tensor(e[key], dtype=torch.long)
        out[key], out[key + "_len"] = toks, lens
    return out


def batches(examples: list[dict[str, Any]], batch_size: int, *, shuffle: bool, seed: int = 0) -> list[list[int]]:
    """Length-sorted batches (less padding); shuffled batch order when ``shuffle``."""
    order = sorted(range(len(examples)), key=lambda i: examples[i]["wave"].numel())
    if shuffle:   # jitter within neighbourhoods so batches differ between epochs
        rng = random.Random(seed)
        order = sorted(order, key=lambda i: examples[i]["wave"].numel() * (1 + 0.2 * rng.random()))
    out = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        random.Random(seed + 1).shuffle(out)
    return out


class _BatchSampler(torch.utils.data.Sampler):
    def __init__(self, examples: list[dict[str, Any]], batch_size: int, seed: int):
        self.examples, self.batch_size, self.seed, self.epoch = examples, batch_size, seed, 0

    def __iter__(self):
        self.epoch += 1
        return iter(batches(self.examples, self.batch_size, shuffle=True, seed=self.seed + self.epoch))

    def __len__(self) -> int:
        return (len(self.examples) + self.batch_size - 1) // self.batch_size

