"""Lip-sync inference: a face video + an audio track -> an H.264 + AAC mp4 whose mouth follows the audio.

    avsuite lipsync --model runs/lipsync/model --video face.mp4 --audio speech.wav --out out.mp4
    pipe = LipSyncPipeline(load_model(model_dir, kind="lipsync"), detector="blazeface", steps=20)
    stats = pipe(video, audio, out)       # {"frames", "face_frames", "no_face_frames", "seconds", ...}

Steps (LatentSync's ``lipsync_pipeline.py``, with the user-requested fixes of LIPSYNC.md):

1. audio -> 16 kHz mono; output frames = round(audio_seconds x fps); the video is trimmed or
   looped forward/backward (:func:`avsuite.video.prepare.loop_to_length`);
2. every source frame is detected and aligned (:func:`avsuite.video.prepare.prepare_video`);
   frames without a face are copied to the output bit-exact; a video with no face at all is one
   clear error (:class:`~avsuite.video.prepare.NoFaceError`, exit 2 at the CLI);
3. the face frames are generated in chunks of ``batch_frames`` (default the model's ``n_frames``;
   the last chunk padded with its last frame): DDIM (``steps``) from one noise shared by all
   frames, classifier-free guidance ``eps_u + g (eps_c - eps_u)`` with uncond = zero audio
   tokens, reference = the input faces;
4. ``decoded * (1 - mask) + input * mask`` in the crop, pasted back through the soft lower-face
   mask (:func:`avsuite.video.prepare.composite`), muxed with the audio by
   :func:`avsuite.video.io.write_video`.

Only the frames the output needs are decoded (the first round(audio_seconds x fps) of a longer
video). Pass ``timings={}`` to :meth:`LipSyncPipeline.__call__` / ``frames`` / :func:`generate` to
get the wall seconds per stage (``read``, ``detect``, ``align``, ``audio``, ``vae_encode``,
``unet``, ``vae_decode``, ``paste``, ``mux``) added into it; nothing is timed by default.

``detector="box"`` treats each whole frame as the face (face-centred clips such as the synthetic
AV corpus, whose crops the tiny model is trained on).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from avsuite.data.lipsync import frame_mel_windows, to_signed
from avsuite.models.lipsync import LipSyncModel, make_scheduler
from avsuite.video.prepare import timed

SAMPLE_RATE = 16000


# ----------------------------------------------------------------------------- the sampler
def guided_eps(model: LipSyncModel, latents: Tensor, t: Tensor, cond: Tensor, tokens: Tensor,
               guidance: float) -> Tensor:
    """Classifier-free guidance: ``eps_u + g (eps_c - eps_u)`` with uncond = zero tokens (both
    branches in one batch); ``g == 1`` runs the conditional branch only."""
    if guidance == 1.0:
        return model.predict(latents, t, cond, tokens)
    both = model.predict(torch.cat([latents, latents]), t, torch.cat([cond, cond]),
                         torch.cat([torch.zeros_like(tokens), tokens]))
    eps_u, eps_c = both.chunk(2)
    return eps_u + guidance * (eps_c - eps_u)


@torch.no_grad()
def generate(model: LipSyncModel, frames: Tensor, ref: Tensor, mel: Tensor, *, steps: int = 20,
             guidance: float = 1.5, noise: Tensor | None = None, generator: torch.Generator | None = None,
             timings: dict | None = None) -> Tensor:
    """``frames``, ``ref (N, 3, H, W)`` in [-1, 1], ``mel (N, 80, S)`` -> ``(N, 3, H, W)`` in [-1, 1]:
    the decoded generation inside the mask, the input outside. ``noise (1 or N, 4, h, w)``:
    the initial latent (default one draw from ``generator`` shared by all frames). ``timings``:
    adds the ``vae_encode`` (+ audio tokens), ``unet`` (all DDIM steps) and ``vae_decode`` seconds."""
    sync = torch.cuda.synchronize if frames.is_cuda else None
    sched = make_scheduler(model.cfg)
    sched.set_timesteps(steps)
    with timed(timings, "vae_encode", sync):
        cond = model.condition(frames, ref)
        tokens = model.tokens(mel)
    h = model.cfg.latent_size
    if noise is None:
        noise = torch.randn((1, 4, h, h), generator=generator, device="cpu").to(frames.device, frames.dtype)
    with timed(timings, "unet", sync):
        latents = (noise * sched.init_noise_sigma).expand(len(frames), -1, -1, -1).contiguous()
        for t in sched.timesteps:
            eps = guided_eps(model, latents, t.to(frames.device), cond, tokens, guidance)
            latents = sched.step(eps, t, latents).prev_sample
    with timed(timings, "vae_decode", sync):
        decoded = model.decode(latents).clamp(-1, 1)
        return decoded * (1 - model.mask) + frames * model.mask


def to_uint8(x: Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` in [-1, 1] -> ``(N, H, W, 3)`` uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def chunks(n: int, size: int) -> list[list[int]]:
    """``0..n-1`` in chunks of ``size``; the last chunk padded with its last index."""
    out = [list(range(a, min(n, a + size))) for a in range(0, n, size)]
    if out and len(out[-1]) < size:
        out[-1] += [out[-1][-1]] * (size - len(out[-1]))
    return out


# ----------------------------------------------------------------------------- faces
def box_detector(frame: np.ndarray):
    """The whole frame as the face: the 3 alignment points placed so the aligned crop spans the
    frame's width, centred (for face-centred clips)."""
    from avsuite.video.align import crop_geometry
    from avsuite.video.faces import Face

    hgt, wid = frame.shape[:2]
    size = min(hgt, wid)
    w, h, tmpl = crop_geometry(size)
    s = wid / w
    pts = (np.asarray(tmpl, np.float64) - [w / 2, h / 2]) * s + [wid / 2, hgt / 2]
    return Face(box=np.array([0, 0, wid, hgt]), score=1.0, landmarks=pts, align_points=pts, source="box")


