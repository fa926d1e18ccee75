"""Data glue for the clap recipe (not a recipe itself): its data config, batch plan, load function
and collate on the one streaming reader (:class:`avsuite.data.pipeline.Reader`).

    dm = datamodule(cfg.data, cfg.compose)        # an AudioDataModule; Lightning drives it

- Plan: :class:`~avsuite.data.sampling.LabelDistinctBatches` (``label_distinct``; InfoNCE is not
  asked to push apart two "dog" clips) or :class:`~avsuite.data.sampling.ShuffledBatches`; with
  ``compose.mode`` set, :class:`ComposeMix` turns a seeded fraction of each global batch's slots
  into compositions ``("compose", kind, i, j)``.
- :func:`load_clip` / :func:`load_composition`: decode (random ``crop_seconds`` window), random
  gain, the step's caption, compositions built with :mod:`avsuite.data.compose`. Every random
  choice comes from the item's generator (seeded by seed, epoch, global batch, slot): a resumed
  or multi-process run reads the same bytes.
- :func:`collate` -> :class:`ClapBatch` (an ``AudioTextBatch`` whose ``captions[i]`` is the ONE
  caption drawn for this step, plus each item's hard-negative captions).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from avsuite.data.batches import AudioTextBatch, pad_right, row_captions
from avsuite.data.compose import compose_example, event_name
from avsuite.data.datamodule import AudioDataModule
from avsuite.audio.augment import mix_at_snr, random_eq, speed_perturb
from avsuite.data.pipeline import DataConfig, ItemContext, Reader, SkipRow
from avsuite.data.rows import ManifestRows
from avsuite.data.sampling import LabelDistinctBatches, Plan, ShuffledBatches, rng_of

KINDS = ("concat", "overlay", "single")
ALL_KINDS = ("concat", "overlay", "attribute", "single")


@dataclass(frozen=True, kw_only=True)
class ClapDataConfig(DataConfig):
    """The clap data section: :class:`~avsuite.data.pipeline.DataConfig` plus the fields below."""
    #: labels distinct inside a global batch while possible (no false negatives for InfoNCE)
    label_distinct: bool = True
    #: train-time random gain, uniform in [-gain_db, +gain_db] dB (not applied to compositions)
    gain_db: float = 6.0
    #: drop the last, incomplete batch of an epoch (contrastive losses want full batches)
    drop_last: bool = True
    #: train-time random EQ, gains uniform in [-eq_db, +eq_db] dB at 6 log-spaced bands (0 = off)
    eq_db: float = 0.0
    #: train-time speed (tempo + pitch) factor uniform in [1 - speed, 1 + speed] (0 = off)
    speed: float = 0.0
    #: probability of mixing another random training clip under a clip, at an SNR uniform in
    #: [mix_snr_db, mix_snr_db + 10] dB (its caption is not added: a background, not an event)
    mix_prob: float = 0.0
    mix_snr_db: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("gain_db", "eq_db"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) >= 0):
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if not (math.isfinite(self.speed) and 0 <= self.speed < 0.5):
            raise ValueError(f"speed must be in [0, 0.5), got {self.speed}")
        if not (math.isfinite(self.mix_prob) and 0 <= self.mix_prob <= 1):
            raise ValueError(f"mix_prob must be in [0, 1], got {self.mix_prob}")
        if not math.isfinite(self.mix_snr_db):
            raise ValueError(f"mix_snr_db must be finite, got {self.mix_snr_db}")


@dataclass(frozen=True, kw_only=True)
class ComposeConfig:
    """Training-time compositions (CompA / TeminAL stages) built from the training clips."""
    mode: Literal["none", "compa", "teminal_a", "teminal_b"] = "none"
    #: fraction of each batch's slots replaced by compositions
    prob: float = 0.5
    #: silence between the two events of a concatenation (drawn in [0.5, 1.5] x this)
    gap_seconds: float = 0.25
    #: composition kinds, drawn uniformly per slot: concat ("x followed by y", order-swap negatives),
    #: overlay ("x with y"), attribute ("a loud x followed by a quiet y", gains applied, attribute-
    #: swap negatives), single (the clip alone: teminal_a's single-event examples)
    kinds: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {self.prob}")
        if not self.kinds or any(k not in ALL_KINDS for k in self.kinds) or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"kinds must be distinct names from {ALL_KINDS}, got {self.kinds}")
        if self.gap_seconds < 0:
            raise ValueError(f"gap_seconds must be >= 0, got {self.gap_seconds}")


# ----------------------------------------------------------------------------- plan
@dataclass
class ComposeMix:
    """``base``'s plan with a fraction ``prob`` of every global batch's slots replaced by
    ``("compose", kind, i, j)``: row ``i`` is the slot's own row, ``j`` a row of another label,
    ``kind`` one of ``kinds``; drawn with a generator seeded by ``(seed, epoch, batch)``."""
    base: Any
    prob: float
    seed: int = 0
    kinds: tuple[str, ...] = KINDS

    def plan(self, rows: ManifestRows, epoch: int, global_batch: int) -> Plan:
        plan = self.base.plan(rows, epoch, global_batch)
        include = getattr(self.base, "include", None)
        pool = np.arange(len(rows)) if include is None else np.asarray(include, dtype=np.int64)
        out = []
        for b, batch in enumerate(plan):
            rng = rng_of(self.seed, epoch, b, "compose")
            out.append([self._slot(rows, pool, i, rng) if rng.random() < self.prob else i for i in batch])
        return out

    def _slot(self, rows: ManifestRows, pool: np.ndarray, i: int, rng: np.random.Generator) -> tuple:
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        j = int(pool[rng.integers(len(pool))])
        for _ in range(16):                    # another event: a different label (or row, unlabelled)
            if j != i and (rows.labels[i] < 0 or rows.labels[j] != rows.labels[i]):
                break
            j = int(pool[rng.integers(len(pool))])
        return ("compose", kind, int(i), j)

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base.load_state_dict(state.get("base", {}))


def make_sampler(cfg: ClapDataConfig, compose: ComposeConfig) -> Any:
    base = (LabelDistinctBatches(seed=cfg.seed, drop_last=cfg.drop_last) if cfg.label_distinct else
            ShuffledBatches(seed=cfg.seed, shuffle=cfg.shuffle, bucket_by_length=cfg.bucket_by_length,
                            drop_last=cfg.drop_last))
    return base if compose.mode == "none" else ComposeMix(base, compose.prob, seed=cfg.seed, kinds=compose.kinds)


# ----------------------------------------------------------------------------- load + collate
def _pick(options: list[str], gen: torch.Generator) -> str:
    return options[int(torch.randint(len(options), (), generator=gen))]


def _captions(row: dict[str, Any]) -> list[str]:
    try:
        return row_captions(row)
    except ValueError as exc:
        raise SkipRow("no_caption", str(exc)) from None


def load_clip(ctx: ItemContext, i: int, gen: torch.Generator) -> dict[str, Any] | None:
    """Row ``i`` -> ``{"id", "wave" (T,), "row", "caption", "negatives": [], "label"}`` or None."""
    wave = ctx.decode(i, gen)
    if wave is None:
        return None
    gain_db = getattr(ctx.cfg, "gain_db", 0.0) if ctx.train else 0.0
    if gain_db:
        wave = wave * 10 ** ((2 * float(torch.rand((), generator=gen)) - 1) * gain_db / 20)
    if ctx.train:
        wave = _break_source(ctx, i, wave, gen)
    row = ctx.row(i)
    caps = _captions(row)
    return {"id": row["id"], "wave": wave, "row": row, "caption": _pick(caps, gen) if ctx.train else caps[0],
            "negatives": [], "swaps": [], "paraphrase": None, "label": row.get("label")}


def _break_source(ctx: ItemContext, i: int, wave: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """EQ, speed and background mixing (each only when configured; draws only from ``gen``)."""
    cfg, sr = ctx.cfg, ctx.cfg.sample_rate
    if getattr(cfg, "speed", 0.0):
        factor = 1.0 + (2 * float(torch.rand((), generator=gen)) - 1) * cfg.speed
        n = wave.numel()
        wave = speed_perturb(wave, sr, factor)
        if cfg.crop_seconds:                               # keep the crop length the batch expects
            wave = torch.nn.functional.pad(wave, (0, max(0, n - wave.numel())))[:n]
    if getattr(cfg, "eq_db", 0.0):
        wave = random_eq(wave, sr, gen, max_db=cfg.eq_db)
    if getattr(cfg, "mix_prob", 0.0) and float(torch.rand((), generator=gen)) < cfg.mix_prob:
        j = int(torch.randint(len(ctx.rows), (), generator=gen))
        if j != i:
            other = ctx.decode(j, gen)
            if other is not None:
                snr = cfg.mix_snr_db + 10 * float(torch.rand((), generator=gen))
                wave = mix_at_snr(wave, other, snr)
    return wave


def load_composition(ctx: ItemContext, item: tuple, gen: torch.Generator, stage: str, gap_seconds: float
                     ) -> dict[str, Any] | None:
    """``("compose", kind, i, j)`` -> an example like :func:`load_clip`'s, built from half-window
    crops of rows i and j (the result is cut to ``crop_seconds``)."""
    _, kind, i, j = item
    crop = ctx.cfg.crop_seconds
    half = crop / 2 if crop else None
    a = ctx.decode(i, gen, crop_seconds=half)
    b = ctx.decode(j, gen, crop_seconds=half) if kind != "single" else None
    if a is None or (kind != "single" and b is None):
        return None
    x, y = event_name(ctx.row(i)), event_name(ctx.row(j))
    ex = compose_example(kind, a, b, x, y, stage, sr=ctx.cfg.sample_rate, gen=gen,
                         gap_s=(gap_seconds * 0.5, gap_seconds * 1.5))
    wave = ex["wave"][: int(crop * ctx.cfg.sample_rate)] if crop else ex["wave"]
    ids = [ctx.row(i)["id"]] + ([ctx.row(j)["id"]] if kind != "single" else [])
    caps = ex["captions"]
    k = int(torch.randint(len(caps), (), generator=gen))      # as _pick: the same draw
    para = caps[(k + 1) % len(caps)] if len(caps) > 1 else None
    return {"id": "+".join(ids), "wave": wave, "row": ctx.row(i), "caption": caps[k],
            "negatives": ex["negatives"], "swaps": ex["swaps"], "paraphrase": para, "label": "+".join(n for n in ex["labels"] if n)}


@dataclass
class ClapLoad:
    """The reader's ``load(ctx, item, gen)``: row indices -> clips, compose items -> compositions."""
    stage: str = "compa"
    gap_seconds: float = 0.25

    def __call__(self, ctx: ItemContext, item: Any, gen: torch.Generator) -> dict[str, Any] | None:
        if isinstance(item, tuple) and item[0] == "compose":
            return load_composition(ctx, item, gen, self.stage, self.gap_seconds)
        return load_clip(ctx, int(item), gen)


