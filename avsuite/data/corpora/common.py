"""Shared machinery of the corpus builders: ids, splits, clip conversion, parallel maps, summaries.

Everything here is deterministic: the same inputs give the same rows in the same order, so a
rebuilt manifest is byte-identical. Randomness, where a builder needs any, is seeded from
:func:`stable_hash` of a fixed string, never from the clock or ``hash()``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

log = logging.getLogger("avsuite.data.corpora")

#: Keys written first, in this order; any other key follows in sorted order.
ROW_KEY_ORDER = ("id", "audio", "duration", "sr", "label", "text", "text_raw", "translation", "captions",
                 "category", "lang", "split", "speaker", "source", "license", "origin")

#: Options that change how a build runs but never what it writes (left out of the cache key).
RUNTIME_OPTIONS = frozenset({"workers", "progress"})


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same on every machine and run (unlike ``hash()``)."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def split_for(key: str, *, valid: float = 0.1, test: float = 0.1, salt: str = "avsuite-split") -> str:
    """``"train"``/``"valid"``/``"test"`` for ``key``, by hashing: stable and about ``1-valid-test``/``valid``/``test``."""
    if valid < 0 or test < 0 or valid + test >= 1:
        raise ValueError(f"valid ({valid}) and test ({test}) fractions must be >= 0 and sum below 1")
    u = stable_hash(f"{salt}:{key}") / 2.0 ** 64
    if u < test:
        return "test"
    if u < test + valid:
        return "valid"
    return "train"


def order_row(row: dict[str, Any]) -> dict[str, Any]:
    """The same row with its keys in the canonical order (so JSON lines are byte-stable)."""
    head = [k for k in ROW_KEY_ORDER if k in row]
    tail = sorted(k for k in row if k not in ROW_KEY_ORDER)
    return {k: row[k] for k in head + tail}


def with_article(noun: str) -> str:
    """``"dog"`` -> ``"a dog"``, ``"owl"`` -> ``"an owl"``."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def debian_version(package: str) -> str | None:
    """The installed version of a Debian package, or None when it is not installed (or no dpkg)."""
    try:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", package],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0 or "\t" not in res.stdout:
        return None
    status, version = res.stdout.split("\t", 1)
    return version.strip() if status.strip().endswith("installed") and "not-installed" not in status else None


@dataclass
class ClipSpec:
    """One source clip to put in a corpus: where it is and what it is."""

    id: str
    src: str                      # a file load_audio can decode
    label: str
    category: str
    captions: list[str]
    source: str                   # package name
    license: str                  # SPDX-like
    origin: str = ""              # where it came from (path, rcc entry, render recipe)
    extra: dict[str, Any] = field(default_factory=dict)


# -- summaries ------------------------------------------------------------------------------------

@dataclass
class Summary:
    """Counts a build reports: kept clips by group, skipped clips by reason (with examples)."""

    kept: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, what: str) -> None:
        self.skipped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(what)

    def to_dict(self) -> dict[str, Any]:
        return {"skipped": dict(sorted(self.skipped.items())),
                "skipped_examples": {k: sorted(v) for k, v in sorted(self.examples.items())}}


def table(title: str, counts: dict[str, Any], header: tuple[str, str] = ("", "clips")) -> str:
    """A small aligned two-column text table."""
    rows = [(str(k), str(v)) for k, v in counts.items()]
    w0 = max([len(header[0])] + [len(r[0]) for r in rows])
    w1 = max([len(header[1])] + [len(r[1]) for r in rows])
    lines = [title, f"  {header[0]:<{w0}}  {header[1]:>{w1}}", f"  {'-' * w0}  {'-' * w1}"]
    lines += [f"  {a:<{w0}}  {b:>{w1}}" for a, b in rows]
    return "\n".join(lines)


# -- parallel map -----------------------------------------------------------------------------------

def resolve_workers(workers: int | None) -> int:
    return max(1, int(workers)) if workers else max(1, min(os.cpu_count() or 1, 8))


