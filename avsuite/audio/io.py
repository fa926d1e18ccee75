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
from typing import Any

import numpy as np
import torch
from torch import Tensor

from avsuite.audio.resample import input_span, resample

#: Longest file accepted unless the caller says otherwise (seconds); guards against decoding
#: hour-long files by mistake into memory.
MAX_SECONDS_DEFAULT = 4 * 3600.0

#: decoding starts this long before a segment after a PyAV seek (codec warm-up; the samples are dropped)
PREROLL_SECONDS = 0.5

#: float files whose peak exceeds this (80 dB over full scale) are refused: nothing records that,
#: and from ~1e16 the float32 power spectrum overflows to inf/NaN features
MAX_FLOAT_PEAK = 1e4

_RAW_FORMATS = {".g722": "g722"}


class AudioDecodeError(RuntimeError):
    """A file could not be turned into audio samples; ``path`` and ``reason`` say why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):                        # picklable: raised in a loader worker process
        return type(self), (self.path, self.reason)


def _window(total: int, n: int, pos: float | None) -> int:
    """Start of an ``n``-sample window in ``total`` samples: at ``pos`` in [0, 1) of the free span
    (``int(pos * (total - n + 1))``), or centred when ``pos`` is None."""
    if total <= n:
        return 0
    return (total - n) // 2 if pos is None else min(int(pos * (total - n + 1)), total - n)


class _Span:
    """A segment ``(offset s, duration s | None)`` of a file, read at the native rate with the
    context that resampling to ``sr`` needs (:func:`~avsuite.audio.resample.input_span`)."""

    def __init__(self, path: Path, segment: tuple[float, float | None], sr: int | None, max_seconds: float):
        self.path, self.offset, self.duration, self.sr, self.max_seconds = path, *segment, sr, max_seconds
        if not (math.isfinite(self.offset) and self.offset >= 0) or (self.duration is not None and not self.duration > 0):
            raise AudioDecodeError(path, f"bad segment offset={self.offset} duration={self.duration}")
        if self.duration is not None and self.duration > max_seconds:
            raise AudioDecodeError(path, f"too long: {self.duration:.1f} s segment > {max_seconds:.1f} s limit")

    def native(self, native_sr: int, frames: int | None) -> tuple[int, int | None]:
        """-> native samples ``[a, b)`` to read (``b`` None: to the end); sets :attr:`keep`."""
        rate = self.sr or native_sr
        start = int(self.offset * rate)
        total = None if frames is None else -(-frames * rate // native_sr)
        if total is not None and start >= total:
            raise AudioDecodeError(self.path, f"segment at {self.offset:.2f} s starts after the end "
                                              f"({frames / native_sr:.2f} s)")
        if self.duration is None:
            if total is not None and (total - start) / rate > self.max_seconds:
                raise AudioDecodeError(self.path, f"too long: {(total - start) / rate:.1f} s segment > "
                                                  f"{self.max_seconds:.1f} s limit")
            stop = total if total is not None else None
        else:
            stop = start + int(self.duration * rate)
            stop = stop if total is None else min(stop, total)
        a, b, first = input_span(native_sr, rate, start, stop if stop is not None else start, frames)
        self.keep = (start - first, None if stop is None else stop - first)
        return a, (None if stop is None else b)


_WAV_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
              "ULAW": 1, "ALAW": 1}


def _check_not_truncated(path: Path, fh: Any) -> None:
    """Refuse a WAV whose data chunk promises more audio than the file holds (a cut download or
    copy). libsndfile silently shortens such files; we refuse them, as a FLAC/OGG whose data
    fails mid-stream: a clip is decoded whole or not at all (documented in README Reliability)."""
    if fh.format not in ("WAV", "WAVEX") or fh.subtype not in _WAV_BYTES or fh.channels < 1:
        return
    with open(path, "rb") as raw:
        head = raw.read(1 << 16)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if cid == b"data":
            if size in (0, 0xFFFFFFFF):              # a streamed wav: size unknown by design
                return
            promised = size // (_WAV_BYTES[fh.subtype] * fh.channels)
            if promised > fh.frames + 1:
                raise AudioDecodeError(path, f"truncated file: the header promises {promised / fh.samplerate:.2f} s, "
                                             f"the file holds {fh.frames / fh.samplerate:.2f} s")
            return
        pos += 8 + size + (size & 1)


def _read_wav_fast(path: Path, size: int, max_seconds: float, window: tuple[float, float | None] | None,
                   span: _Span | None) -> tuple[np.ndarray, int] | None:
    """:func:`avsuite.audio.wav.read_pcm16` with the window / span / length rules of :func:`_read_soundfile`."""
    from avsuite.audio.wav import read_pcm16

    def pick(rate: int, frames: int) -> tuple[int, int]:
        if span is not None:
            a, b = span.native(rate, frames)
            return a, frames if b is None else b
        if frames / rate > max_seconds:
            raise AudioDecodeError(path, f"too long: {frames / rate:.1f} s > {max_seconds:.1f} s limit")
        if window is not None and frames > 0:
            a = _window(frames, math.ceil(window[0] * rate), window[1])
            return a, min(a + math.ceil(window[0] * rate), frames)
        return 0, frames

    try:
        return read_pcm16(path, size, pick)
    except ValueError as exc:
        raise AudioDecodeError(path, str(exc)) from None


def _read_soundfile(path: Path, max_seconds: float, window: tuple[float, float | None] | None = None,
                    span: _Span | None = None) -> tuple[np.ndarray, int, bool]:
    """-> ``(data (C, T) or (T,) when mono, rate, may_hold_nan)`` with one open of the file;
    ``window=(seconds, pos)`` reads only that window (see :func:`_window`), ``span`` only its
    segment (a seek: a 10 s segment of a 1 h file reads 10 s)."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as fh:
        _check_not_truncated(path, fh)
        frames = -1
        if span is not None:
            if not fh.seekable():
                raise RuntimeError("not seekable")           # PyAV then decodes and keeps the segment
            a, b = span.native(fh.samplerate, fh.frames)
            fh.seek(a)
            frames = (b if b is not None else fh.frames) - a
        elif fh.samplerate > 0 and fh.frames / fh.samplerate > max_seconds:
            raise AudioDecodeError(path, f"too long: {fh.frames / fh.samplerate:.1f} s > {max_seconds:.1f} s limit")
        elif window is not None and fh.seekable() and fh.frames > 0:
            frames = math.ceil(window[0] * fh.samplerate)
            fh.seek(_window(fh.frames, frames, window[1]))
        try:
            data = fh.read(frames, dtype="float32", always_2d=True)
        except Exception as exc:   # the header was fine, the data is not: refuse (no partial decode)
            raise AudioDecodeError(path, f"corrupt audio data ({str(exc).strip()})") from None
        floating = fh.subtype in ("FLOAT", "DOUBLE")
        return (data[:, 0] if data.shape[1] == 1 else data.T), fh.samplerate, floating


