"""Compositions of real clips for CompA / TeminAL training and the compositional/temporal benchmarks.

Pure functions over waveforms ``(T,)`` float32 and event names; the only I/O is
:func:`load_row_wave` (a thin wrapper of :func:`avsuite.audio.io.load_audio` for manifest rows that
carry no ``"wave"``).

- :func:`concat` — X, a silent gap, then Y: "X followed by Y" / "X then Y" / "X before Y" /
  "Y after X"; hard negatives are the order swap ("Y followed by X") and the operator swap
  ("X with Y").
- :func:`overlay` — X and Y at once, Y at ``snr_db`` below X: "X with Y" / "X and Y at the same
  time" / "X while Y" (either order); hard negatives are the sequential captions.
- :func:`attribute_concat` — X at ``+gain_db``, a gap, Y at ``-gain_db`` (relative to the common
  loudness; a negative gain makes X the quiet one): "a loud X followed by a quiet Y"; hard negatives
  are the attribute swap ("a quiet X followed by a loud Y"), then the order swaps.

Each input is loudness-normalised (RMS to ``TARGET_DBFS``) before mixing, and the result is
scaled down (never clipped) when its peak exceeds ``PEAK``. Every caption template lives in this
module (``CONCAT_TEMPLATES``, ``OVERLAY_TEMPLATES``, ``ATTRIBUTE_TEMPLATES``).

:func:`compose_example` builds one training example from two waves (the clap recipe's load
function decodes them through the data pipeline); ``stage`` picks the negatives: ``"compa"`` (order
+ operator swaps), ``"teminal_a"`` (stage A: single-event vs multi-event: the negatives of a
composite are its single-event captions, those of a single clip are composites that contain it),
``"teminal_b"`` (stage B: temporal order, the same swaps as CompA). :func:`build_benchmark` makes
Winoground-style 2x2 sets for :mod:`avsuite.eval.metrics_compositional`.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import Tensor

TARGET_DBFS = -20.0
PEAK = 0.99
CONCAT_TEMPLATES = ("{x} followed by {y}", "{x} then {y}", "{x} before {y}", "{y} after {x}")
OVERLAY_TEMPLATES = ("{x} with {y}", "{x} and {y} at the same time", "{x} while {y}")
ATTRIBUTE_TEMPLATES = ("a loud {x} followed by a quiet {y}", "a quiet {x} followed by a loud {y}")
ATTRIBUTE_GAIN_DB = 9.0
#: training draws the attribute gain uniformly in this range (dB each way; the benchmark uses 9)
ATTRIBUTE_TRAIN_GAIN_DB = (6.0, 12.0)

Kind = Literal["concat", "overlay", "attribute", "single"]
Stage = Literal["compa", "teminal_a", "teminal_b"]


# ----------------------------------------------------------------------------- signal helpers


def _wave(x: Any, name: str) -> Tensor:
    w = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float32)
    if w.dim() != 1 or w.numel() == 0:
        raise ValueError(f"{name} must be a non-empty mono waveform (T,), got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return w


def rms_dbfs(wave: Tensor) -> float:
    """RMS level in dB relative to full scale (``-inf`` for silence)."""
    r = float(wave.double().pow(2).mean().sqrt())
    return 20 * math.log10(r) if r > 0 else float("-inf")


def loudness_normalize(wave: Tensor, target_dbfs: float = TARGET_DBFS) -> Tensor:
    """Scale ``(T,)`` to ``target_dbfs`` RMS; silence is returned unchanged."""
    level = rms_dbfs(wave)
    return wave if math.isinf(level) else wave * (10 ** ((target_dbfs - level) / 20))


def peak_limit(wave: Tensor, peak: float = PEAK) -> tuple[Tensor, float]:
    """Scale down so ``max|x| <= peak`` (never clips, never scales up); returns ``(wave, gain)``."""
    m = float(wave.abs().max()) if wave.numel() else 0.0
    gain = peak / m if m > peak else 1.0
    return wave * gain, gain


def concat(a: Tensor, b: Tensor, sr: int, gap_s: float = 0.25) -> Tensor:
    """``a (Ta,)``, ``b (Tb,)`` -> ``(Ta + round(gap_s*sr) + Tb,)``: a, silence, b (both loudness-
    normalised, then peak-limited)."""
    a, b = loudness_normalize(_wave(a, "a")), loudness_normalize(_wave(b, "b"))
    if gap_s < 0 or sr <= 0:
        raise ValueError(f"gap_s must be >= 0 and sr > 0, got gap_s={gap_s}, sr={sr}")
    gap = torch.zeros(int(round(gap_s * sr)), dtype=torch.float32)
    return peak_limit(torch.cat([a, gap, b]))[0]


def attribute_concat(a: Tensor, b: Tensor, sr: int, gap_s: float = 0.25, gain_db: float = ATTRIBUTE_GAIN_DB
                     ) -> Tensor:
    """``a (Ta,)`` then ``b (Tb,)`` as in :func:`concat`, but ``a`` at ``+gain_db`` and ``b`` at ``-gain_db``
    around the common loudness (``gain_db > 0``: loud a, quiet b; ``< 0``: quiet a, loud b), then
    peak-limited (one gain for both, so their level difference stays ``2 * |gain_db|`` dB)."""
    a, b = loudness_normalize(_wave(a, "a")), loudness_normalize(_wave(b, "b"))
    if gap_s < 0 or sr <= 0:
        raise ValueError(f"gap_s must be >= 0 and sr > 0, got gap_s={gap_s}, sr={sr}")
    if not math.isfinite(gain_db):
        raise ValueError(f"gain_db must be finite, got {gain_db}")
    g = 10 ** (gain_db / 20)
    gap = torch.zeros(int(round(gap_s * sr)), dtype=torch.float32)
    return peak_limit(torch.cat([a * g, gap, b / g]))[0]


def overlay(
    a: Tensor, b: Tensor, snr_db: float = 0.0, *, offset: int = 0, return_parts: bool = False
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Mix ``b`` into ``a`` starting at sample ``offset``, ``snr_db`` = RMS level of a over b (each
    measured over its own samples). Output length ``max(Ta, offset + Tb)``. With ``return_parts``,
    returns ``(mix, a_part, b_part)`` with ``mix == a_part + b_part`` (after the common peak gain)."""
    a, b = loudness_normalize(_wave(a, "a")), loudness_normalize(_wave(b, "b"))
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    b = b * 10 ** (-snr_db / 20)
    n = max(a.numel(), offset + b.numel())
    pa, pb = torch.zeros(n), torch.zeros(n)
    pa[: a.numel()] = a
    pb[offset : offset + b.numel()] = b
    mix, gain = peak_limit(pa + pb)
    return (mix, pa * gain, pb * gain) if return_parts else mix


# ----------------------------------------------------------------------------- captions


def event_name(row: dict) -> str:
    """The event name of a manifest row: ``label``, else ``text``, else the first caption; a final
    period is dropped and the first letter lower-cased ("A red kangaroo." -> "a red kangaroo")."""
    name = row.get("label") or row.get("text") or (row.get("captions") or [None])[0]
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"row {row.get('id', '?')!r} has no label, text or caption to name its event")
    name = name.strip().rstrip(".").strip()
    return name[:1].lower() + name[1:]


def _fill(templates: Sequence[str], x: str, y: str) -> list[str]:
    return [t.format(x=x, y=y) for t in templates]


def concat_captions(x: str, y: str) -> tuple[list[str], list[str]]:
    """Positives of "x then y" and its hard negatives (order swap, then operator swap)."""
    neg = _fill(CONCAT_TEMPLATES, y, x) + _fill(OVERLAY_TEMPLATES, x, y) + _fill(OVERLAY_TEMPLATES, y, x)
    return _fill(CONCAT_TEMPLATES, x, y), _dedupe(neg)


def overlay_captions(x: str, y: str) -> tuple[list[str], list[str]]:
    """Positives of "x with y" (both orders: it is symmetric) and the sequential negatives."""
    pos = _dedupe(_fill(OVERLAY_TEMPLATES, x, y) + _fill(OVERLAY_TEMPLATES, y, x))
    return pos, _dedupe(_fill(CONCAT_TEMPLATES, x, y) + _fill(CONCAT_TEMPLATES, y, x))


def attribute_captions(x: str, y: str, loud_first: bool = True) -> tuple[list[str], list[str]]:
    """Positives of "a loud x followed by a quiet y" (``loud_first``; else "a quiet x ... a loud y")
    in every sequential template, and its hard negatives: the attribute swap (same order, loud and
    quiet exchanged: what the CompA-attribute benchmark asks), then the order swaps."""
    hi, lo = ("loud", "quiet") if loud_first else ("quiet", "loud")
    pos = _fill(CONCAT_TEMPLATES, f"a {hi} {x}", f"a {lo} {y}")
    neg = (_fill(CONCAT_TEMPLATES, f"a {lo} {x}", f"a {hi} {y}") + _fill(CONCAT_TEMPLATES, f"a {lo} {y}", f"a {hi} {x}")
           + _fill(CONCAT_TEMPLATES, f"a {hi} {y}", f"a {lo} {x}"))
    return pos, _dedupe(neg)


