"""Any audio (or video) file -> float32 mono at the asked rate.

soundfile (libsndfile) reads wav/flac/ogg/mp3 first; PyAV (ffmpeg) reads everything else: m4a/aac,
opus, raw G.722 (``.g722``), and the audio track of video files. Every failure is one
:class:`AudioDecodeError` naming the file and the reason, so callers can skip-and-count.

    wave, sr = load_audio("clip.ogg", sr=16000)      # (T,) float32 in [-1, 1]
"""

from __future__ import annotations

import errno
import math
import os
import stat
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from avsuite.audio.resample import resample

#: Longest file accepted unless the caller says otherwise (seconds); guards against decoding
#: hour-long files by mistake into memory.
MAX_SECONDS_DEFAULT = 4 * 3600.0

_RAW_FORMATS = {".g722": "g722"}


class AudioDecodeError(RuntimeError):
    """A file could not be turned into audio samples; ``path`` and ``reason`` say why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def _window(total: int, n: int, pos: float | None) -> int:
    """Start of an ``n``-sample window in ``total`` samples: at ``pos`` in [0, 1) of the free span
    (``int(pos * (total - n + 1))``), or centred when ``pos`` is None."""
    if total <= n:
        return 0
    return (total - n) // 2 if pos is None else min(int(pos * (total - n + 1)), total - n)


def _read_soundfile(path: Path, max_seconds: float, window: tuple[float, float | None] | None = None
                    ) -> tuple[np.ndarray, int, bool]:
    """-> ``(data (C, T) or (T,) when mono, rate, may_hold_nan)`` with one open of the file;
    ``window=(seconds, pos)`` reads only that window (see :func:`_window`)."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as fh:
        if fh.samplerate > 0 and fh.frames / fh.samplerate > max_seconds:
            raise AudioDecodeError(path, f"too long: {fh.frames / fh.samplerate:.1f} s > {max_seconds:.1f} s limit")
        frames = -1
        if window is not None and fh.seekable() and fh.frames > 0:
            frames = math.ceil(window[0] * fh.samplerate)
            fh.seek(_window(fh.frames, frames, window[1]))
        data = fh.read(frames, dtype="float32", always_2d=True)
        floating = fh.subtype in ("FLOAT", "DOUBLE")
        return (data[:, 0] if data.shape[1] == 1 else data.T), fh.samplerate, floating


def _read_pyav(path: Path, max_seconds: float) -> tuple[np.ndarray, int]:
    import av

    fmt = _RAW_FORMATS.get(path.suffix.lower())
    try:
        container = av.open(str(path), format=fmt)
    except av.FFmpegError as exc:
        raise AudioDecodeError(path, f"not a readable media file ({exc.__class__.__name__}: {exc})") from None
    with container:
        streams = container.streams.audio
        if not streams:
            raise AudioDecodeError(path, "no audio stream (not an audio or video file?)")
        stream = streams[0]
        sr = stream.codec_context.sample_rate or stream.rate
        chunks, total = [], 0
        try:
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if frame.format.is_planar:
                    arr = arr.reshape(len(frame.layout.channels), -1)
                else:
                    arr = arr.reshape(-1, len(frame.layout.channels)).T
                arr = _to_float(arr)
                chunks.append(arr)
                total += arr.shape[1]
                sr = frame.sample_rate or sr
                if sr and total / sr > max_seconds:
                    raise AudioDecodeError(path, f"too long: over the {max_seconds:.0f} s limit")
        except av.FFmpegError as exc:
            raise AudioDecodeError(path, f"corrupt audio stream ({exc})") from None
    if not chunks:
        raise AudioDecodeError(path, "zero-length audio (no samples decoded)")
    return np.concatenate(chunks, axis=1), int(sr)


def _to_float(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) - 128.0) / 128.0
    info = np.iinfo(arr.dtype)
    return arr.astype(np.float32) / float(-info.min)


def load_audio(path: str | Path, sr: int | None = None, *, mono: bool = True,
               max_seconds: float = MAX_SECONDS_DEFAULT, window: tuple[float, float | None] | None = None
               ) -> tuple[Tensor, int]:
    """Decode ``path``; return ``(wave, rate)`` with wave ``(T,)`` (mono) or ``(C, T)``.

    ``window=(seconds, pos)`` returns only a window of that length (the whole file when shorter):
    at ``pos`` in [0, 1) of the free span, or the centre when ``pos`` is None. Seekable formats
    (wav/flac/ogg/mp3) read only the window; others are decoded whole, then cut. With ``sr`` the
    window is cut at the file's rate, then resampled to exactly ``round(seconds * sr)`` samples.

    Raises :class:`AudioDecodeError` for a missing file, zero-length or corrupt data, an
    unsupported codec, NaN/inf samples, or a file longer than ``max_seconds``.
    """
    path = Path(path)
    try:                                       # one stat (Path.exists / is_dir / is_file / stat: four)
        st = os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):   # as Path.exists
            raise AudioDecodeError(path, "file not found") from None
        raise
    if stat.S_ISDIR(st.st_mode):
        raise AudioDecodeError(path, "is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise AudioDecodeError(path, "not a regular file (a pipe, device or socket)")
    if st.st_size == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)")
    data = native_sr = None
    first_error = None
    check_finite = True
    if path.suffix.lower() not in _RAW_FORMATS:
        try:
            data, native_sr, check_finite = _read_soundfile(path, max_seconds, window)
        except AudioDecodeError:
            raise
        except Exception as exc:  # libsndfile cannot read it: let ffmpeg try
            first_error = exc
    if data is None:
        try:
            data, native_sr = _read_pyav(path, max_seconds)
        except AudioDecodeError as exc:
            if first_error is not None and "not a readable media file" in exc.reason:
                raise AudioDecodeError(path, f"unsupported or corrupt audio ({first_error})") from None
            raise
    if data.shape[-1] == 0:
        raise AudioDecodeError(path, "zero-length audio (no samples)")
    if check_finite and not np.isfinite(data).all():   # integer PCM and codecs cannot hold NaN
        raise AudioDecodeError(path, "contains NaN or infinite samples")
    wave = torch.from_numpy(np.ascontiguousarray(data))
    if wave.dim() == 1:
        wave = wave if mono else wave[None]
    elif mono:
        wave = wave.mean(dim=0)
    if window is not None:                     # no-op when the reader already cut it
        n = math.ceil(window[0] * native_sr)
        start = _window(wave.shape[-1], n, window[1])
        wave = wave[..., start:start + n]
    if sr is not None and sr != native_sr:
        wave = resample(wave, native_sr, sr)
        native_sr = sr
        if window is not None:
            wave = wave[..., : int(round(window[0] * sr))]
    return wave.contiguous(), int(native_sr)


def save_audio(path: str | Path, wave: Tensor | np.ndarray, sr: int) -> None:
    """Write ``(T,)`` or ``(C, T)`` float audio as 16-bit PCM (wav/flac by suffix)."""
    import soundfile as sf

    arr = wave.detach().cpu().numpy() if isinstance(wave, Tensor) else np.asarray(wave)
    if arr.ndim == 2:
        arr = arr.T
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(arr, -1.0, 1.0), sr, subtype="PCM_16")


def audio_duration(path: str | Path) -> float:
    """Duration in seconds, read from the header when possible (decodes otherwise)."""
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return info.frames / info.samplerate
    except Exception:
        wave, rate = load_audio(path)
        return wave.shape[-1] / rate
