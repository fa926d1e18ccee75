"""Lip sync for interactive front ends (``avsuite demo lipsync``): limits checked before any work,
a callback per DDIM step, and LSE-D / LSE-C of the written result graded by an evaluator SyncNet.

    model = load_model("runs/lipsync/model", kind="lipsync")
    opts = lipsync_defaults("runs/lipsync/model")       # {"steps", "guidance", "detector", "detectors"}
    stats = lipsync_file(model, "face.mp4", "speech.wav", "out.mp4", steps=20, guidance=1.5, seed=0,
                         on_step=lambda done, total: ..., syncnet=load_model(DIR, kind="syncnet"))
    # {"frames", "face_frames", "no_face_frames", "seconds", "fps", "wall_s", ...,
    #  and with a SyncNet: "lse_d", "lse_c", "av_offset", "lse_frames"}

The generation is :class:`avsuite.inference.lipsync.LipSyncPipeline` (the ``avsuite lipsync`` path).
Every bad input is a ``ValueError`` whose text is meant for a person: an unreadable video or audio
file, no face in any frame, audio longer than ``max_audio_seconds``, a video longer than
``max_video_seconds`` or too large to decode in memory. Anything else is a fault of the model/runtime.

LSE: the written mp4 is decoded again, cropped with the source video's face alignment at the SyncNet's
crop size (aligned faces, as the lip-sync recipe grades its generations), and syncnet_python's
LSE-D / LSE-C are computed (:func:`avsuite.eval.lse.clip_lse`) over the longest run of frames with a face. The numbers come
from a self-trained SyncNet: comparable between runs graded by the same one, not with published values.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from avsuite.inference.lipsync import SAMPLE_RATE, LipSyncPipeline, resolve

MAX_AUDIO_SECONDS = 30.0
MAX_VIDEO_SECONDS = 60.0
#: the whole source video is decoded to RGB in memory: refuse more than this (bytes)
MAX_DECODED_BYTES = 2 * 1024 ** 3
DETECTOR_CHOICES = ("blazeface", "mtcnn", "haar", "box")

_RUN_LOCK = threading.Lock()          # one generation at a time per process (the step counter patches the model)


def lipsync_defaults(model_dir: str | Path) -> dict[str, Any]:
    """The model dir's inference settings (``inference:`` of its config.yaml, else LatentSync's
    20 steps / guidance 1.5 / BlazeFace) and the detector names a front end may offer."""
    from avsuite.inference.lipsync import video_model_config

    conf = video_model_config(model_dir)
    infer = conf.get("inference") if isinstance(conf.get("inference"), dict) else {}
    detector = infer.get("detector") or "blazeface"
    return {"steps": int(infer.get("steps") or 20), "guidance": float(infer.get("guidance") or 1.5),
            "detector": detector, "detectors": list(dict.fromkeys([*DETECTOR_CHOICES, detector]))}


@contextmanager
def counting_steps(model: torch.nn.Module, on_step: Callable[[], None]) -> Iterator[None]:
    """Call ``on_step()`` after every denoiser call of ``model`` (``LipSyncModel.predict``): one
    per DDIM step of each chunk (guidance runs both branches in one batch)."""
    real = model.predict

    def counted(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        on_step()
        return out

    model.predict = counted
    try:
        yield
    finally:
        del model.predict                     # the class's method again


def check_inputs(video: str | Path, audio: str | Path, *, max_audio_seconds: float = MAX_AUDIO_SECONDS,
                 max_video_seconds: float = MAX_VIDEO_SECONDS,
                 max_decoded_bytes: int = MAX_DECODED_BYTES) -> tuple[Any, float]:
    """-> ``(VideoInfo, audio_seconds)``; ValueError (a message for a person) when either file is
    unreadable or over a limit. Reads headers / demuxes only, plus the audio decode."""
    from avsuite.audio.io import AudioDecodeError, load_audio
    from avsuite.video.io import VideoDecodeError, probe_video

    try:
        info = probe_video(video)
    except VideoDecodeError as exc:
        raise ValueError(f"cannot read the video: {exc.reason}") from None
    if info.seconds > max_video_seconds:
        raise ValueError(f"the video is too long: {info.seconds:.1f} s (this demo takes at most "
                         f"{max_video_seconds:g} s; trim it)")
    decoded = info.n_frames * info.width * info.height * 3
    if decoded > max_decoded_bytes:
        raise ValueError(f"the video is too large to decode: {info.n_frames} frames of {info.width}x{info.height} "
                         f"= {decoded / 1024 ** 3:.1f} GB (at most {max_decoded_bytes / 1024 ** 3:.1f} GB; "
                         "trim or downscale it)")
    try:
        wave, _ = load_audio(audio, SAMPLE_RATE, max_seconds=max_audio_seconds)
    except AudioDecodeError as exc:
        reason = exc.reason
        if reason.startswith("too long"):
            raise ValueError(f"the audio is too long ({reason.removeprefix('too long: ')}); "
                             f"this demo takes at most {max_audio_seconds:g} s") from None
        raise ValueError(f"cannot read the audio: {reason}") from None
    return info, wave.numel() / SAMPLE_RATE


def longest_run(mask: np.ndarray) -> tuple[int, int]:
    """``[start, stop)`` of the longest run of True in a 1-D bool array (``(0, 0)`` if none)."""
    best, start = (0, 0), None
    for i, v in enumerate([*np.asarray(mask, bool).tolist(), False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            best = max(best, (start, i), key=lambda r: r[1] - r[0])
            start = None
    return best


class _Replay:
    """A "detector" that returns known faces for a whole clip (the source video's, for its dubbed copy)."""

    name = "source faces"

    def __init__(self, faces: list) -> None:
        self.faces = faces

    def detect_many(self, frames: np.ndarray) -> list:
        if len(frames) != len(self.faces):
            raise ValueError(f"{len(frames)} frames but {len(self.faces)} source faces")
        return list(self.faces)

    def __call__(self, frame: np.ndarray) -> Any:
        raise TypeError("the replay detector works on whole clips (detect_many) only")


@torch.no_grad()
def video_lse(syncnet: torch.nn.Module, video: str | Path, wave: torch.Tensor | np.ndarray, *,
              source: str | Path | None = None, detector: Any = None) -> dict[str, float]:
    """LSE of a (generated) video against ``wave`` (16 kHz), its faces aligned at the SyncNet's crop
    size and scored over the longest run of face frames. With ``source`` (the video it was dubbed
    from) the faces are the source's detections, looped as the pipeline loops them (a generated
    mouth never loses the face); else they are detected on ``video``. -> ``{"lse_d", "lse_c",
    "av_offset", "n_windows", "lse_frames"}``; ValueError when the run is shorter than a window."""
    from avsuite.data.av import crop_faces
    from avsuite.eval.lse import clip_lse
    from avsuite.video.io import read_video
    from avsuite.video.prepare import loop_to_length, prepare_video

    cfg = syncnet.cfg
    frames, fps = read_video(video)
    det = resolve(detector)
    if source is not None:
        src = prepare_video(source, cfg.face_size, detector=det)
        det = _Replay([src.faces[i] for i in loop_to_length(len(frames), src.n_frames)])
    prep = prepare_video(frames, cfg.face_size, detector=det, fps=fps)
    a, b = longest_run(prep.has_face)
    faces = prep.crops[a:b]
    if cfg.face_width != cfg.face_size:
        faces = crop_faces(faces, (0, 0, cfg.face_size, cfg.face_size), (cfg.face_size, cfg.face_width)).numpy()
    wave = torch.as_tensor(np.asarray(wave, np.float32))
    seg = wave[int(round(a / fps * SAMPLE_RATE)):int(round(b / fps * SAMPLE_RATE))]
    m = clip_lse(syncnet, faces, seg, fps)
    return {k: float(m[k]) for k in ("lse_d", "lse_c", "av_offset", "n_windows")} | {"lse_frames": float(b - a)}


def lipsync_file(model: torch.nn.Module, video: str | Path, audio: str | Path, out: str | Path, *,
                 steps: int = 20, guidance: float = 1.5, seed: int = 0, detector: Any = None,
                 syncnet: torch.nn.Module | None = None, on_step: Callable[[int, int], None] | None = None,
                 max_audio_seconds: float = MAX_AUDIO_SECONDS, max_video_seconds: float = MAX_VIDEO_SECONDS,
                 max_decoded_bytes: int = MAX_DECODED_BYTES) -> dict[str, Any]:
    """Check the inputs, lip-sync ``video`` to ``audio`` into ``out`` (H.264 + AAC mp4), and grade it
    with ``syncnet`` when given. ``on_step(done, total)``: after every DDIM step; ``total`` =
    steps x chunks if every output frame has a face (an upper bound otherwise). -> the pipeline's
    stats (+ LSE; ``lse_error`` says why LSE is missing when the result has too few face frames)."""
    if not (isinstance(steps, int) and 1 <= steps <= 1000):
        raise ValueError(f"DDIM steps must be an integer in 1..1000, got {steps!r}")
    if not (math.isfinite(guidance) and guidance >= 1.0):
        raise ValueError(f"guidance must be >= 1, got {guidance!r}")
    if detector is not None and isinstance(detector, str) and detector not in DETECTOR_CHOICES:
        raise ValueError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTOR_CHOICES)}")
    info, seconds = check_inputs(video, audio, max_audio_seconds=max_audio_seconds,
                                 max_video_seconds=max_video_seconds, max_decoded_bytes=max_decoded_bytes)
    n_out = max(1, int(math.floor(seconds * info.fps + 0.5)))
    total = steps * math.ceil(n_out / model.cfg.n_frames)
    done = [0]

    def step() -> None:
        done[0] += 1
        if on_step is not None:
            on_step(min(done[0], total), total)

    pipe = LipSyncPipeline(model, detector=detector, steps=steps, guidance=float(guidance), seed=int(seed),
                           progress=False)
    with _RUN_LOCK, counting_steps(model, step):
        stats = pipe(video, audio, out)
    stats["ddim_steps"] = done[0]
    if syncnet is not None:
        from avsuite.audio.io import load_audio

        wave, _ = load_audio(audio, SAMPLE_RATE)
        try:
            stats.update(video_lse(syncnet, out, wave, source=video, detector=detector))
        except ValueError as exc:
            stats["lse_error"] = str(exc)
    return stats


__all__ = ["lipsync_file", "lipsync_defaults", "check_inputs", "video_lse", "counting_steps", "longest_run",
           "MAX_AUDIO_SECONDS", "MAX_VIDEO_SECONDS", "DETECTOR_CHOICES"]
