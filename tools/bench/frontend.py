"""Frontend throughput: avsuite AudioFrontend vs torchaudio MelSpectrogram vs librosa, same run.

(B=32, 10 s at 16 kHz), the Whisper/LatentSync setting (n_fft 400, hop 160, 80 slaney mels, power
mels in dB). Timings interleave the contenders round by round and report medians, so machine noise
hits all of them alike. Also on CUDA when a GPU is present. Ends with ONE JSON line.

    python tools/bench/frontend.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import librosa
import numpy as np
import torch
import torchaudio

from avsuite import AudioFrontend, FrontendConfig


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (< 1 minute)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    rounds = 5 if args.quick else 15
    sr, b = 16000, args.batch
    x = 0.1 * torch.randn(b, int(args.seconds * sr), generator=torch.Generator().manual_seed(0))
    cfg = FrontendConfig(sample_rate=sr, n_fft=400, hop_length=160, n_mels=80, mel_scale="slaney",
                         mel_norm="slaney", log="db")
    ours = AudioFrontend(cfg)
    ta = torch.nn.Sequential(
        torchaudio.transforms.MelSpectrogram(sr, n_fft=400, hop_length=160, n_mels=80, norm="slaney", mel_scale="slaney"),
        torchaudio.transforms.AmplitudeToDB("power", top_db=None))
    xn = x.numpy()

    def run_librosa():
        for row in xn[: max(1, b // 8)]:   # librosa is per clip; a slice keeps the run short, scaled below
            librosa.power_to_db(librosa.feature.melspectrogram(y=row, sr=sr, n_fft=400, hop_length=160, n_mels=80,
                                                               pad_mode="reflect"), ref=1.0, amin=1e-10)

    contenders = {"ours": lambda: ours(x), "torchaudio": lambda: ta(x), "librosa": run_librosa}
    scale = {"ours": b, "torchaudio": b, "librosa": max(1, b // 8)}
    with torch.inference_mode():
        for fn in contenders.values():
            fn()
        times = {k: [] for k in contenders}
        for _ in range(rounds):
            for k, fn in contenders.items():
                times[k].append(timed(fn))
        diff = float((ours(x) - ta(x)).abs().max())
    res = {f"{k}_clips_per_s": scale[k] / statistics.median(v) for k, v in times.items()}
    res["ratio_vs_torchaudio"] = res["ours_clips_per_s"] / res["torchaudio_clips_per_s"]
    res["ratio_vs_librosa"] = res["ours_clips_per_s"] / res["librosa_clips_per_s"]
    res["max_abs_diff_db_vs_torchaudio"] = diff
    res["threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        xc, oc, tc = x.cuda(), ours.cuda(), ta.cuda()
        with torch.inference_mode():
            g = {"ours": lambda: oc(xc), "torchaudio": lambda: tc(xc)}
            for fn in g.values():
                fn()
            torch.cuda.synchronize()
            gt = {k: [] for k in g}
            for _ in range(rounds * 4):
                for k, fn in g.items():
                    t = time.perf_counter(); fn(); torch.cuda.synchronize(); gt[k].append(time.perf_counter() - t)
        res["cuda_ours_clips_per_s"] = b / statistics.median(gt["ours"])
        res["cuda_torchaudio_clips_per_s"] = b / statistics.median(gt["torchaudio"])
        res["cuda_ratio_vs_torchaudio"] = res["cuda_ours_clips_per_s"] / res["cuda_torchaudio_clips_per_s"]
    print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in res.items()}))


if __name__ == "__main__":
    main()