@dataclass(frozen=True)
class ClapBatch(AudioTextBatch):
    """``AudioTextBatch`` + ``negatives[i]``: hard-negative captions of item i (empty for clips) and
    ``paraphrases[i]``: another positive caption of a composition (None for clips), for the text
    hard-negative term. In training ``captions[i]`` holds the one caption drawn for this step."""
    negatives: list[list[str]] = field(default_factory=list)
    paraphrases: list[str | None] = field(default_factory=list)
    #: the hard negatives of item i that are word swaps of its positives (order / attribute swaps)
    swaps: list[list[str]] = field(default_factory=list)


def collate(examples: list[dict[str, Any]]) -> ClapBatch:
    """Examples of :func:`load_clip` / :func:`load_composition` -> ``audio (B, T)``, ``lengths (B,)``."""
    audio, lengths = pad_right([e["wave"] for e in examples])
    return ClapBatch(audio, lengths, [[e["caption"]] for e in examples], [e["label"] for e in examples],
                     [e["id"] for e in examples], [e["row"] for e in examples],
                     negatives=[list(e["negatives"]) for e in examples],
                     paraphrases=[e.get("paraphrase") for e in examples],
                     swaps=[list(e.get("swaps", [])) for e in examples])


def datamodule(cfg: ClapDataConfig, compose: ComposeConfig, *, train: Any = None, world_size: int = 1
               ) -> AudioDataModule:
    """The recipe's :class:`AudioDataModule` over ``train`` (default ``cfg.manifest``); fails early
    (``world_size``: the expected number of ranks) when the plan has no batch."""
    rows = ManifestRows.of(train if train is not None else cfg.manifest)
    load = ClapLoad(compose.mode if compose.mode != "none" else "compa", compose.gap_seconds)
    probe = Reader(rows, cfg, train=True, collate=collate, sampler=make_sampler(cfg, compose), load=load,
                   world_size=world_size)
    if len(probe) == 0:
        raise ValueError(f"data: no training batch: {len(rows)} rows ({probe.stats.total} filtered out) for "
                         f"batches of {cfg.batch_size} x {world_size} rank(s); lower data.batch_size or set "
                         f"data.drop_last=false")
    return AudioDataModule(cfg, collate, train=rows, load=load, sampler=lambda _rows: make_sampler(cfg, compose))


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
