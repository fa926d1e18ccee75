"""A tiny synthetic talking-"face" AV corpus for SyncNet tests (rendered in seconds, no downloads).

Each clip: 16 kHz audio = a harmonic tone (random pitch) under a syllable envelope (random syllable
lengths 0.08-0.32 s, random loudness, random pauses); 25 fps 64x64 video = a skin-coloured face
with eyes and a dark "mouth" rectangle whose opening follows the audio envelope at that frame.
Written as an mp4 (H.264 + AAC, :func:`avsuite.video.io.write_video`) plus a 16 kHz wav; the
manifest has the AV corpus fields ``{"id", "audio", "video", "duration", "sr", "fps", "n_frames", "split"}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SR, FPS, SIZE = 16000, 25, 64


def envelope(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Per-sample syllable envelope in [0, 1]."""
    n = int(seconds * SR)
    env = np.zeros(n, np.float32)
    t = int(rng.uniform(0.0, 0.15) * SR)
    while t < n:
        length = int(rng.uniform(0.08, 0.32) * SR)
        amp = rng.uniform(0.4, 1.0)
        seg = np.sin(np.linspace(0, np.pi, length)) ** 0.7 * amp
        env[t:t + length] = seg[: n - t]
        t += length + int(rng.choice([0.0, rng.uniform(0.05, 0.3)]) * SR)
    return env


def render_clip(seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """-> (frames (T, 64, 64, 3) uint8, wave (S,) float32)."""
    env = envelope(seconds, rng)
    t = np.arange(len(env)) / SR
    f0 = rng.uniform(100, 260)
    tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 8))
    wave = (0.25 * env * tone + 0.003 * rng.standard_normal(len(env))).astype(np.float32)
    n_frames = int(seconds * FPS)
    skin = rng.uniform([150, 100, 80], [240, 190, 160])
    frames = np.empty((n_frames, SIZE, SIZE, 3), np.uint8)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    face = ((xx - 32) / 26.0) ** 2 + ((yy - 32) / 30.0) ** 2 <= 1
    bg = rng.uniform(20, 120, 3)
    for i in range(n_frames):
        a = float(env[int((i + 0.5) / FPS * SR) - 1 - 200: int((i + 0.5) / FPS * SR) + 200].mean())
        img = np.where(face[..., None], skin, bg)
        img[20:25, 18:26] = img[20:25, 38:46] = (30, 30, 30)              # eyes
        h = 1 + int(round(14 * a))                                       # mouth opening: 1..15 px
        img[46 - h // 2: 46 - h // 2 + h, 20:44] = (60, 15, 20)
        frames[i] = img.astype(np.uint8)
    return frames, wave


def make_av_corpus(out: Path, n_clips: int = 12, *, seconds: float = 2.4, seed: int = 0,
                   n_valid: int = 3) -> Path:
    """Render ``n_clips`` clips under ``out``; the last ``n_valid`` get ``split: valid``. -> manifest path."""
    import soundfile as sf

    from avsuite.video.io import write_video

    out = Path(out)
    (out / "video").mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_clips):
        frames, wave = render_clip(seconds, rng)
        vid, aud = out / "video" / f"c{k:03d}.mp4", out / "audio" / f"c{k:03d}.wav"
        write_video(vid, frames, FPS, audio=wave, sample_rate=SR)
        sf.write(aud, wave, SR)
        rows.append({"id": f"c{k:03d}", "audio": f"audio/{aud.name}", "video": f"video/{vid.name}",
                     "duration": len(wave) / SR, "sr": SR, "fps": FPS, "n_frames": len(frames),
                     "split": "valid" if k >= n_clips - n_valid else "train", "mouth": [32.0, 46.0, 12.0]})
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest
