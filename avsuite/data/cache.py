"""On-disk cache of decoded audio: decode + resample once, then memory-map every later read.

    cache = AudioCache("cache/", sample_rate=16000)
    wave = cache.load("clip.ogg", window=(3.0, 0.25))    # (T,) float32; reads only the window

Entries are ``<dir>/<sr>/<key>.npy`` (float32, mono) where ``key`` hashes the source file's
resolved path, size and mtime and the decoder version: a changed file is a new entry; stale ones
are never read. Entries are written atomically, so concurrent workers and ranks can share a dir.
Reads use ``np.load(mmap_mode="r")`` and copy only the window, so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

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
             window: tuple[float, float | None] | None = None) -> torch.Tensor:
        """Like :func:`~avsuite.audio.io.load_audio` at the cache's rate (same errors)."""
        if not Path(path).is_file():
            raise AudioDecodeError(path, "file not found")
        entry = self.key(path)
        if not entry.is_file():
            wave, _ = load_audio(path, self.sample_rate, max_seconds=max_seconds or MAX_SECONDS_DEFAULT)
            tmp = entry.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, wave.numpy())
            os.replace(tmp, entry)
        data = np.load(entry, mmap_mode="r")
        if max_seconds is not None and len(data) > max_seconds * self.sample_rate + 1:
            raise AudioDecodeError(path, f"too long: {len(data) / self.sample_rate:.1f} s > {max_seconds:.1f} s limit")
        if window is not None:
            n = math.ceil(window[0] * self.sample_rate)
            start = _window(len(data), n, window[1])
            data = data[start:start + n]
        return torch.from_numpy(np.array(data, dtype=np.float32))
