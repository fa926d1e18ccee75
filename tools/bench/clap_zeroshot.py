"""Batched zero-shot inference throughput (clips/s) of the tiny CLAP on this CPU.

    python tools/bench/clap_zeroshot.py [--quick]

Writes N synthetic 5 s wav files to a temp dir, saves a tiny CLAP model dir, and times
``classify_files`` end to end (decode + resample + frontend + audio tower + scoring against 10
labels) at batch 1 and batch 16; ends with ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from avsuite.checkpoint import save_model_dir
from avsuite.inference.zeroshot import classify_files
from avsuite.models.clap import ClapModel, ClapModelConfig, tiny_frontend
from avsuite.models.registry import load_model

LABELS = ["dog", "rain", "trumpet", "piano", "car engine", "laser", "door", "bell", "applause", "bird"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    n = 32 if a.quick else 128
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        files = []
        for i in range(n):
            files.append(tmp / f"clip{i}.wav")
            sf.write(files[-1], (rng.normal(size=5 * 44100) * 0.1).astype(np.float32), 44100)
        torch.manual_seed(0)
        m = ClapModel(ClapModelConfig(audio="cnn14_tiny", text="minilm", freeze_text=True, embed_dim=384,
                                      text_projection="identity", max_seconds=3.0), tiny_frontend())
        save_model_dir(tmp / "model", m.state_dict(), m.export_config())
        model = load_model(tmp / "model")
        classify_files(model, LABELS, files[:4])                      # warm-up (text cache, allocs)
        res = {}
        for bs in (1, 16):
            t0 = time.perf_counter()
            out = classify_files(model, LABELS, files, batch_size=bs)
            res[f"clips_per_s_batch{bs}"] = n / (time.perf_counter() - t0)
            assert all("labels" in r for r in out)
        res["speedup_batched"] = res["clips_per_s_batch16"] / res["clips_per_s_batch1"]
        res.update({"clips": n, "clip_seconds": 5.0, "threads": a.threads})
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))


if __name__ == "__main__":
    main()
