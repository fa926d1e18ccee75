"""CLAP training throughput: our real path vs a plain PyTorch loop (open_clip style), same run.

    python tools/bench/clap_train.py [--quick] [--threads N] [--rounds R] [--steps K]
                                     [--manifest ~/.cache/avsuite/corpora/sounds/manifest.jsonl]

ours: ``avsuite.recipes.clap.train`` on ``configs/clap/tiny.yaml`` (Lightning engine, the streaming
``Reader`` with its ``num_parallel_calls`` decode threads, CPU, fp32 / AMP off) for K steps after
a warm-up; steps are timed by a Lightning callback (time between consecutive
``on_train_batch_end``: data wait + forward + backward + optimiser + our callbacks), so setup,
model export and checkpoint writing are excluded.
plain: the loop open_clip's ``train_one_epoch`` is (DataLoader -> zero_grad -> forward -> loss ->
backward -> step -> scheduler -> in-place logit-scale clamp): the same ``ClapModel`` built from
the same config, the same loss (``avsuite.losses.compute_objective``), the same AdamW + schedule
(``adamw_with_schedule``), batch size, crop and gain; a ``torch.utils.data.DataLoader`` with as
many worker processes as our decode threads over a Dataset that ``soundfile.read``s, downmixes,
random-crops at the file's rate and ``torchaudio.functional.resample``s to 16 kHz. Same manifest.
The sides run interleaved (ours, plain, cached, ours, ...), medians are reported.

``data_starvation`` = our step time on the run's batches preloaded in memory (same module, same
Trainer, same crops and captions: equal compute) / our step time with the Reader: the fraction of a step spent computing (1.0 = never waits for
data; a GPU-utilisation-like figure; on a loaded CPU it can exceed 1: the rounds see different
load). ``*_data_wait_frac``: the share of each step period spent waiting for the next batch
(before ``on_train_batch_start`` / open_clip's ``data_time``), from the same runs. Differences in sampling (ours: label-distinct batches, one
caption drawn per clip per step) are part of "ours". Ends with ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MANIFEST = Path.home() / ".cache/avsuite/corpora/sounds/manifest.jsonl"


class StepTimer(L.Callback):
    """perf_counter at each train batch start / end (setup and teardown are outside)."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, *args) -> None:
        self.ends.append(time.perf_counter())


def per_sample_s(ends: list[float], warm: int, batch: int) -> float:
    """Seconds per sample over the steps after ``warm`` (step period = end-to-end)."""
    return (ends[-1] - ends[warm - 1]) / ((len(ends) - warm) * batch)


def wait_frac(starts: list[float], ends: list[float], warm: int) -> float:
    """Fraction of the step periods after ``warm`` spent before the step started (waiting for data)."""
    return sum(starts[i] - ends[i - 1] for i in range(warm, len(ends))) / (ends[-1] - ends[warm - 1])


# ----------------------------------------------------------------------------------------- ours
def config(manifest: Path, steps: int, out_threads: int, extra: list[str] = ()):
    from avsuite.recipes import clap

    return clap.load(ROOT / "configs/clap/tiny.yaml", [*extra,
        f"data.manifest={manifest}", f"trainer.max_steps={steps}", "trainer.progress_bar=false",
        "trainer.checkpoint_every_n_steps=100000", "max_minutes=null", "trainer.precision=32-true"])


def run_ours(cfg, warm: int) -> float:
    from avsuite.recipes import clap

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        clap.train(cfg, Path(tmp), callbacks=[timer])
    return per_sample_s(timer.ends, warm, cfg.data.batch_size), wait_frac(timer.starts, timer.ends, warm)


def run_cached(cfg, warm: int, batches: list) -> float:
    """Our module + Trainer on the run's own batches already in memory (no data work at all; the
    same crops and captions as ``run_ours``, so the same compute: the frozen text tower's per-string
    cache makes a repeated batch cheaper than a real step)."""
    from avsuite.recipes import clap
    from avsuite.recipes.common import build_trainer

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        L.seed_everything(cfg.trainer.seed, verbose=False)
        trainer = build_trainer(cfg.trainer, Path(tmp), enable_validation=False, callbacks=[timer])
        trainer.fit(clap.ClapModule(cfg), train_dataloaders=InMemory(batches))
    return per_sample_s(timer.ends, warm, cfg.data.batch_size)


class InMemory:
    """Preloaded batches (an iterable with a length, as our Reader)."""

    def __init__(self, batches: list):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def preload(cfg, n: int) -> list:
    """The first ``n`` batches our Reader gives a fresh run (the same plan, crops and captions)."""
    from avsuite.recipes import clap_data

    it = iter(clap_data.datamodule(cfg.data, cfg.compose).train_reader())
    return [next(it) for _ in range(n)]


# ---------------------------------------------------------------------------------------- plain
class PlainClips(Dataset):
    """What a user writes: soundfile read, downmix, random crop at the file's rate, resample, gain."""

    def __init__(self, rows: list[dict], root: Path, sr: int, crop: float, gain_db: float):
        self.rows, self.root, self.sr, self.crop, self.gain_db = rows, root, sr, crop, gain_db

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        import torchaudio.functional as AF

        row = self.rows[i]
        data, sr = sf.read(str(self.root / row["audio"]), dtype="float32", always_2d=True)
        wave = torch.from_numpy(data.mean(1) if data.shape[1] > 1 else data[:, 0])
        n = int(np.ceil(self.crop * sr))
        if wave.shape[0] > n:
            start = random.randint(0, wave.shape[0] - n)
            wave = wave[start:start + n]
        if sr != self.sr:
            wave = AF.resample(wave, sr, self.sr)
        wave = wave * 10 ** (random.uniform(-self.gain_db, self.gain_db) / 20)
        caps = row.get("captions") or [row.get("text") or row["label"]]
        return wave, random.choice(caps)