def _read_pyav(path: Path, max_seconds: float, span: _Span | None = None) -> tuple[np.ndarray, int]:
    """Decode with ffmpeg; with ``span`` seek near its start (when the container allows) and keep
    only its samples, so memory and time follow the segment, not the file."""
    import av

    fmt = _RAW_FORMATS.get(path.suffix.lower())
    for seek in ((True, False) if span is not None else (False,)):
        try:
            container = av.open(str(path), format=fmt)
        except Exception as exc:  # av.FFmpegError, and UnicodeDecodeError/ValueError on some garbage
            raise AudioDecodeError(path, f"not a readable media file ({exc.__class__.__name__}: {exc})") from None
        try:
            with container:
                out = _decode_stream(container, path, max_seconds, span, seek)
        except AudioDecodeError:
            raise
        except Exception as exc:  # a stream PyAV cannot set up (no decoder for the codec, bad parameters)
            raise AudioDecodeError(path, f"unsupported or corrupt audio ({exc.__class__.__name__}: {exc})") from None
        if out is not None:
            return out
    raise AssertionError("unreachable: decoding without a seek always returns")


def _decode_stream(container, path: Path, max_seconds: float, span: _Span | None, seek: bool
                   ) -> tuple[np.ndarray, int] | None:
    """Samples of ``container``'s first audio stream (the span's when given); None when a seek
    landed where sample positions cannot be trusted (the caller decodes from the start)."""
    import av

    streams = container.streams.audio
    if not streams:
        raise AudioDecodeError(path, "no audio stream (not an audio or video file?)")
    stream = streams[0]
    sr = stream.codec_context.sample_rate or stream.rate
    a, b = span.native(sr, None) if span is not None else (0, None)
    t0 = stream.start_time or 0
    seek = seek and a > 0 and stream.time_base is not None
    if seek:
        try:
            # land PREROLL before the span: lapped-transform codecs (AAC, Vorbis, Opus, MP3) only
            # decode exact samples once the frames before them have been decoded too
            container.seek(t0 + int(max(a / sr - PREROLL_SECONDS, 0) / stream.time_base), stream=stream, backward=True)
        except (av.FFmpegError, OSError, ValueError):
            return None
    chunks, pos = [], None if seek else 0
    try:
        for frame in container.decode(stream):
            arr = frame.to_ndarray()
            if frame.format.is_planar:
                arr = arr.reshape(len(frame.layout.channels), -1)
            else:
                arr = arr.reshape(-1, len(frame.layout.channels)).T
            if pos is None:                              # first frame after a seek: where are we?
                if frame.pts is None or frame.time_base is None:
                    return None
                pos = round((frame.pts - t0) * frame.time_base * sr)
                if pos > a or pos < 0:
                    return None
            lo, hi = max(a - pos, 0), arr.shape[1] if b is None else min(b - pos, arr.shape[1])
            pos += arr.shape[1]
            if hi > lo:
                chunks.append(_to_float(arr[:, lo:hi]))
            if b is not None and pos >= b:
                break
            if span is None:
                sr = frame.sample_rate or sr
            if sr and (pos - a) / sr > max_seconds + (1 if span is not None else 0):
                raise AudioDecodeError(path, f"too long: over the {max_seconds:.0f} s limit")
    except AudioDecodeError:
        raise
    except Exception as exc:  # av.FFmpegError and whatever else a corrupt stream makes PyAV raise
        raise AudioDecodeError(path, f"corrupt audio stream ({exc.__class__.__name__}: {exc})") from None
    if not chunks:
        if span is not None and pos is not None and pos <= a:
            raise AudioDecodeError(path, f"segment at {span.offset:.2f} s starts after the end ({pos / sr:.2f} s)")
        raise AudioDecodeError(path, "zero-length audio (no samples decoded)")
    return np.concatenate(chunks, axis=1), int(sr)