def resolve(detector: Any) -> Any:
    return box_detector if detector == "box" else detector


# ----------------------------------------------------------------------------- the pipeline
class LipSyncPipeline:
    """Video + audio -> lip-synced frames (see the module docstring)."""

    def __init__(self, model: LipSyncModel, *, detector: str | Callable | None = None, steps: int = 20,
                 guidance: float = 1.5, seed: int = 0, progress: bool = True, batch_frames: int | None = None):
        """``batch_frames``: face frames per generation batch (default the model's ``n_frames``;
        the output changes only by float rounding; speed and memory do)."""
        if steps < 1 or not guidance >= 1.0:
            raise ValueError(f"need steps >= 1 and guidance >= 1, got {steps}, {guidance}")
        if batch_frames is not None and batch_frames < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        self.model, self.detector = model.eval(), resolve(detector)
        self.steps, self.guidance, self.seed, self.progress = steps, guidance, seed, progress
        self.batch_frames = batch_frames or model.cfg.n_frames

    def frames(self, video: str | Path | np.ndarray, wave: Tensor, fps: float | None = None,
               timings: dict | None = None) -> tuple[np.ndarray, float, dict]:
        """-> ``(frames (round(seconds x fps), H, W, 3) uint8, fps, stats)``; ``timings``: see the
        module docstring."""
        from avsuite.audio.wav2lip_mel import wav2lip_mel
        from avsuite.video.io import video_fps
        from avsuite.video.prepare import composite, loop_to_length, n_output_frames, prepare_video

        cfg, dev = self.model.cfg, next(self.model.parameters()).device
        seconds = wave.numel() / SAMPLE_RATE
        if isinstance(video, (str, Path)) and fps is None:
            with timed(timings, "read"):
                fps = video_fps(video)
        fps = float(fps or 25.0)
        n_out = n_output_frames(seconds, fps)
        if n_out < 1:
            raise ValueError(f"the audio ({seconds:.3f} s) is shorter than one video frame at {fps:g} fps")
        if wave.numel() <= 400:
            raise ValueError(f"the audio ({wave.numel()} samples) is too short")
        # a file: decode only the first n_out frames (all of a shorter video, which is then looped)
        prep = prepare_video(video, cfg.face_size, detector=self.detector, fps=fps, limit=n_out, timings=timings)
        idx = np.asarray(loop_to_length(n_out, prep.n_frames))
        with timed(timings, "audio"):
            mel = frame_mel_windows(wav2lip_mel(wave), n_out, fps, cfg.mel_steps)           # (n_out, 80, S)
        face_pos = np.flatnonzero(prep.has_face[idx])
        crops = np.zeros((n_out, cfg.face_size, cfg.face_size, 3), np.uint8)
        gen = torch.Generator().manual_seed(self.seed)
        noise = torch.randn((1, 4, cfg.latent_size, cfg.latent_size), generator=gen)
        parts = chunks(len(face_pos), self.batch_frames)
        bar = _bar(len(parts), self.progress)
        for k, part in enumerate(parts):
            pos = face_pos[part]
            faces = to_signed(torch.from_numpy(prep.crops[idx[pos]])).to(dev)
            out = generate(self.model, faces, faces, mel[pos].to(dev), steps=self.steps, guidance=self.guidance,
                           noise=noise.to(dev), timings=timings)
            real = len(set(part))
            crops[pos[:real]] = to_uint8(out)[:real]
            bar(k + 1)
        with timed(timings, "paste"):
            frames = composite(prep, crops, frame_indices=idx)
        stats = {"frames": n_out, "face_frames": int(len(face_pos)), "no_face_frames": int(n_out - len(face_pos)),
                 "source_frames": prep.n_frames, "fps": fps, "seconds": seconds, "chunks": len(parts)}
        return frames, fps, stats

    def __call__(self, video: str | Path, audio: str | Path, out: str | Path,
                 timings: dict | None = None) -> dict[str, Any]:
        from avsuite.audio.io import load_audio
        from avsuite.video.io import VideoDecodeError, write_video

        t0 = time.perf_counter()
        with timed(timings, "audio"):
            wave, _ = load_audio(audio, SAMPLE_RATE)
        try:
            frames, fps, stats = self.frames(video, wave, timings=timings)
        except VideoDecodeError as exc:          # unreadable video / no face: a bad-input error (exit 2)
            raise ValueError(str(exc)) from None
        with timed(timings, "mux"):
            write_video(out, frames, fps, audio=wave.numpy(), sample_rate=SAMPLE_RATE)
        stats["wall_s"] = time.perf_counter() - t0
        stats["frames_per_s"] = stats["frames"] / max(stats["wall_s"], 1e-9)
        return stats


