"""On-disk cache of decoded audio: decode + resample once, then read only the window.

    cache = AudioCache("cache/", sample_rate=16000)
    wave = cache.load("clip.ogg", window=(3.0, 0.25))    # (T,) float32; reads only the window

Entries are ``<dir>/<sr>/<key>.npy`` (float32, mono) where ``key`` hashes the source file's
resolved path, size and mtime and the decoder version: a changed file is a new entry; stale ones
are never read. Entries are written atomically, so concurrent workers and ranks can share a dir.
Reads seek to the window and read only its bytes (``np.load(mmap_mode="r")`` for an entry not
written by ``np.save`` as 1-D float32), so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from avsuite.audio.io import MAX_SECONDS_DEFAULT, AudioDecodeError, _window, load_audio

#: bump when decoding or resampling changes, so old entries are not reused
VERSION = 1


class AudioCache:
    def __init__(self, root: str | Path, sample_rate: int):
        self.root = Path(root) / f"sr{sample_rate}"
        self.sample_rate = sample_rate
        self.root.mkdir(parents=True, exist_ok=True)

    def key(self, path: str | Path) -> Path:
        p = Path(path).resolve()
        st = p.stat()
        raw = f"{VERSION}|{p}|{st.st_size}|{st.st_mtime_ns}|{self.sample_rate}".encode()
        return self.root / (hashlib.blake2b(raw, digest_size=16).hexdigest() + ".npy")

    def load(self, path: str | Path, *, max_seconds: float | None = None,
             window: tuple[float, float | None] | None = None,
             segment: tuple[float, float | None] | None = None) -> torch.Tensor:
        """Like :func:`~avsuite.audio.io.load_audio` at the cache's rate (same errors); the entry
        holds the whole file, ``segment`` and ``window`` read only their bytes of it."""
        if not Path(path).is_file():
            raise AudioDecodeError(path, "file not found")
        entry = self.key(path)
        if not entry.is_file():
            wave, _ = load_audio(path, self.sample_rate,
                                 max_seconds=MAX_SECONDS_DEFAULT if segment else max_seconds or MAX_SECONDS_DEFAULT)
            tmp = entry.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, wave.numpy())
            os.replace(tmp, entry)
        with open(entry, "rb") as fh:
            layout = _float32_layout(fh)
            data = np.load(entry, mmap_mode="r") if layout is None else None
            total = len(data) if layout is None else layout[0]
            lo, hi = self._segment(path, total, segment) if segment else (0, total)
            if max_seconds is not None and hi - lo > max_seconds * self.sample_rate + 1:
                raise AudioDecodeError(path, f"too long: {(hi - lo) / self.sample_rate:.1f} s > {max_seconds:.1f} s limit")
            start, stop = lo, hi
            if window is not None:
                n = math.ceil(window[0] * self.sample_rate)
                start = lo + _window(hi - lo, n, window[1])
                stop = min(start + n, hi)
            if layout is not None:          # read just the window's bytes (no mmap, no header eval)
                out = np.empty(stop - start, np.float32)
                fh.seek(layout[1] + 4 * start)
                if fh.readinto(memoryview(out).cast("B")) == out.nbytes:
                    return torch.from_numpy(out)
                data = np.load(entry, mmap_mode="r")
        return torch.from_numpy(np.array(data[start:stop], dtype=np.float32))

    def _segment(self, path: str | Path, total: int, segment: tuple[float, float | None]) -> tuple[int, int]:
        """Samples ``[lo, hi)`` of ``segment=(offset, duration | None)`` seconds, as load_audio cuts it."""
        start = int(segment[0] * self.sample_rate)
        if start >= total:
            raise AudioDecodeError(path, f"segment at {segment[0]:.2f} s starts after the end "
                                         f"({total / self.sample_rate:.2f} s)")
        stop = total if segment[1] is None else min(total, start + int(segment[1] * self.sample_rate))
        return start, stop


_HEADER = re.compile(r"\{'descr': '<f4', 'fortran_order': False, 'shape': \((\d+),\), \}\s*$")


def _float32_layout(fh: BinaryIO) -> tuple[int, int] | None:
    """``(samples, data offset)`` of a 1-D little-endian float32 ``.npy`` as np.save writes it;
    None for anything else (read with np.load then)."""
    head = fh.read(12)
    if len(head) < 12 or head[:6] != b"\x93NUMPY" or sys.byteorder != "little":
        return None
    if head[6] == 1:
        size, start = int.from_bytes(head[8:10], "little"), 10
    elif head[6] in (2, 3):
        size, start = int.from_bytes(head[8:12], "little"), 12
    else:
        return None
    fh.seek(start)
    m = _HEADER.match(fh.read(size).decode("latin1"))
    return (int(m.group(1)), start + size) if m else None