def parallel_map(fn: Callable, items: Sequence, *, workers: int | None = None, desc: str = "",
                 progress: bool = True, unit: str = "clip") -> list:
    """``[fn(x) for x in items]`` on a pool of threads, results in input order, with a tqdm bar.

    Threads, not processes: the work is decoding (libsndfile, ffmpeg), torch resampling, numpy and
    fluidsynth subprocesses, all of which release the GIL; measured on the 2-core machine, a thread
    pool converts the sound clips ~3x faster than a spawned process pool, which pays a torch import
    per worker. One worker (or one item) runs inline.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm.auto import tqdm

    items = list(items)
    n = min(resolve_workers(workers), max(1, len(items)))
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress or not items, leave=False)
    try:
        if n == 1:
            out = []
            for x in items:
                out.append(fn(x))
                bar.update(1)
            return out
        results: list = [None] * len(items)
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="avsuite-corpus") as pool:
            futures = {pool.submit(fn, x): i for i, x in enumerate(items)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update(1)
        return results
    finally:
        bar.close()


# -- clip conversion --------------------------------------------------------------------------------

SILENCE_PEAK = 1e-4  # -80 dBFS: a clip whose loudest sample is below this is empty


@dataclass(frozen=True)
class ConvertJob:
    """Decode ``src`` with ``load_audio``, resample to ``sr`` (mono), write 16-bit ``dst``."""

    src: str
    dst: str
    sr: int
    max_seconds: float = 600.0


def convert_clip(job: ConvertJob) -> dict[str, Any]:
    """Run one :class:`ConvertJob`; returns ``{"ok", "frames", "sr", "digest"}`` or ``{"ok": False, "reason"}``."""
    import numpy as np
    import soundfile as sf

    from avsuite.audio.io import AudioDecodeError, load_audio

    try:
        wave, native = load_audio(job.src, max_seconds=job.max_seconds)
    except AudioDecodeError as exc:
        return {"ok": False, "reason": "decode_error", "detail": exc.reason}
    arr, sr = resample_any(wave.numpy(), native, job.sr), job.sr
    peak = float(np.abs(arr).max()) if arr.size else 0.0
    if peak < SILENCE_PEAK:
        return {"ok": False, "reason": "silent", "detail": f"peak {peak:.2e}"}
    pcm = np.round(np.clip(arr, -1.0, 1.0) * 32767.0).astype("<i2")
    Path(job.dst).parent.mkdir(parents=True, exist_ok=True)
    sf.write(job.dst, pcm, sr, subtype="PCM_16")
    return {"ok": True, "frames": int(arr.shape[-1]), "sr": int(sr),
            "digest": hashlib.sha1(pcm.tobytes()).hexdigest()}


def resample_any(wave, orig_sr: int, new_sr: int):
    """``(T,)`` float32 numpy at ``orig_sr`` -> ``new_sr`` with the shared resampler (which switches
    to FFT resampling for odd rate pairs such as tuxpaint's 22254 Hz)."""
    import numpy as np
    import torch

    from avsuite.audio.resample import resample

    if orig_sr == new_sr:
        return wave
    return resample(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), orig_sr, new_sr).numpy()


def convert_all(jobs: Sequence[ConvertJob], *, workers: int | None, desc: str, progress: bool) -> list[dict[str, Any]]:
    """:func:`convert_clip` over ``jobs`` in parallel.

    With a single worker, torch is held to one intra-op thread meanwhile: on the 2-vCPU machine one
    caller with two OpenMP threads ran the resampling 4-7x slower than with one (spin contention),
    while two callers are fine either way.
    """
    import torch

    n = min(resolve_workers(workers), max(1, len(jobs)))
    old = torch.get_num_threads()
    if n == 1:
        torch.set_num_threads(1)
    try:
        return parallel_map(convert_clip, jobs, workers=n, desc=desc, progress=progress)
    finally:
        torch.set_num_threads(old)


def duration_of(frames: int, sr: int) -> float:
    return round(frames / sr, 4)


def clear_outputs(out: Path, names: Iterable[str]) -> None:
    """Remove what a previous build of ``out`` wrote (only the named entries, never ``out`` itself)."""
    for name in names:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def write_json(path: Path, obj: Any) -> None:
    from avsuite.checkpoint import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
