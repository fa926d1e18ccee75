"""GPU throughput (CUDA only): bf16 training of the clap / ctc_ot base configs, frontend, lip sync.

    python tools/bench/gpu.py [--quick] [--steps K] [--warmup W]

- ``clap_base_train_samples_per_s``: ``configs/clap/base.yaml``'s model (HTS-AT base + fusion,
  MiniLM fine-tuned) on synthetic in-memory batches of its shape (batch 64 x 30 s at 48 kHz,
  random captions): forward + CLAP loss + backward + AdamW (+ clip 1.0) under bf16 autocast, as
  Lightning's ``bf16-mixed`` runs it. Without the offline MiniLM files the from-scratch
  ``small_base`` text tower stands in (``clap_text`` says which).
- ``ctc_ot_base_train_samples_per_s``: ``configs/ctc_ot/base.yaml`` (Conformer base, CTC + OT
  pre-training loss) on batch 32 x 10 s at 16 kHz with 150-character transcripts.
- ``frontend_*_clips_per_s``: ``AudioFrontend`` of both configs on batch 64 x 10 s on the GPU.
- ``lipsync_frames_per_s``: the ``latentsync_256`` lip-sync model (if ``avsuite.models.lipsync``
  exists): VAE conditioning + 20 DDIM UNet steps + VAE decode per 16-frame window, bf16.
Each figure: W warm-up + K timed steps (``torch.cuda.synchronize`` around). A failing part is
reported as ``<part>_error`` and the others still run. Budget: < 8 min on one H200.
On a machine without CUDA: prints ``{"cuda": false, ...}`` and exits 0. Ends with ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

from avsuite.config import load_config

ROOT = Path(__file__).resolve().parents[2]
BF16 = torch.bfloat16


def timed(step: Callable[[], Any], warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per call of ``step`` (after ``warmup`` calls), synchronised on CUDA."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - t0) / steps


def train_step(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], opt, device, clip: float | None):
    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=BF16):
            loss = loss_fn()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return step


# ---------------------------------------------------------------------------------------- clap
def clap_base(device: torch.device, warmup: int, steps: int, batch: int | None = None,
              seconds: float | None = None, overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    from avsuite.losses import compute_objective
    from avsuite.models.clap import ClapModel
    from avsuite.recipes import clap
    from avsuite.recipes.common import adamw_with_schedule

    cfg = clap.load(ROOT / "configs/clap/base.yaml", list(overrides))
    text = cfg.model.text
    try:
        model = ClapModel(cfg.model, cfg.frontend, pretrained_text=False)
    except Exception:                   # no offline MiniLM files on this machine
        import dataclasses

        text = "small_base"
        model = ClapModel(dataclasses.replace(cfg.model, text=text), cfg.frontend)
    model = model.to(device).train()
    b, s = batch or cfg.data.batch_size, seconds or cfg.data.crop_seconds
    wave = torch.randn(b, int(s * cfg.data.sample_rate), device=device) * 0.1
    lengths = torch.full((b,), wave.shape[1], device=device)
    caps = [f"a recording of sound event number {i} in a busy street" for i in range(b)]
    opt = adamw_with_schedule(model, cfg.optim, cfg.trainer.max_steps)["optimizer"]

    def loss() -> torch.Tensor:
        out = compute_objective(cfg.loss, model.encode_audio(wave, lengths), model.encode_text(caps),
                                model.logit_scale.exp())
        return out["loss"]

    per = timed(train_step(model, loss, opt, device, cfg.trainer.gradient_clip_val), warmup, steps, device)
    return {"clap_base_train_samples_per_s": b / per, "clap_batch": b, "clap_seconds": s, "clap_text": text,
            "clap_params_M": sum(p.numel() for p in model.parameters()) / 1e6}


# -------------------------------------------------------------------------------------- ctc_ot
def ctc_ot_base(device: torch.device, warmup: int, steps: int, batch: int | None = None, seconds: float = 10.0,
                chars: int = 150, overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    from avsuite.recipes import ctc_ot
    from avsuite.recipes.common import adamw_with_schedule

    cfg = load_config(ctc_ot.Config, ROOT / "configs/ctc_ot/base.yaml", list(overrides))
    from avsuite.models.text_tokenizer import train_tokenizer

    tok = train_tokenizer(["abcdefghijklmnopqrstuvwxyz ,.'"], cfg.task.tokenizer, cfg.task.vocab_size)
    model, _ = ctc_ot._build(cfg, tok, tok, None)
    model = model.to(device).train()
    module = ctc_ot.CTCOTModule(model, cfg)
    b = batch or cfg.data.batch_size
    g = torch.Generator().manual_seed(0)
    src = torch.randint(1, len(tok), (b, chars), generator=g)
    data = {"audio": (torch.randn(b, int(seconds * cfg.data.sample_rate), generator=g) * 0.1).to(device),
            "lengths": torch.full((b,), int(seconds * cfg.data.sample_rate)).to(device),
            "src": src.to(device), "src_len": torch.full((b,), chars).to(device), "ids": [str(i) for i in range(b)]}
    opt = adamw_with_schedule(model, cfg.optim, cfg.trainer.max_steps)["optimizer"]
    per = timed(train_step(model, lambda: module.losses(data, train=True)["loss"], opt, device,
                           cfg.trainer.gradient_clip_val), warmup, steps, device)
    return {"ctc_ot_base_train_samples_per_s": b / per, "ctc_ot_batch": b, "ctc_ot_seconds": seconds,
            "ctc_ot_params_M": sum(p.numel() for p in model.parameters()) / 1e6}


# ------------------------------------------------------------------------------------ frontend
def frontends(device: torch.device, warmup: int, steps: int, batch: int = 64, seconds: float = 10.0) -> dict[str, Any]:
    from avsuite.audio.frontend import AudioFrontend
    from avsuite.recipes import clap, ctc_ot

    out = {}
    for name, fcfg in (("clap", clap.load(ROOT / "configs/clap/base.yaml").frontend),
                       ("ctc_ot", load_config(ctc_ot.Config, ROOT / "configs/ctc_ot/base.yaml").frontend)):
        fe = AudioFrontend(fcfg).to(device).eval()
        wave = torch.randn(batch, int(seconds * fcfg.sample_rate), device=device) * 0.1
        with torch.no_grad():
            per = timed(lambda: fe(wave), warmup, steps, device)
        out[f"frontend_{name}_clips_per_s"] = batch / per
    out.update({"frontend_batch": batch, "frontend_seconds": seconds})
    return out


# ------------------------------------------------------------------------------------- lipsync
def lipsync(device: torch.device, warmup: int, steps: int, preset: str = "latentsync_256",
            ddim_steps: int = 20) -> dict[str, Any]:
    try:
        from avsuite.models.lipsync import LipSyncModel, lipsync_preset, make_scheduler
    except ImportError as exc:
        return {"lipsync_note": f"skipped: avsuite.models.lipsync is not available ({exc})"}
    model = LipSyncModel(lipsync_preset(preset)).to(device).eval()
    cfg, n = model.cfg, model.cfg.n_frames
    frames = torch.rand(n, 3, cfg.face_size, cfg.face_size, device=device) * 2 - 1
    mels = torch.randn(n, 80, cfg.mel_steps, device=device)
    sched = make_scheduler(cfg)
    sched.set_timesteps(ddim_steps)

    @torch.no_grad()
    def window() -> None:
        with torch.autocast(device.type, dtype=BF16):
            cond, tokens = model.condition(frames, frames.roll(1, 0)), model.tokens(mels)
            lat = torch.randn(n, 4, cfg.latent_size, cfg.latent_size, device=device)
            for t in sched.timesteps:
                lat = sched.step(model.predict(lat, t.to(device), cond, tokens), t, lat).prev_sample
            model.decode(lat)

    per = timed(window, warmup, steps, device)
    return {"lipsync_frames_per_s": n / per, "lipsync_preset": preset, "lipsync_ddim_steps": ddim_steps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    a = ap.parse_args()
    res: dict[str, Any] = {"cuda": torch.cuda.is_available(), "load_avg": round(os.getloadavg()[0], 2)}
    if not res["cuda"]:
        res["note"] = "no CUDA device: nothing measured"
        print(json.dumps(res))
        return
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    steps, warmup = a.steps or (3 if a.quick else 10), a.warmup or (2 if a.quick else 3)
    res.update({"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "steps": steps,
                "warmup": warmup})
    for name, fn in (("frontend", frontends), ("ctc_ot", ctc_ot_base), ("clap", clap_base), ("lipsync", lipsync)):
        t0 = time.perf_counter()
        try:
            res.update(fn(device, warmup, steps))
        except Exception as exc:        # one part failing must not hide the others
            traceback.print_exc(file=sys.stderr)
            res[f"{name}_error"] = f"{exc.__class__.__name__}: {str(exc)[:300]}"
        res[f"{name}_wall_s"] = round(time.perf_counter() - t0, 1)
        res[f"{name}_peak_mem_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.empty_cache()
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))


if __name__ == "__main__":
    main()
