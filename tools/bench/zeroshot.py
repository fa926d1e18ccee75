"""Zero-shot inference: ``classify_files`` / streamed ``classify_long`` vs a naive user script.

    python tools/bench/zeroshot.py [--quick] [--threads N] [--rounds R] [--clips N]

Model: the quickstart architecture (tiny CNN14 + frozen MiniLM, 3 s window) with random audio
weights saved by ``save_model_dir`` and loaded back with ``load_model`` (speed does not depend on
training). Clips: N synthetic 5 s wav files at 44.1 kHz; 10 labels, 5 prompt templates.

- ``ours_b1`` / ``ours_b32``: ``classify_files(model, labels, files, batch_size=1 | 32)`` end to
  end (decode + resample + frontend + audio tower + scoring; text embeddings once per call).
- ``naive``: what a user script does per file: ``load_audio`` -> ``model.encode_audio`` of that one
  file -> the label prompts' text embeddings recomputed -> softmax.
- long file (10 min, 44.1 kHz wav): time to first result and total of ``classify_long`` (windows
  read one at a time with ``load_audio(segment=...)``, embedded, mean-fused; the first window
  alone) vs decoding the whole file first (``load_audio`` of all of it, resampled) and then the
  same windowing. Both give the same fused embedding.
Sides run interleaved per round (ours, naive, ours, ...); medians. Ends with ONE JSON line.
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

from avsuite.audio.io import load_audio
from avsuite.checkpoint import save_model_dir
from avsuite.eval.zeroshot import DEFAULT_TEMPLATES, class_embeddings, embed_waves
from avsuite.inference.zeroshot import classify_files, classify_long
from avsuite.models.clap import ClapModel, ClapModelConfig
from avsuite.models.registry import load_model

LABELS = ["dog", "rain", "trumpet", "piano", "car engine", "laser", "door", "bell", "applause", "bird"]
FILE_SR, CLIP_S = 44100, 5.0


def make_model(tmp: Path):
    from avsuite.recipes.clap import quickstart_config

    cfg = quickstart_config(tmp / "unused.jsonl")
    torch.manual_seed(0)
    m = ClapModel(cfg.model, cfg.frontend)
    save_model_dir(tmp / "model", m.state_dict(), m.export_config())
    return load_model(tmp / "model")


def synth(path: Path, seconds: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FILE_SR)) / FILE_SR
    wave = 0.1 * rng.normal(size=t.size) + 0.2 * np.sin(2 * np.pi * (200 + 50 * seed % 800) * t)
    sf.write(path, wave.astype(np.float32), FILE_SR)
    return path


@torch.no_grad()
def naive(model, files) -> list[list[str]]:
    """One file at a time, text embeddings recomputed for every file (as a user script would)."""
    out = []
    for f in files:
        wave, _ = load_audio(f, model.sample_rate)
        audio = model.encode_audio(wave[None])
        text = class_embeddings(model, LABELS, DEFAULT_TEMPLATES)
        probs = torch.softmax(model.logit_scale.exp() * audio @ text.T, dim=-1)[0]
        out.append([LABELS[i] for i in probs.argsort(descending=True).tolist()])
    return out


@torch.no_grad()
def whole_file_first(model, path: Path, window_s: float) -> tuple[float, float, torch.Tensor]:
    """Decode all of ``path``, then the same windows / batches / fusion as classify_long.
    -> (seconds to the first result, seconds in total, fused embedding)."""
    t0 = time.perf_counter()
    text = class_embeddings(model, LABELS, DEFAULT_TEMPLATES)
    wave, _ = load_audio(path, model.sample_rate, max_seconds=1e9)
    n = int(window_s * model.sample_rate)
    wins = list(wave.split(n))
    acc = embed_waves(model, wins[:1], 1).sum(0)
    torch.softmax(model.logit_scale.exp() * acc @ text.T, -1)
    first = time.perf_counter() - t0
    for s in range(1, len(wins), 8):
        acc = acc + embed_waves(model, wins[s:s + 8], 8).sum(0)
    return first, time.perf_counter() - t0, torch.nn.functional.normalize(acc, dim=-1)


def streamed(model, path: Path) -> tuple[float, float, dict]:
    t0 = time.perf_counter()
    first, last = None, None
    for res in classify_long(model, LABELS, path):
        first = first if first is not None else time.perf_counter() - t0
        last = res
    return first, time.perf_counter() - t0, last


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--clips", type=int, default=None)
    ap.add_argument("--long-minutes", type=float, default=None, help="default 10 (--quick: 1)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rounds, n = a.rounds or (1 if a.quick else 3), a.clips or (8 if a.quick else 96)
    a.long_minutes = a.long_minutes or (1.0 if a.quick else 10.0)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_model(tmp)
        files = [synth(tmp / f"clip{i}.wav", CLIP_S, i) for i in range(n)]
        long = synth(tmp / "long.wav", a.long_minutes * 60, 0)
        classify_files(model, LABELS, files[:2])                    # warm-up
        naive(model, files[:2])
        t = {"b1": [], "b32": [], "naive": [], "first_stream": [], "total_stream": [], "first_whole": [],
             "total_whole": []}
        agree = 0.0
        for _ in range(rounds):
            for key, fn in (("b1", lambda: classify_files(model, LABELS, files, batch_size=1)),
                            ("naive", lambda: naive(model, files)),
                            ("b32", lambda: classify_files(model, LABELS, files, batch_size=32))):
                t0 = time.perf_counter()
                out = fn()
                t[key].append(time.perf_counter() - t0)
                if key == "b32":
                    top = [r["labels"][0] for r in out]
                elif key == "naive":
                    ntop = [r[0] for r in out]
            agree = sum(x == y for x, y in zip(top, ntop)) / n
            f, tot, res = streamed(model, long)
            t["first_stream"].append(f), t["total_stream"].append(tot)
            f, tot, emb = whole_file_first(model, long, model.cfg.max_seconds)
            t["first_whole"].append(f), t["total_whole"].append(tot)
            with torch.no_grad():
                text = class_embeddings(model, LABELS, DEFAULT_TEMPLATES)
            same = LABELS[int((emb @ text.T).argmax())] == res["labels"][0]
        m = {k: statistics.median(v) for k, v in t.items()}
    res_out = {"ours_b1_clips_per_s": n / m["b1"], "ours_b32_clips_per_s": n / m["b32"],
               "naive_clips_per_s": n / m["naive"], "ratio_b1_vs_naive": m["naive"] / m["b1"],
               "ratio_b32_vs_naive": m["naive"] / m["b32"], "top1_agreement_vs_naive": agree,
               "long_minutes": a.long_minutes, "stream_first_result_s": m["first_stream"],
               "stream_total_s": m["total_stream"], "whole_first_result_s": m["first_whole"],
               "whole_total_s": m["total_whole"], "ratio_first_result": m["first_whole"] / m["first_stream"],
               "stream_windows": res.get("windows", 0),
               "long_top1_same": same, "clips": n, "clip_seconds": CLIP_S, "rounds": rounds,
               "threads": a.threads, "load_avg": round((load0 + os.getloadavg()[0]) / 2, 2)}
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in res_out.items()}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
