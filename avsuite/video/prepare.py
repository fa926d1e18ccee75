"""A video (file or frames) -> aligned face crops per frame, and generated crops -> frames.

    prep = prepare_video("talk.mp4", size=64)               # or an (T, H, W, 3) uint8 array
    prep.crops[prep.has_face]                               # (F, 64, 64, 3) aligned faces
    prep.n_frames, prep.n_face_frames, prep.n_no_face       # counts (also prep.counts())
    idx = loop_to_length(n_output_frames(audio_seconds, prep.fps), prep.n_frames)
    frames = composite(prep, generated_crops, frame_indices=idx)    # one generated crop per idx

* Every frame is run through a detector (:mod:`avsuite.video.faces`, default BlazeFace +
  FaceMesh); the 3 alignment points are smoothed only across runs of detected frames
  (:func:`avsuite.video.align.smooth_points`), then each face frame is aligned
  (:func:`avsuite.video.align.align_face`).
* Frames without a face are kept and counted: their crop is all zeros, their affine NaN,
  and :func:`composite` returns them bit-exact.
* A video with no face in any frame raises :class:`NoFaceError` (a :class:`VideoDecodeError`
  and a ``ValueError``) naming the file and the frame count; an unreadable file raises the
  :class:`VideoDecodeError` of :mod:`avsuite.video.io`.
* Audio longer than the video: the frames are looped forward/backward (LatentSync's
  ``loop_video``: 0..n-1, n-1..0, 0..n-1, ...); shorter audio trims. Output frame count =
  round(audio_seconds * fps).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .align import align_face, lower_face_mask, paste_back, smooth_points
from .faces import Face, resolve_detector
from .io import MAX_FRAMES_DEFAULT, VideoDecodeError, read_video


class NoFaceError(VideoDecodeError, ValueError):
    """No frame of a video has a detectable face (nothing to lip-sync)."""

    def __init__(self, path: str | Path, n_frames: int, detector: str = ""):
        self.n_frames = int(n_frames)
        by = f" by the {detector!r} detector" if detector else ""
        super().__init__(path, f"no face detected{by} in any of its {n_frames} frames")


@dataclass(eq=False)
class PreparedVideo:
    """Per-frame face alignment of one video (see the module docstring)."""

    frames: np.ndarray          # (T, H, W, 3) uint8 RGB, the originals
    fps: float | None
    size: int
    crops: np.ndarray           # (T, size, size, 3) uint8, zeros where has_face is False
    affines: np.ndarray         # (T, 2, 3) float64 frame -> crop, NaN where has_face is False
    has_face: np.ndarray        # (T,) bool
    faces: list = field(default_factory=list)     # Face | None per frame (raw detections)
    path: str | None = None
    detector: str = ""

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def n_face_frames(self) -> int:
        return int(self.has_face.sum())

    @property
    def n_no_face(self) -> int:
        return self.n_frames - self.n_face_frames

    def counts(self) -> dict:
        return {"frames": self.n_frames, "face_frames": self.n_face_frames, "no_face_frames": self.n_no_face}


_OFF = nullcontext()


@contextmanager
def _timed(timings: dict, key: str, sync=None):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if sync is not None:
            sync()
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0


def timed(timings: dict | None, key: str, sync=None):
    """``with timed(timings, "detect"): ...`` adds the block's wall seconds to ``timings[key]``;
    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before the clock stops. A no-op context when
    ``timings`` is None (the default everywhere: no cost when nobody measures)."""
    return _OFF if timings is None else _timed(timings, key, sync)


def _frames_from(source, max_frames: int, limit: int | None = None):
    if isinstance(source, (str, Path)):
        frames, fps = read_video(source, max_frames=max_frames, limit=limit)
        return frames, fps, str(source)
    frames = np.asarray(source)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a (T, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise VideoDecodeError("<frames>", "no frames")
    return frames, None, None


def detector_name(det) -> str:
    return str(getattr(det, "name", type(det).__name__))


def prepare_video(source, size: int, *, detector=None, smooth: int = 5, fps: float | None = None,
                  max_frames: int = MAX_FRAMES_DEFAULT, limit: int | None = None,
                  timings: dict | None = None) -> PreparedVideo:
    """Detect, smooth and align every frame of ``source`` (a video path or (T, H, W, 3) uint8
    frames) at ``size`` x ``size``. ``detector``: None (default BlazeFace + FaceMesh), a name
    of :data:`avsuite.video.faces.DETECTORS`, or any callable frame -> Face | None.
    ``smooth``: window (frames) of the alignment-point moving average inside runs of detected
    frames (1 = off). ``fps`` overrides the file's rate (needed for frames given as an array
    if the caller wants :func:`n_output_frames`). ``limit``: decode only the first ``limit``
    frames of a file (all of a shorter one). ``timings``: a dict that accumulates the wall
    seconds of the ``read``, ``detect`` and ``align`` stages (see :func:`timed`)."""
    with timed(timings, "read"):
        frames, file_fps, path = _frames_from(source, max_frames, limit)
    det = resolve_detector(detector)
    many = getattr(det, "detect_many", None)
    with timed(timings, "detect"):
        faces = list(many(frames)) if many is not None else [det(f) for f in frames]
    if len(faces) != len(frames):
        raise RuntimeError(f"detector returned {len(faces)} results for {len(frames)} frames")
    for f in faces:
        if f is not None and not isinstance(f, Face):
            raise TypeError(f"a detector must return Face or None, got {type(f)}")
    has = np.array([f is not None for f in faces], bool)
    name = detector_name(det)
    if not has.any():
        raise NoFaceError(path or "<frames>", len(frames), name)
    t = len(frames)
    with timed(timings, "align"):
        pts = np.full((t, 3, 2), np.nan)
        for i, f in enumerate(faces):
            if f is not None:
                pts[i] = f.align_points
        pts = smooth_points(pts, has, smooth)
        crops = np.zeros((t, size, size, 3), np.uint8)
        affines = np.full((t, 2, 3), np.nan)
        for i in np.flatnonzero(has):
            crops[i], affines[i] = align_face(frames[i], pts[i], size)
    return PreparedVideo(frames=frames, fps=fps if fps is not None else file_fps, size=size, crops=crops,
                         affines=affines, has_face=has, faces=faces, path=path, detector=name)


def n_output_frames(audio_seconds: float, fps: float) -> int:
    """Frames a dubbed video has: round(audio_seconds * fps) (halves round up)."""
    if not (math.isfinite(audio_seconds) and audio_seconds >= 0 and math.isfinite(fps) and fps > 0):
        raise ValueError(f"need audio_seconds >= 0 and fps > 0, got {audio_seconds}, {fps}")
    return int(math.floor(audio_seconds * fps + 0.5))


def loop_to_length(n_frames_needed: int, n_frames: int) -> list[int]:
    """Source frame index for each of ``n_frames_needed`` output frames: the first frames when
    the video is long enough (trim), else LatentSync's ping-pong loop 0..n-1, n-1..0, 0..n-1, ...
    (the turning frames appear twice, as in LatentSync's ``loop_video``)."""
    if n_frames <= 0:
        raise ValueError(f"n_frames must be > 0, got {n_frames}")
    if n_frames_needed < 0:
        raise ValueError(f"n_frames_needed must be >= 0, got {n_frames_needed}")
    fwd = list(range(n_frames))
    out: list[int] = []
    k = 0
    while len(out) < n_frames_needed:
        out.extend(fwd if k % 2 == 0 else fwd[::-1])
        k += 1
    return out[:n_frames_needed]


def composite(prepared: PreparedVideo, generated_crops, *, frame_indices=None, region: str = "mouth") -> np.ndarray:
    """Paste generated crops back into their source frames -> (N, H, W, 3) uint8.

    ``generated_crops[i]`` (size, size, 3) uint8 belongs to source frame ``frame_indices[i]``
    (default 0..T-1, i.e. one crop per frame; pass :func:`loop_to_length`'s list for
    looped/trimmed output). Crops of frames without a face are ignored and those frames come
    back bit-exact. ``region``: "mouth" pastes only the regenerated part of
    :func:`~avsuite.video.align.lower_face_mask` (the rest of the face stays the original
    pixels), "crop" pastes the whole aligned crop (LatentSync's ``restore_img``)."""
    gen = np.asarray(generated_crops)
    idx = np.arange(prepared.n_frames) if frame_indices is None else np.asarray(frame_indices, np.int64)
    if gen.ndim != 4 or gen.shape[1:] != (prepared.size, prepared.size, 3) or gen.dtype != np.uint8:
        raise ValueError(f"generated_crops must be (N, {prepared.size}, {prepared.size}, 3) uint8, "
                         f"got {gen.dtype} {gen.shape}")
    if len(gen) != len(idx):
        raise ValueError(f"{len(gen)} generated crops for {len(idx)} frame indices")
    if len(idx) and (idx.min() < 0 or idx.max() >= prepared.n_frames):
        raise ValueError(f"frame indices must be in [0, {prepared.n_frames})")
    if region == "mouth":
        weights = 1.0 - lower_face_mask(prepared.size)
    elif region == "crop":
        weights = None
    else:
        raise ValueError(f"region must be 'mouth' or 'crop', got {region!r}")
    out = np.empty((len(idx),) + prepared.frames.shape[1:], np.uint8)
    for i, src in enumerate(idx):
        if prepared.has_face[src]:
            out[i] = paste_back(prepared.frames[src], gen[i], prepared.affines[src], region=weights)
        else:
            out[i] = prepared.frames[src]
    return out


__all__ = ["NoFaceError", "PreparedVideo", "prepare_video", "loop_to_length", "n_output_frames", "composite", "timed"]
