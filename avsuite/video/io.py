"""Video files <-> uint8 RGB frame arrays, with PyAV (ffmpeg libraries in the wheel; no system ffmpeg).

    video_fps("face.mp4")                             # header only
    info = probe_video("face.mp4")                    # VideoInfo(fps, n_frames, width, height, seconds, has_audio)
    frames, fps = read_video("face.mp4")              # (T, H, W, 3) uint8 RGB
    frames, fps = read_video("face.mp4", start=25, count=5)   # frames 25..29 only
    write_video("out.mp4", frames, fps, audio=wave, sample_rate=16000)   # H.264 yuv420p + AAC

Every failure to read is one :class:`VideoDecodeError` naming the file and the reason (a missing,
empty or non-video file, no video stream, zero frames, a frame window past the end), so callers
can report it or skip-and-count, never a PyAV traceback.
"""

from __future__ import annotations

import math
import os
import stat
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

#: Longest video read unless the caller says otherwise (frames): 10 min at 25 fps, 1080p would be
#: ~93 GB of RGB, so the default bounds memory for what a user hands the lip-sync pipeline.
MAX_FRAMES_DEFAULT = 25 * 600


class VideoDecodeError(RuntimeError):
    """A file could not be read as video; ``path`` and ``reason`` say why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True, kw_only=True)
class VideoInfo:
    fps: float
    n_frames: int
    width: int
    height: int
    seconds: float
    has_audio: bool


def _check_file(path: Path) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise VideoDecodeError(path, "no such file") from None
    except OSError as exc:
        raise VideoDecodeError(path, f"cannot open ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoDecodeError(path, "is a directory, not a video file")
    if not stat.S_ISREG(st.st_mode):
        raise VideoDecodeError(path, "not a regular file (a pipe, device or socket)")
    if st.st_size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


_LOG_LOCK = threading.Lock()
_LOG_FIXED: list[bool] = []


def ffmpeg_logs_without_the_gil() -> None:
    """Use FFmpeg's own log callback (errors only) instead of PyAV's Python bridge.

    Importing lightning turns the bridge on; it takes the GIL from FFmpeg's decoder threads, and a
    thread that frees a frame-threaded H.264 context (``avcodec_free_context``, GIL held) waits for
    those threads while one waits for the GIL: a deadlock (seen with gdb in loader threads; PyAV
    issues #751, #909). Called by every read here, so no caller has to remember it; checked on every
    call (one attribute read), so a bridge turned on again by a later import is turned off again."""
    import av.logging

    if _LOG_FIXED and av.logging.get_level() is None:
        return
    with _LOG_LOCK:
        av.logging.set_level(None)
        av.logging.restore_default_callback()
        av.logging.set_libav_level(av.logging.ERROR)
        _LOG_FIXED[:] = [True]


def _open(path: Path):
    import av

    ffmpeg_logs_without_the_gil()
    _check_file(path)
    try:
        container = av.open(str(path), mode="r")
    except Exception as exc:  # av.error.* for garbage, unsupported containers, permissions
        raise VideoDecodeError(path, f"not a readable video file ({exc.__class__.__name__}: {exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "no video stream (an audio-only or data file?)")
    return container


def _fps(stream) -> float:
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    return float(rate) if rate else 25.0


def video_fps(path: str | Path) -> float:
    """The frame rate from the header (no decoding, no demuxing)."""
    container = _open(Path(path))
    try:
        return _fps(container.streams.video[0])
    finally:
        container.close()


def probe_video(path: str | Path) -> VideoInfo:
    """Header facts without decoding (``n_frames`` is counted by demuxing when the header has none)."""
    path = Path(path)
    container = _open(path)
    try:
        vs = container.streams.video[0]
        fps = _fps(vs)
        n = int(vs.frames or 0)
        if n <= 0:
            n = sum(1 for p in container.demux(vs) if p.size)
        return VideoInfo(fps=fps, n_frames=n, width=int(vs.codec_context.width), height=int(vs.codec_context.height),
                         seconds=n / fps, has_audio=bool(container.streams.audio))
    finally:
        container.close()


def read_video(path: str | Path, *, start: int = 0, count: int | None = None, limit: int | None = None,
               max_frames: int = MAX_FRAMES_DEFAULT) -> tuple[np.ndarray, float]:
    """-> ``(frames (T, H, W, 3) uint8 RGB, fps)``; ``start``/``count`` select frames by index
    (decoding stops after the window; a video that ends first is an error). ``limit``: decode at
    most this many frames from ``start`` (a shorter video is fine: its frames are returned).
    More than ``max_frames`` decoded frames is an error."""
    path = Path(path)
    if start < 0 or (count is not None and count <= 0) or (limit is not None and limit <= 0):
        raise ValueError(f"frame window start={start} count={count} limit={limit}: start >= 0, count and limit > 0")
    if count is not None and limit is not None:
        raise ValueError("give count (exactly that many frames) or limit (at most that many), not both")
    container = _open(path)
    frames: list[np.ndarray] = []
    try:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        fps = _fps(vs)
        window = count if limit is None else limit
        stop = None if window is None else start + window
        try:
            for i, frame in enumerate(container.decode(vs)):
                if stop is not None and i >= stop:
                    break
                if i >= start:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if len(frames) > max_frames:
                        raise VideoDecodeError(path, f"too long: more than {max_frames} frames (limit)")
        except VideoDecodeError:
            raise
        except Exception as exc:  # corrupt stream mid-file
            if not frames:
                raise VideoDecodeError(path, f"corrupt video stream ({exc.__class__.__name__}: {exc})") from None
    finally:
        container.close()
    if not frames:
        what = "no frames" if start == 0 else f"no frames at index >= {start}"
        raise VideoDecodeError(path, what)
    if count is not None and len(frames) < count:
        raise VideoDecodeError(path, f"frames {start}..{start + count - 1} asked, the video ends at {start + len(frames) - 1}")
    return np.stack(frames), fps


def _even(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs even width and height: pad the last row/column by edge replication."""
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frames


def write_video(path: str | Path, frames: np.ndarray, fps: float, *, audio: np.ndarray | None = None,
                sample_rate: int | None = None, crf: int = 18) -> Path:
    """Write ``(T, H, W, 3)`` uint8 RGB frames as H.264 (yuv420p, ``crf``) in an mp4/mkv/mov, with an
    AAC track from ``audio`` (``(S,)`` float in [-1, 1], mono; ``(C, S)``/``(S, C)`` is down-mixed)
    when given. Odd sizes are padded by one edge row/column. Written to a temporary name and
    renamed, so a crash leaves no half file."""
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive finite number, got {fps}")
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 2 and min(audio.shape) <= 8:   # (C, S) or (S, C): down-mix to mono
            audio = audio.mean(axis=int(np.argmin(audio.shape)))
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"audio must be a non-empty (S,) mono (or (C, S) / (S, C)) array, got {audio.shape}")
        if not sample_rate or sample_rate <= 0:
            raise ValueError("audio needs a positive sample_rate")
        if not np.isfinite(audio).all():
            raise ValueError("audio contains NaN or infinite samples")
    frames = _even(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    rate = Fraction(fps).limit_denominator(1001)
    try:
        with av.open(str(tmp), mode="w") as out:
            vs = out.add_stream("libx264", rate=rate)
            vs.width, vs.height = frames.shape[2], frames.shape[1]
            vs.pix_fmt = "yuv420p"
            vs.options = {"crf": str(crf)}
            as_ = None
            if audio is not None:
                as_ = out.add_stream("aac", rate=int(sample_rate))
                as_.layout = "mono"
            for f in frames:
                for packet in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
            if as_ is not None:
                samples = np.clip(audio, -1.0, 1.0)[None, :]
                aframe = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
                aframe.sample_rate = int(sample_rate)
                # pts 0: the AAC encoder's priming (1024 samples) gets negative timestamps and the
                # mp4 an edit list that skips it; without a pts the priming plays as audio and the
                # speech lags the video by 1024 samples (64 ms at 16 kHz, 1.6 frames at 25 fps)
                aframe.pts, aframe.time_base = 0, Fraction(1, int(sample_rate))
                for packet in as_.encode(aframe):
                    out.mux(packet)
                for packet in as_.encode():
                    out.mux(packet)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_audio_track(path: str | Path, sr: int) -> np.ndarray:
    """The audio track of a video as float32 mono at ``sr`` (via :func:`avsuite.audio.io.load_audio`)."""
    from avsuite.audio.io import load_audio

    wave, _ = load_audio(path, sr)
    return wave.numpy()
