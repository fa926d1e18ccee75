"""Training plumbing shared by the recipes (not a recipe itself).

Lightning owns the loop; this file builds the Trainer from a typed :class:`TrainerConfig`, makes
its checkpoints atomic and safe to load, and writes the run outputs every recipe promises:
``OUT/config.yaml``, ``OUT/model/``, ``OUT/last.ckpt``, ``OUT/metrics.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from avsuite.checkpoint import atomic_path, atomic_write_text, load_ckpt, save_model_dir
from avsuite.config import dump_config
from avsuite.errors import NonFiniteLoss, TrainingInterrupted


Precision = Literal["32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true"]


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    #: total optimizer steps (-1: until max_epochs)
    max_steps: int = 100
    max_epochs: int | None = None
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int = 1
    #: "auto", "ddp", "ddp_spawn", "fsdp", ... (Lightning strategy names)
    strategy: str = "auto"
    precision: Precision = "32-true"
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    log_every_n_steps: int = 10
    #: validate every N training steps (None: at each epoch end)
    val_every_n_steps: int | None = None
    limit_val_batches: int | None = None
    checkpoint_every_n_steps: int = 100
    seed: int = 0
    deterministic: bool = False
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.max_steps < -1 or self.max_steps == 0:
            raise ValueError(f"max_steps must be >= 1 (or -1: no limit), got {self.max_steps}")
        if self.max_epochs is not None and self.max_epochs < 1 and self.max_epochs != -1:
            raise ValueError(f"max_epochs must be >= 1, -1 or null, got {self.max_epochs}")
        for key in ("devices", "accumulate_grad_batches", "log_every_n_steps", "checkpoint_every_n_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("val_every_n_steps", "limit_val_batches"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1 or null, got {getattr(self, key)}")
        if self.gradient_clip_val is not None and not self.gradient_clip_val > 0:
            raise ValueError(f"gradient_clip_val must be > 0 or null, got {self.gradient_clip_val}")


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    scheduler: Literal["cosine", "constant", "linear"] = "cosine"
    #: final lr as a fraction of ``lr`` (cosine/linear)
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.lr <= 10:
            raise ValueError(f"lr must be in (0, 10], got {self.lr}")
        if self.weight_decay < 0 or self.eps <= 0 or self.warmup_steps < 0:
            raise ValueError("weight_decay and warmup_steps must be >= 0 and eps > 0")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be in [0, 1), got {list(self.betas)}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints to a temp file, fsync, rename; load them with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_ckpt(path, map_location=map_location or "cpu")


class RngState(Callback):
    """Puts the global RNG states (torch CPU + CUDA, numpy, python) in ``last.ckpt`` and restores
    them before the first resumed step, so dropout, SpecAugment and any model-side randomness
    continue exactly as in an uninterrupted run (the data's randomness is seeded per item)."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {"torch": torch.get_rng_state(), "python": random.getstate(),   # weights_only-safe types
                 "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                           "has_gauss": int(has_gauss), "gauss": float(gauss)}}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending = state

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state, self._pending = self._pending, None
        if state is None:
            return
        torch.set_rng_state(state["torch"])
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        random.setstate(state["python"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class GracefulStop(Callback):
    """On SIGTERM / SIGINT: finish the current step, write a resumable ``last.ckpt``, raise
    :class:`TrainingInterrupted` (the CLI exits 143 / 130). Ranks agree on the stop step."""

    def __init__(self, out: Path):
        self.out, self.signum = Path(out), 0
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum:                      # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum
        print(f"avsuite: {signal.Signals(signum).name} received, stopping after this step "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:              # not the main thread (e.g. a notebook worker)
                pass

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        stop = bool(self.signum)
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        ckpt = self.out / "last.ckpt"
        trainer.save_checkpoint(ckpt)
        raise TrainingInterrupted(self.signum or signal.SIGTERM, trainer.global_step, ckpt)


class FinalCheckpoint(Callback):
    """Write ``last.ckpt`` when training ends (ModelCheckpoint with ``every_n_train_steps`` saves
    only on multiples of it), so a finished run can be extended with ``--resume``."""

    def __init__(self, out: Path):
        self.out = Path(out)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.out / "last.ckpt")


class FiniteGuard(Callback):
    """Stop on a non-finite training loss BEFORE the step's checkpoint is written."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not torch.isfinite(loss).all():
            raise NonFiniteLoss(
                f"training loss is {float(loss)} at step {trainer.global_step}; stopped without exporting the "
                f"model (last good checkpoint: {Path(trainer.default_root_dir) / 'last.ckpt'}, if any). "
                "Lower optim.lr, set trainer.gradient_clip_val, or check the data for extreme values")


def remove_stale_temps(out: Path) -> int:
    """Delete temp files left by a killed atomic write (``.<name>.*.tmp``); -> how many."""
    n = 0
    for tmp in Path(out).glob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            n += 1
    if n:
        logging.getLogger(__name__).info("removed %d stale temp file(s) in %s", n, out)
    return n


def build_trainer(cfg: TrainerConfig, out: Path, *, callbacks: Iterable[Callback] = (),
                  enable_validation: bool = True, **extra: Any) -> L.Trainer:
    """A Trainer that keeps ``out/last.ckpt`` current (with the RNG states) and logs CSV and
    TensorBoard metrics under ``out/logs``; ``extra`` goes to ``L.Trainer`` as is."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    ckpt = ModelCheckpoint(dirpath=out, filename="last", save_top_k=0, save_last=True,
                           every_n_train_steps=cfg.checkpoint_every_n_steps, save_on_train_epoch_end=True)
    ckpt.CHECKPOINT_NAME_LAST = "last"
    # order matters: the guards run before ModelCheckpoint at each step end
    cbs: list[Callback] = [RngState(), FiniteGuard(), GracefulStop(out), ckpt, FinalCheckpoint(out), *callbacks]
    if cfg.progress_bar:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, cfg.log_every_n_steps // 2)))
    return L.Trainer(
        default_root_dir=out,
        max_steps=cfg.max_steps,
        max_epochs=cfg.max_epochs if cfg.max_epochs is not None else -1,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision=cfg.precision,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        gradient_clip_val=cfg.gradient_clip_val,
        log_every_n_steps=cfg.log_every_n_steps,
        val_check_interval=cfg.val_every_n_steps if enable_validation else None,
        check_val_every_n_epoch=None if (cfg.val_every_n_steps and enable_validation) else 1,
        limit_val_batches=(cfg.limit_val_batches if enable_validation else 0),
        num_sanity_val_steps=0,
        deterministic=cfg.deterministic,
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        logger=[CSVLogger(out, name="logs", version=""), TensorBoardLogger(out, name="logs", version="tb")],
        callbacks=cbs,
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,
        **extra,
    )


def lr_lambda(cfg: OptimConfig, total_steps: int):
    """Step -> lr multiplier: linear warm-up, then cosine / linear decay to ``min_lr_ratio``."""
    total = max(total_steps, 1)

    def fn(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.scheduler == "constant":
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.scheduler == "cosine" else 1 - progress
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * decay

    return fn


#: parameter names (substrings) never decayed, besides every 0-d / 1-d tensor (norms, biases)
NO_DECAY_NAMES = ("logit_scale", "pos_embed", "position", "cls_token", "bias")


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters split into a decayed group (matrices, convolutions, embeddings) and
    an undecayed one (norm weights, biases, logit scale, positional / class tokens)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or any(k in name for k in NO_DECAY_NAMES) else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def adamw_with_schedule(params: torch.nn.Module | Iterable[torch.nn.Parameter] | Iterable[dict], cfg: OptimConfig,
                        total_steps: int) -> dict[str, Any]:
    """``configure_optimizers`` return value: AdamW + per-step LambdaLR schedule. Given a module,
    its parameters are grouped by :func:`param_groups` (no decay on norms, biases, logit scale)."""
    if isinstance(params, torch.nn.Module):
        params = param_groups(params, cfg.weight_decay)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas, eps=cfg.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, total_steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def write_config(out: Path, cfg: Any) -> Path:
    path = Path(out) / "config.yaml"
    atomic_write_text(path, dump_config(cfg))
    return path


def write_metrics(out: Path, metrics: dict[str, Any]) -> Path:
    """``out/metrics.json``: a flat object of named numbers (non-numbers are rejected)."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"metric {key!r} is not a number: {value!r}")
        flat[key] = float(value) if isinstance(value, float) else value
    path = Path(out) / "metrics.json"
    atomic_write_text(path, json.dumps(flat, indent=2, sort_keys=True) + "\n")
    return path


def export_model(out: Path, state_dict: dict[str, torch.Tensor], model_config: dict[str, Any]) -> Path:
    """Write the loadable model dir ``out/model`` (weights + config with ``kind``); refuses
    non-finite weights (a model dir never holds NaN/inf)."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise NonFiniteLoss(f"not exporting {out}/model: non-finite weights in {len(bad)} tensor(s), e.g. {bad[:3]}")
    return save_model_dir(Path(out) / "model", state_dict, model_config)


def resume_path(out: Path, resume: bool, module: Any = None) -> str | None:
    """``out/last.ckpt`` when resuming (clear error when it is missing), else None. With
    ``module``, the checkpoint's weights must fit it (names and shapes): resuming with another
    architecture is one clear error, not a state-dict traceback from inside Lightning."""
    if not resume:
        return None
    path = Path(out) / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}; start without --resume")
    if module is not None:
        check_resume_fits(path, module)
    return str(path)


def check_resume_fits(path: Path, module: Any) -> None:
    try:
        saved = torch.load(path, map_location="cpu", mmap=True, weights_only=True).get("state_dict", {})
    except Exception as exc:  # noqa: BLE001 - unreadable: say so instead of Lightning's traceback
        raise ValueError(f"--resume: cannot read {path} ({exc.__class__.__name__}): start a new --out") from None
    own = module.state_dict()
    missing = sorted(set(own) - set(saved))
    extra = sorted(set(saved) - set(own))
    shapes = sorted(k for k in set(own) & set(saved) if tuple(own[k].shape) != tuple(saved[k].shape))
    if missing or extra or shapes:
        parts = [f"{len(v)} {what} (e.g. {', '.join(v[:2])})" for what, v in
                 (("missing", missing), ("unexpected", extra), ("with another shape", shapes)) if v]
        raise ValueError(f"--resume: {path} was trained with a different model than this config builds: "
                         f"{'; '.join(parts)} tensors. Use the run's own config ({Path(path).parent}/config.yaml) "
                         "or a new --out")


def is_global_zero() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0
