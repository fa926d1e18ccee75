"""On-disk cache of frontend features: the log-mel of a file computed once, read back memory-mapped.

    cache = FeatureCache("cache/", frontend_cfg, sample_rate=16000)
    feats = cache.load("clip.wav")                    # (n_mels, F) float32

The design rule holds: the frontend runs inside the model, and data code never calls a model.
The cache stage builds its OWN :class:`~avsuite.audio.frontend.AudioFrontend` from the recipe's
:class:`~avsuite.audio.frontend.FrontendConfig` (the one the model embeds), runs it on one item at a
time (a padded batch equals its items run one by one), and stores ``(n_mels, F)`` float32 ``.npy``.
Entries are ``<dir>/features/<config hash>/<key>.npy``: the config hash covers every
FrontendConfig field, the input rate and :data:`VERSION`; the key hashes the source file's
resolved path, size and mtime and the segment (``offset``/``duration`` rows). A changed config
or a touched file is a miss; stale entries are never read. Writes are atomic (workers and ranks
can share a dir) and reads are memory-mapped copies of one entry: memory is bounded by one item,
the cache by the disk.

Features of a file are a deterministic function of the file, so the stage before the cache must be
deterministic: ``data.cache_stage="features"`` refuses ``crop_seconds`` (random crops are cut from
the wave before the frontend; see :func:`check_feature_stage`). Train-time SpecAugment still runs
inside the model, on the cached features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np
import torch

from avsuite.audio.frontend import AudioFrontend, FrontendConfig
from avsuite.audio.io import MAX_SECONDS_DEFAULT, AudioDecodeError, load_audio

#: bump when the frontend's arithmetic or the decoder changes, so old entries are not reused
VERSION = 1


def frontend_hash(cfg: FrontendConfig, sample_rate: int) -> str:
    """A stable hash of every FrontendConfig field, the input rate and :data:`VERSION`."""
    raw = json.dumps({"v": VERSION, "sr": sample_rate, "frontend": dataclasses.asdict(cfg)}, sort_keys=True)
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def check_feature_stage(data: object, frontend: FrontendConfig | None, *, need_frontend: bool = True) -> None:
    """Raise when ``data.cache_stage == "features"`` cannot be honoured: no ``cache_dir``, a random
    crop before the cache, no frontend config, or a rate the frontend does not take."""
    if getattr(data, "cache_stage", "audio") != "features":
        return
    if not getattr(data, "cache_dir", None):
        raise ValueError("data.cache_stage='features' needs data.cache_dir (where the features are kept)")
    if getattr(data, "crop_seconds", None) is not None:
        raise ValueError("data.cache_stage='features' caches the frontend's output of the whole row, so the "
                         "stages before it must be deterministic: data.crop_seconds must be null (random crops "
                         "are cut from the wave before the frontend). Use data.cache_stage='audio' to crop")
    if frontend is None:
        if not need_frontend:
            return
        raise ValueError("data.cache_stage='features' needs the recipe's FrontendConfig (Reader(frontend=...))")
    expected = frontend.input_sample_rate or frontend.sample_rate
    if data.sample_rate != expected:      # type: ignore[attr-defined]
        raise ValueError(f"data.sample_rate={data.sample_rate} but the frontend expects {expected} Hz input")  # type: ignore[attr-defined]


class FeatureCache:
    """``(n_mels, F)`` features per source file (or segment), computed once; see the module docstring."""

    def __init__(self, root: str | Path, frontend: FrontendConfig, sample_rate: int):
        self.frontend_cfg, self.sample_rate = frontend, sample_rate
        self.root = Path(root) / "features" / frontend_hash(frontend, sample_rate)
        self.root.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()           # one frontend per loader thread (work buffers)

    def key(self, path: str | Path, segment: tuple[float, float | None] | None = None) -> Path:
        p = Path(path).resolve()
        st = p.stat()
        raw = f"{p}|{st.st_size}|{st.st_mtime_ns}|{segment!r}".encode()
        return self.root / (hashlib.blake2b(raw, digest_size=16).hexdigest() + ".npy")

    def frontend(self) -> AudioFrontend:
        fe = getattr(self._local, "frontend", None)
        if fe is None:
            fe = self._local.frontend = AudioFrontend(self.frontend_cfg).eval()
        return fe

    @torch.no_grad()
    def compute(self, wave: torch.Tensor) -> torch.Tensor:
        """``(T,)`` wave -> ``(n_mels, F)`` features of the standalone frontend (valid frames only)."""
        feats, n = self.frontend()(wave[None], torch.tensor([wave.shape[-1]]))
        return feats[0, :, : int(n[0])].contiguous()

    def load(self, path: str | Path, *, max_seconds: float | None = None,
             segment: tuple[float, float | None] | None = None) -> torch.Tensor:
        """The features ``(n_mels, F)`` of ``path`` (its ``segment``); errors as
        :func:`~avsuite.audio.io.load_audio` (``max_seconds`` bounds the audio's length)."""
        if not Path(path).is_file():
            raise AudioDecodeError(path, "file not found")
        entry = self.key(path, segment)
        if not entry.is_file():
            wave, _ = load_audio(path, self.sample_rate, max_seconds=max_seconds or MAX_SECONDS_DEFAULT,
                                 segment=segment)
            tmp = entry.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp.npy")
            np.save(tmp, self.compute(wave).numpy())
            os.replace(tmp, entry)
        data = np.load(entry, mmap_mode="r")
        if max_seconds is not None:
            seconds = (data.shape[1] - 1) * self.frontend_cfg.hop_length / self.frontend_cfg.sample_rate
            if seconds > max_seconds + 1e-6:
                raise AudioDecodeError(path, f"too long: {seconds:.1f} s > {max_seconds:.1f} s limit")
        return torch.from_numpy(np.array(data, dtype=np.float32))