def _bar(total: int, enabled: bool) -> Callable[[int], None]:
    if not enabled or total == 0:
        return lambda k: None
    start = time.perf_counter()

    def show(k: int) -> None:
        done = int(30 * k / total)
        rate = k / max(time.perf_counter() - start, 1e-9)
        eta = (total - k) / rate if rate > 0 else math.inf
        print(f"\rlipsync [{'#' * done}{'.' * (30 - done)}] {k}/{total} chunks, eta {eta:.0f} s",
              end="\n" if k == total else "", file=sys.stderr, flush=True)
    return show


def video_model_config(model_dir: str | Path) -> dict[str, Any]:
    """The config of a lip-sync model dir that can dub whole videos. A model trained on the corpus'
    ``mouth`` boxes (``data.mouth_crop``, e.g. preset ``mouth32``) never saw face-aligned crops, which
    is what a video gives: it is refused with one clear error instead of producing garbage mouths."""
    from avsuite.checkpoint import read_model_config

    conf = read_model_config(model_dir)
    if conf.get("mouth_crop"):
        raise ValueError(f"{model_dir}: this model was trained on mouth crops taken from the corpus rows "
                         f"(data.mouth_crop); it is for `avsuite eval lipsync` only. Dubbing a video needs a "
                         f"model trained on aligned faces (e.g. configs/lipsync/tiny.yaml)")
    return conf


def run_lipsync(model: Path, video: Path, audio: Path, out: Path, *, detector: str | Callable | None = None,
                steps: int | None = None, guidance: float | None = None, seed: int = 0,
                device: str | None = None, progress: bool = True) -> int:
    """The ``avsuite lipsync`` command: load the model dir, run the pipeline, write ``out``."""
    from avsuite.models.registry import load_model

    from avsuite.video.io import ffmpeg_logs_without_the_gil

    ffmpeg_logs_without_the_gil()        # (each read does it too; here before the model loads lightning code)
    conf = video_model_config(model)
    infer = conf.get("inference", {}) if isinstance(conf.get("inference"), dict) else {}
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    net = load_model(model, dev, kind="lipsync")
    pipe = LipSyncPipeline(net, detector=detector if detector is not None else infer.get("detector"),
                           steps=steps or int(infer.get("steps", 20)),
                           guidance=guidance if guidance is not None else float(infer.get("guidance", 1.5)),
                           seed=seed, progress=progress)
    stats = pipe(video, audio, out)
    print(f"wrote {out}: {stats['frames']} frames ({stats['no_face_frames']} without a face, passed through), "
          f"{stats['seconds']:.2f} s, {stats['frames_per_s']:.2f} frames/s", flush=True)
    return 0


__all__ = ["LipSyncPipeline", "run_lipsync", "video_model_config", "generate", "guided_eps", "box_detector", "chunks", "to_uint8"]
