"""Loader throughput: avsuite's fairseq2 pipeline vs a plain torch DataLoader + soundfile.

Same manifest of real clips (Debian tuxpaint-stamps-default .ogg, decoded, resampled to 16 kHz,
cropped to 5 s, padded into batches of 16), same worker count, same run, interleaved passes.
Reports decoded+collated clips/s and the ratio. Ends with ONE JSON line.

    python tools/bench/loader.py [--quick] [--workers 2]
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import time

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

from avsuite.audio.resample import resample
from avsuite.data.batches import collate_audio_text, pad_right
from avsuite.data.pipeline import DataConfig, build_pipeline

SR, CROP = 16000, 5.0


class PlainDataset(Dataset):
    """What a user writes by hand: soundfile read, downmix, resample, centre crop."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        data, sr = sf.read(self.rows[i]["audio"], dtype="float32", always_2d=True)
        wave = resample(torch.from_numpy(data.mean(1)), sr, SR)
        n = int(CROP * SR)
        if wave.shape[0] > n:
            start = (wave.shape[0] - n) // 2
            wave = wave[start:start + n]
        return wave


def plain_collate(waves):
    return pad_right(waves)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    files = sorted(glob.glob("/usr/share/tuxpaint/stamps/**/*.ogg", recursive=True))
    if not files:
        raise SystemExit("needs Debian tuxpaint-stamps-default (run tools/setup.sh)")
    files = files[: 96 if args.quick else 480]
    rows = [{"id": f"c{i}", "audio": f, "captions": ["x"]} for i, f in enumerate(files)]
    rounds = 2 if args.quick else 5
    cfg = DataConfig(sample_rate=SR, max_seconds=CROP, batch_size=16, num_parallel_calls=args.workers,
                     shuffle_window=0, prefetch=2)
    torch.set_num_threads(1)  # decoding is the work; keep both sides single-threaded per worker

    def ours():
        p = build_pipeline(rows, cfg, collate=collate_audio_text, train=False)
        return sum(len(b) for b in p)

    def plain():
        dl = DataLoader(PlainDataset(rows), batch_size=16, num_workers=args.workers, collate_fn=plain_collate)
        return sum(int(b[0].shape[0]) for b in dl)

    assert ours() == plain() == len(rows)
    times = {"ours": [], "dataloader": []}
    for _ in range(rounds):
        for name, fn in (("ours", ours), ("dataloader", plain)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    res = {f"{k}_clips_per_s": len(rows) / statistics.median(v) for k, v in times.items()}
    res["ratio_vs_dataloader"] = res["ours_clips_per_s"] / res["dataloader_clips_per_s"]
    res["clips"] = len(rows)
    res["workers"] = args.workers
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}))


if __name__ == "__main__":
    main()
