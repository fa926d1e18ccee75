"""Loader benchmark: avsuite's stateful Reader vs a torch DataLoader + soundfile, and streaming RSS.

Throughput (decoded + cropped + resampled + collated clips/s, the same run, interleaved rounds,
medians): the real ``sounds`` corpus (``avsuite data build sounds``; 816 clips, 32 kHz wav) and
480 Debian tuxpaint .ogg originals (44.1 kHz, mostly stereo), random 3 s crops (as the clap
quickstart) resampled to 16 kHz, shuffled batches of 32, the same number of workers on both
sides (our ``num_parallel_calls`` threads vs the DataLoader's worker processes). The peer is what
a user writes: a Dataset that ``soundfile.read``s the file, downmixes, crops a random window at
the file's rate, ``torchaudio.functional.resample``s it and a collate that pads.
``ours_cached_*`` is the Reader with ``cache_dir`` set, measured after a first (warming) epoch:
later epochs read memory-mapped decoded audio.

Streaming: peak RSS (``ru_maxrss``) of a fresh process that opens a manifest with the corpus rows
repeated 1x, 10x, 100x (unique ids, same files) and reads 50 shuffled batches, next to the old
approach's cost (``read_manifest`` of the 100x file: a list of dicts).

Wall-clock figures depend on what else runs on the machine (``load_avg_*`` in the line); the
``*_cpu_ms_per_clip`` figures (CPU time of the process and its DataLoader workers) depend less.
Ends with ONE JSON line of named figures.

    python tools/bench/loader.py [--quick] [--workers 2] [--manifest data/sounds/manifest.jsonl]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

SR, CROP, BATCH = 16000, 3.0, 32
OGG_GLOB = "/usr/share/tuxpaint/stamps/**/*.ogg"


# ---------------------------------------------------------------------------------------- the peer
class PlainDataset(Dataset):
    """What a user writes by hand: soundfile read, downmix, random crop at the file's rate, resample."""

    def __init__(self, paths: list[str], seed: int = 0):
        self.paths, self.seed, self.epoch = paths, seed, 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        import torchaudio.functional as AF

        data, sr = sf.read(self.paths[i], dtype="float32", always_2d=True)
        wave = torch.from_numpy(data.mean(1) if data.shape[1] > 1 else data[:, 0])
        n = int(np.ceil(CROP * sr))
        if wave.shape[0] > n:
            start = int(np.random.default_rng((self.seed, self.epoch, i)).integers(0, wave.shape[0] - n + 1))
            wave = wave[start:start + n]
        if sr != SR:
            wave = AF.resample(wave, sr, SR)
        return wave


def plain_collate(waves: list[torch.Tensor]):
    from avsuite.data.batches import pad_right

    return pad_right(waves)