def _white_noise(data: np.ndarray, frame: int = 512) -> bool:
    """True for full-scale white noise: what any random bytes decode to in a headerless codec.
    Measured: median spectral flatness 0.38-0.40 (peak 1.0) for random bytes, <= 0.09 for all
    200 Asterisk G.722 prompts; the threshold sits between (0.25)."""
    x = data if data.ndim == 1 else data.mean(axis=0)
    n = x.shape[-1] // frame
    if n < 4 or float(np.abs(x).max()) < 0.98:
        return False
    spec = np.abs(np.fft.rfft(x[: n * frame].reshape(n, frame) * np.hanning(frame), axis=1)) ** 2 + 1e-12
    flatness = np.exp(np.log(spec).mean(axis=1)) / spec.mean(axis=1)
    return float(np.median(flatness)) > 0.25


def _to_float(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) - 128.0) / 128.0
    info = np.iinfo(arr.dtype)
    return arr.astype(np.float32) / float(-info.min)


def load_audio(path: str | Path, sr: int | None = None, *, mono: bool = True,
               max_seconds: float = MAX_SECONDS_DEFAULT, window: tuple[float, float | None] | None = None,
               segment: tuple[float, float | None] | None = None) -> tuple[Tensor, int]:
    """Decode ``path``; return ``(wave, rate)`` with wave ``(T,)`` (mono) or ``(C, T)``.

    ``window=(seconds, pos)`` returns only a window of that length (the whole file when shorter):
    at ``pos`` in [0, 1) of the free span, or the centre when ``pos`` is None. Seekable formats
    (wav/flac/ogg/mp3) read only the window; others are decoded whole, then cut. With ``sr`` the
    window is cut at the file's rate, then resampled to exactly ``round(seconds * sr)`` samples.

    ``segment=(offset, duration | None)`` (seconds; a MuST-C style row) returns samples
    ``[int(offset * sr), + int(duration * sr))`` of the whole decoded file (the same values up to
    float rounding) but reads only that span plus the resampler's context: soundfile seeks,
    PyAV seeks when the container allows (else decodes from the start, keeping only the span).
    ``max_seconds`` then bounds the segment, not the file; ``window`` applies inside the segment.

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
    span = _Span(path, segment, sr, max_seconds) if segment is not None else None
    data = native_sr = None
    first_error = None
    check_finite = True
    if path.suffix.lower() == ".wav":             # 16-bit PCM: one pread of the window (avsuite.audio.wav)
        fast = _read_wav_fast(path, st.st_size, max_seconds, window, span)
        if fast is not None:
            (data, native_sr), check_finite = fast, False
    if data is None and path.suffix.lower() not in _RAW_FORMATS:
        try:
            data, native_sr, check_finite = _read_soundfile(path, max_seconds, window, span)
        except AudioDecodeError:
            raise
        except Exception as exc:  # libsndfile cannot read it: let ffmpeg try
            first_error = exc
    if data is None:
        try:
            data, native_sr = _read_pyav(path, max_seconds, span)
        except AudioDecodeError as exc:
            if first_error is not None and "not a readable media file" in exc.reason:
                raise AudioDecodeError(path, f"unsupported or corrupt audio ({first_error})") from None
            raise
    if data.shape[-1] == 0:
        raise AudioDecodeError(path, "zero-length audio (no samples)")
    if check_finite and not np.isfinite(data).all():   # integer PCM and codecs cannot hold NaN
        raise AudioDecodeError(path, "contains NaN or infinite samples")
    if check_finite and data.size and (peak := float(np.abs(data).max())) > MAX_FLOAT_PEAK:
        raise AudioDecodeError(path, f"implausible amplitude: sample peak {peak:.3g} (float audio is expected "
                                     f"within [-1, 1]; peaks above {MAX_FLOAT_PEAK:g} are refused)")
    if path.suffix.lower() in _RAW_FORMATS and _white_noise(data):
        raise AudioDecodeError(path, "not G.722 audio: a headerless format, and these bytes decode to full-scale "
                                     "white noise (random, encrypted or differently encoded data?)")
    wave = torch.from_numpy(np.ascontiguousarray(data))
    if wave.dim() == 1:
        wave = wave if mono else wave[None]
    elif mono:
        wave = wave.mean(dim=0)
    if span is not None:
        return _segment_tail(path, wave, native_sr, sr, span, window)
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


def _segment_tail(path: Path, wave: Tensor, native_sr: int, sr: int | None, span: _Span,
                  window: tuple[float, float | None] | None) -> tuple[Tensor, int]:
    """Resample the read span, keep the segment, then cut ``window`` inside it (at the output rate)."""
    rate = sr or native_sr
    if rate != native_sr:
        wave = resample(wave, native_sr, rate)
    wave = wave[..., span.keep[0]:span.keep[1]]
    if window is not None:
        n = math.ceil(window[0] * rate)
        start = _window(wave.shape[-1], n, window[1])
        wave = wave[..., start:start + n]
    if wave.shape[-1] == 0:
        raise AudioDecodeError(path, "zero-length audio (empty segment)")
    return wave.contiguous(), int(rate)


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