def word_swaps(pos: Sequence[str], neg: Sequence[str]) -> list[str]:
    """The negatives that use exactly the words of some positive (order / attribute swaps: "y followed
    by x" for "x followed by y"), not the operator swaps ("x with y") or single events."""
    bags = {tuple(sorted(p.split())) for p in pos}
    return [n for n in neg if tuple(sorted(n.split())) in bags]


def _dedupe(caps: list[str]) -> list[str]:
    return list(dict.fromkeys(caps))


def stage_captions(
    kind: Kind, x: str, y: str | None, stage: Stage, other: str | None = None, *, loud_first: bool = True
) -> tuple[list[str], list[str]]:
    """``(positives, negatives)`` of one example; ``other`` is a third event (teminal_a singles);
    ``loud_first`` only for ``attribute``."""
    if stage not in ("compa", "teminal_a", "teminal_b"):
        raise ValueError(f"stage must be 'compa', 'teminal_a' or 'teminal_b', got {stage!r}")
    if kind == "single":
        if stage != "teminal_a" or other is None:
            return [x], []
        composites = concat_captions(x, other)[0][:1] + concat_captions(other, x)[0][:1]
        return [x], composites + overlay_captions(x, other)[0][:1]
    if kind == "attribute":
        pos, neg = attribute_captions(x, y, loud_first)
    else:
        pos, neg = (concat_captions if kind == "concat" else overlay_captions)(x, y)
    if stage == "teminal_a":
        neg = [x, y]
    return pos, [c for c in neg if c not in pos]


# ----------------------------------------------------------------------------- training examples


def compose_example(
    kind: Kind, a: Tensor, b: Tensor | None, x: str, y: str, stage: Stage, *, sr: int, gen: torch.Generator,
    gap_s: tuple[float, float] = (0.1, 0.5), snr_db: tuple[float, float] = (-5.0, 5.0),
    attribute_gain_db: tuple[float, float] = ATTRIBUTE_TRAIN_GAIN_DB,
) -> dict:
    """One CompA / TeminAL training example from the waves ``a (Ta,)`` of event ``x`` and ``b (Tb,)``
    of event ``y`` (``b`` unused for ``single``; ``y`` then only names teminal_a's negatives).

    -> ``{"wave" (T,), "captions": [pos...], "negatives": [neg...], "swaps": [...], "kind", "labels":
    (x, y | None)}`` (``swaps``: the negatives that are word swaps of a positive, :func:`word_swaps`);
    ``captions[0]`` is the canonical caption ("x followed by y" / "x with y" / "a loud x followed by a
    quiet y" / "x"). The gap, the SNR, the overlay offset and the attribute gain (its magnitude in
    ``attribute_gain_db``, which event is loud) are drawn from ``gen`` (nothing else is random)."""
    if kind == "single":
        pos, neg = stage_captions("single", x, None, stage, other=y)
        wave = peak_limit(loudness_normalize(_wave(a, "a")))[0]
        return {"wave": wave, "captions": pos, "negatives": neg, "swaps": [], "kind": kind, "labels": (x, None)}
    if b is None:
        raise ValueError(f"a {kind} composition needs two waves")
    u = float(torch.rand((), generator=gen))
    if kind == "concat":
        wave = concat(a, b, sr, gap_s[0] + u * (gap_s[1] - gap_s[0]))
    elif kind == "overlay":
        offset = int(torch.randint(max(1, a.numel() - b.numel() + 1), (), generator=gen))
        wave = overlay(a, b, snr_db[0] + u * (snr_db[1] - snr_db[0]), offset=offset)
    elif kind == "attribute":
        v, loud_first = torch.rand(2, generator=gen).tolist()
        loud_first = loud_first < 0.5
        gain = attribute_gain_db[0] + v * (attribute_gain_db[1] - attribute_gain_db[0])
        wave = attribute_concat(a, b, sr, gap_s[0] + u * (gap_s[1] - gap_s[0]), gain if loud_first else -gain)
        pos, neg = stage_captions(kind, x, y, stage, loud_first=loud_first)
        return {"wave": wave, "captions": pos, "negatives": neg, "swaps": word_swaps(pos, neg), "kind": kind,
                "labels": (x, y)}
    else:
        raise ValueError(f"kind must be 'concat', 'overlay', 'attribute' or 'single', got {kind!r}")
    pos, neg = stage_captions(kind, x, y, stage)
    return {"wave": wave, "captions": pos, "negatives": neg, "swaps": word_swaps(pos, neg), "kind": kind,
            "labels": (x, y)}


