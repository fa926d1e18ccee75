"""Training plumbing shared by the recipes (not a recipe itself).

Lightning owns the loop; this file builds the Trainer from a typed :class:`TrainerConfig`, makes
its checkpoints atomic and safe to load, and writes the run outputs every recipe promises:
``OUT/config.yaml``, ``OUT/model/``, ``OUT/last.ckpt``, ``OUT/metrics.json``.
"""

from __future__ import annotations

import json
import math
import os
import random
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


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    max_steps: int = 100
    max_epochs: int | None = None
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    #: "32-true", "bf16-mixed", "16-mixed", ...
    precision: str = "32-true"
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


def build_trainer(cfg: TrainerConfig, out: Path, *, callbacks: Iterable[Callback] = (),
                  enable_validation: bool = True, **extra: Any) -> L.Trainer:
    """A Trainer that keeps ``out/last.ckpt`` current (with the RNG states) and logs CSV and
    TensorBoard metrics under ``out/logs``; ``extra`` goes to ``L.Trainer`` as is."""
    out = Path(out)
    ckpt = ModelCheckpoint(dirpath=out, filename="last", save_top_k=0, save_last=True,
                           every_n_train_steps=cfg.checkpoint_every_n_steps, save_on_train_epoch_end=True)
    ckpt.CHECKPOINT_NAME_LAST = "last"
    cbs: list[Callback] = [RngState(), ckpt, *callbacks]
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
    """Write the loadable model dir ``out/model`` (weights + config with ``kind``)."""
    return save_model_dir(Path(out) / "model", state_dict, model_config)


def resume_path(out: Path, resume: bool) -> str | None:
    """``out/last.ckpt`` when resuming (clear error when it is missing), else None."""
    if not resume:
        return None
    path = Path(out) / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}; start without --resume")
    return str(path)


def is_global_zero() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0