def plain_collate(items):
    from avsuite.data.batches import pad_right

    audio, lengths = pad_right([w for w, _ in items])
    return audio, lengths, [c for _, c in items]


class PlainLoop:
    """open_clip-style training loop over the same model / loss / optimiser."""

    def __init__(self, cfg, workers: int):
        from avsuite.data.manifest import read_manifest

        manifest = Path(cfg.data.manifest)
        rows = read_manifest(manifest)
        self.cfg = cfg
        ds = PlainClips(rows, manifest.parent, cfg.data.sample_rate, cfg.data.crop_seconds, cfg.data.gain_db)
        self.loader = DataLoader(ds, batch_size=cfg.data.batch_size, shuffle=True, num_workers=workers,
                                 drop_last=True, persistent_workers=workers > 0, collate_fn=plain_collate,
                                 prefetch_factor=2 if workers else None)
        self.it = iter(self.loader)

    def next_batch(self):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)

    def run(self, steps: int, warm: int) -> float:
        from avsuite.losses import compute_objective
        from avsuite.recipes.common import adamw_with_schedule

        from avsuite.models.clap import ClapModel

        cfg = self.cfg
        torch.manual_seed(cfg.trainer.seed)
        model = ClapModel(cfg.model, cfg.frontend)   # a fresh run each round (cold text-feature cache, as ours)
        opt_cfg = adamw_with_schedule(model, cfg.optim, steps)
        opt, sched = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
        model.train()
        starts, ends = [], []
        for _ in range(steps):
            audio, lengths, caps = self.next_batch()
            starts.append(time.perf_counter())                # open_clip's data_time ends here
            opt.zero_grad(set_to_none=True)
            out = model(audio, lengths, caps)
            losses = compute_objective(cfg.loss, out["audio"], out["text"], out["logit_scale"])
            losses["loss"].backward()
            opt.step()
            sched.step()
            model.clamp_logit_scale()
            float(losses["loss"].detach())                 # open_clip logs the loss value
            ends.append(time.perf_counter())
        return per_sample_s(ends, warm, cfg.data.batch_size), wait_frac(starts, ends, warm)


# ----------------------------------------------------------------------------------------- main
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def ensure_manifest(path: Path | None) -> Path:
    if path is not None:
        return path
    if DEFAULT_MANIFEST.is_file():
        return DEFAULT_MANIFEST
    from avsuite.data.corpora import build, default_corpus_dir

    return Path(build("sounds", default_corpus_dir("sounds")))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per side per round")
    ap.add_argument("--warm", type=int, default=None, help="untimed first steps per side per round")
    ap.add_argument("--manifest", type=Path, default=None)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides for ours, e.g. data.num_workers=0")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rounds = a.rounds or (1 if a.quick else 3)
    steps = a.steps or (3 if a.quick else 15)
    a.warm = a.warm or (1 if a.quick else 2)
    total = a.warm + steps
    cfg = config(ensure_manifest(a.manifest), total, a.threads, a.set)
    load0 = os.getloadavg()[0]
    log("building the plain loop")
    workers = cfg.data.num_workers or cfg.data.num_parallel_calls
    plain = PlainLoop(cfg, workers)
    batches = preload(cfg, total)
    ours_s, plain_s, cached_s, ours_w, plain_w = [], [], [], [], []
    for r in range(rounds):
        log(f"round {r}")
        o, w = run_ours(cfg, a.warm)
        ours_s.append(o), ours_w.append(w)
        log(f"ours {1 / ours_s[-1]:.1f} samples/s")
        o, w = plain.run(total, a.warm)
        plain_s.append(o), plain_w.append(w)
        log(f"plain {1 / plain_s[-1]:.1f} samples/s")
        cached_s.append(run_cached(cfg, a.warm, batches))
        log(f"cached {1 / cached_s[-1]:.1f} samples/s")
    o, p, c = (statistics.median(x) for x in (ours_s, plain_s, cached_s))
    res = {"ours_samples_per_s": 1 / o, "plain_loop_samples_per_s": 1 / p, "ratio": p / o,
           "ours_cached_batch_samples_per_s": 1 / c, "data_starvation": c / o,
           "ours_data_wait_frac": statistics.median(ours_w), "plain_data_wait_frac": statistics.median(plain_w),
           "ours_rounds": [round(1 / x, 2) for x in ours_s], "plain_rounds": [round(1 / x, 2) for x in plain_s],
           "batch": cfg.data.batch_size, "crop_seconds": cfg.data.crop_seconds, "workers": workers,
           "ours_decode": "processes" if cfg.data.num_workers else "threads", "overrides": a.set,
           "steps": steps, "rounds": rounds, "threads": a.threads,
           "load_avg": round((load0 + os.getloadavg()[0]) / 2, 2), "manifest": str(cfg.data.manifest)}
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