def plain_loader(paths: list[str], workers: int) -> DataLoader:
    return DataLoader(PlainDataset(paths), batch_size=BATCH, shuffle=True, num_workers=workers,
                      collate_fn=plain_collate, prefetch_factor=2, persistent_workers=True,
                      generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------------- ours
def reader(manifest: str, workers: int, cache_dir: str | None = None):
    from avsuite.data.batches import collate_audio_text
    from avsuite.data.pipeline import DataConfig, Reader

    cfg = DataConfig(manifest=manifest, sample_rate=SR, batch_size=BATCH, crop_seconds=CROP, shuffle=True,
                     num_parallel_calls=workers, prefetch=2, cache_dir=cache_dir)
    return Reader(manifest, cfg, train=True, collate=collate_audio_text)


def count(loader) -> int:
    n = 0
    for b in loader:
        n += int(b[0].shape[0]) if isinstance(b, tuple) else len(b)
    return n


# ---------------------------------------------------------------------------------------- manifests
def sounds_manifest(path: str) -> str:
    if not Path(path).is_file():
        print(f"building the sounds corpus -> {Path(path).parent} (~1 min)", file=sys.stderr)
        exe = Path(sys.executable).with_name("avsuite")
        subprocess.run([str(exe), "data", "build", "sounds", "--out", str(Path(path).parent)], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def write_manifest(rows: list[dict], out: Path, repeat: int = 1) -> str:
    with open(out, "w") as fh:
        for k in range(repeat):
            for r in rows:
                fh.write(json.dumps({**r, "id": f"{r['id']}#{k}" if repeat > 1 else r["id"]}) + "\n")
    return str(out)


def ogg_rows(n: int) -> list[dict]:
    files = sorted(glob.glob(OGG_GLOB, recursive=True))[:n]
    return [{"id": f"ogg{i}", "audio": f, "duration": sf.info(f).duration, "captions": ["x"]}
            for i, f in enumerate(files)]


# ---------------------------------------------------------------------------------------- measures
def throughput(manifest: str, workers: int, rounds: int, *, cached: bool) -> dict[str, float]:
    """Median clips/s of ours, ours with the cache warm (optional) and the DataLoader, interleaved."""
    from avsuite.data.rows import ManifestRows

    rows = ManifestRows.from_path(manifest)
    paths = [rows[i]["audio"] for i in range(len(rows))]
    ours, dl = reader(manifest, workers), plain_loader(paths, workers)
    sides = {"ours": lambda: count(ours), "dataloader": lambda: count(dl)}
    tmp = None
    if cached:
        tmp = tempfile.TemporaryDirectory(prefix="avsuite-bench-cache-")
        cached_reader = reader(manifest, workers, tmp.name)
        t = time.perf_counter()
        assert count(cached_reader) == len(rows)            # first epoch: decode + write the cache
        first = time.perf_counter() - t
        sides["ours_cached"] = lambda: count(cached_reader)
    n = {k: fn() for k, fn in sides.items()}                 # warm-up (page cache, kernels, imports)
    assert len(set(n.values())) == 1 and n["ours"] == len(rows), n
    times: dict[str, list[float]] = {k: [] for k in sides}
    cpu: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(rounds):
        for k, fn in sides.items():
            c, t = cpu_seconds(), time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
            cpu[k].append(cpu_seconds() - c)
    res = {f"{k}_clips_per_s": len(rows) / statistics.median(v) for k, v in times.items()}
    res.update({f"{k}_cpu_ms_per_clip": 1e3 * statistics.median(v) / len(rows) for k, v in cpu.items()})
    res["ratio_vs_dataloader"] = res["ours_clips_per_s"] / res["dataloader_clips_per_s"]
    res["cpu_ratio_vs_dataloader"] = res["dataloader_cpu_ms_per_clip"] / res["ours_cpu_ms_per_clip"]
    if cached:
        res["ours_cached_first_epoch_clips_per_s"] = len(rows) / first
        res["ratio_cached_vs_dataloader"] = res["ours_cached_clips_per_s"] / res["dataloader_clips_per_s"]
        tmp.cleanup()
    res["clips"] = len(rows)
    return res


def _status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _reset_peak() -> float:
    """Reset the peak-RSS mark to the current RSS (Linux ``clear_refs``; imports' transient peaks
    then do not hide what comes after) and return the current RSS in MiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_mib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak() -> float:
    try:
        return _status_mib("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and its live children (the DataLoader's workers)."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    total = u.ru_utime + u.ru_stime
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            try:
                t = child.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    except ImportError:
        pass
    return total


def rss_child(manifest: str, batches: int, mode: str) -> None:
    """Run in a fresh process: print the peak RSS (MiB) after opening ``manifest`` and reading."""
    import avsuite.data.batches  # noqa: F401  (imports count in the baseline, not in the growth)
    import avsuite.data.pipeline  # noqa: F401
    from fairseq2.data.data_pipeline import read_sequence  # noqa: F401

    base = _reset_peak()
    t = time.perf_counter()
    if mode == "list":
        from avsuite.data.manifest import read_manifest

        rows = read_manifest(manifest)
        n = len(rows)
    else:
        r = reader(manifest, 2)
        n = 0
        while n < batches:                     # several epochs when the manifest is small
            for _ in r:
                n += 1
                if n >= batches:
                    break
    print(json.dumps({"peak_mib": _peak(), "base_mib": base,
                      "seconds": time.perf_counter() - t, "n": n}))


def peak_rss(manifest: str, batches: int, mode: str = "reader") -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--rss-child", manifest, "--batches", str(batches),
                          "--mode", mode], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def streaming(src: str, sizes: list[int], batches: int, work: Path) -> dict[str, float]:
    from avsuite.data.manifest import read_manifest

    rows = read_manifest(src)
    res: dict[str, float] = {}
    for k in sizes:
        m = write_manifest(rows, work / f"x{k}.jsonl", repeat=k)
        r = peak_rss(m, batches)
        res[f"peak_rss_mib_{k}x"] = r["peak_mib"]
        res[f"rss_growth_mib_{k}x"] = r["peak_mib"] - r["base_mib"]
        res[f"open_and_read_s_{k}x"] = r["seconds"]
    big = max(sizes)
    old = peak_rss(str(work / f"x{big}.jsonl"), batches, mode="list")
    res[f"old_read_manifest_rss_growth_mib_{big}x"] = old["peak_mib"] - old["base_mib"]
    res[f"rows_{big}x"] = len(rows) * big
    res["rss_growth_ratio_max_vs_1x"] = res[f"peak_rss_mib_{big}x"] / res[f"peak_rss_mib_{sizes[0]}x"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and clips; under a minute")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--manifest", default="data/sounds/manifest.jsonl")
    ap.add_argument("--rss-child", help=argparse.SUPPRESS)
    ap.add_argument("--batches", type=int, default=50, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="reader", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.batches, args.mode)

    manifest = sounds_manifest(args.manifest)
    rounds = 2 if args.quick else 7
    res: dict[str, float | int | str] = {"workers": args.workers, "batch": BATCH, "crop_s": CROP, "sr": SR,
                                         "load_avg_1min_start": os.getloadavg()[0], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="avsuite-bench-loader-") as tmp:
        work = Path(tmp)
        if args.quick:
            from avsuite.data.manifest import read_manifest

            manifest = write_manifest(read_manifest(manifest)[:256], work / "quick.jsonl")
        for k, v in throughput(manifest, args.workers, rounds, cached=True).items():
            res[f"sounds_{k}"] = v
        ogg = ogg_rows(96 if args.quick else 480)
        if ogg:
            m = write_manifest(ogg, work / "ogg.jsonl")
            for k, v in throughput(m, args.workers, max(rounds - 2, 2), cached=False).items():
                res[f"ogg_{k}"] = v
        res.update(streaming(args.manifest, [1, 10] if args.quick else [1, 10, 100],
                             20 if args.quick else 50, work))
    res["load_avg_1min_end"] = os.getloadavg()[0]
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))


if __name__ == "__main__":
    main()