# ----------------------------------------------------------------------------- benchmarks


def load_row_wave(row: dict, sr: int) -> Tensor:
    """``row["wave"]`` if present, else the decoded ``row["audio"]`` at ``sr`` (the only I/O here)."""
    if "wave" in row:
        return _wave(row["wave"], f"row {row.get('id', '?')!r} wave")
    from avsuite.audio.io import load_audio

    wave, _ = load_audio(row["audio"], sr)
    return _wave(wave, f"row {row.get('id', '?')!r} audio")


class _WaveCache:
    def __init__(self, rows: Sequence[dict], sr: int, size: int = 256):
        self.rows, self.sr, self.size, self.data = rows, sr, size, OrderedDict()

    def __call__(self, i: int) -> Tensor:
        if i not in self.data:
            self.data[i] = load_row_wave(self.rows[i], self.sr)
            if len(self.data) > self.size:
                self.data.popitem(last=False)
        self.data.move_to_end(i)
        return self.data[i]


def _crop(w: Tensor, seconds: float | None, sr: int, rng: random.Random) -> Tensor:
    if seconds is None or w.numel() <= int(seconds * sr):
        return w
    n = int(seconds * sr)
    start = rng.randrange(0, w.numel() - n + 1)
    return w[start : start + n]


def _names(rows: Sequence[dict]) -> list[str]:
    names = [event_name(r) for r in rows]
    if len(set(names)) < 2:
        raise ValueError(f"compositions need clips of at least 2 different events, got {sorted(set(names))}")
    return names



def _benchmark_set(kind: str, a: Tensor, b: Tensor, x: str, y: str, sr: int, gap_s: float):
    if kind == "order":  # same operator, swapped order
        return (concat(a, b, sr, gap_s), concat(b, a, sr, gap_s)), (f"{x} followed by {y}", f"{y} followed by {x}")
    if kind == "temporal":  # same order, swapped operator (sequential vs simultaneous)
        return (concat(a, b, sr, gap_s), overlay(a, b, 0.0)), (f"{x} before {y}", f"{x} while {y}")
    if kind == "attribute":  # same events and order, swapped attribute binding (loud / quiet)
        w0 = attribute_concat(a, b, sr, gap_s, ATTRIBUTE_GAIN_DB)
        w1 = attribute_concat(a, b, sr, gap_s, -ATTRIBUTE_GAIN_DB)
        return (w0, w1), tuple(t.format(x=x, y=y) for t in ATTRIBUTE_TEMPLATES)
    raise ValueError(f"benchmark kind must be 'order', 'attribute' or 'temporal', got {kind!r}")


def build_benchmark(
    rows: Sequence[dict], n: int, seed: int = 0, kind: Literal["order", "attribute", "temporal"] = "order",
    *, sr: int = 16000, gap_s: float = 0.25, clip_seconds: float | None = None,
) -> list[dict]:
    """``n`` Winoground-style sets ``{"id", "kind", "audios": (w0, w1), "texts": (t0, t1),
    "labels": (x, y), "ids"}``, audio_k matching text_k; the two texts differ only in order
    (``order``), operator (``temporal``: "x before y" / "x while y") or attribute binding
    (``attribute``: "a loud x followed by a quiet y" / the swap). Unordered clip pairs never repeat;
    deterministic in ``seed``."""
    if kind not in ("order", "attribute", "temporal"):
        raise ValueError(f"benchmark kind must be 'order', 'attribute' or 'temporal', got {kind!r}")
    rows = list(rows)
    names = _names(rows)
    pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows)) if names[i] != names[j]]
    if n > len(pairs):
        raise ValueError(f"asked for {n} sets but only {len(pairs)} distinct clip pairs with different events exist")
    rng = random.Random(f"benchmark:{kind}:{seed}")
    chosen = rng.sample(pairs, n)
    load = _WaveCache(rows, sr)
    out = []
    for k, (i, j) in enumerate(chosen):
        if rng.random() < 0.5:
            i, j = j, i
        a = _crop(load(i), clip_seconds, sr, rng)
        b = _crop(load(j), clip_seconds, sr, rng)
        audios, texts = _benchmark_set(kind, a, b, names[i], names[j], sr, gap_s)
        out.append({"id": f"{kind}-{seed}-{k}", "kind": kind, "audios": audios, "texts": texts,
                    "labels": (names[i], names[j]), "ids": (rows[i]["id"], rows[j]["id"])})
    return out
