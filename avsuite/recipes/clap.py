"""The clap recipe: CLAP / CWCL / CompA / TeminAL training, evaluation and the quickstart.

    avsuite train clap --config configs/clap/tiny.yaml --out runs/clap_tiny
    avsuite eval clap --model runs/clap_tiny/model --data MANIFEST_OR_ESC50_DIR --out runs/clap_eval
    avsuite quickstart --out runs/quickstart

Training decodes the corpus once into memory (sound-event corpora are small and trained for
many epochs on CPU; see :mod:`avsuite.recipes.clap_data`), draws label-distinct batches, samples
one caption per clip per step and optimises a weighted sum of contrastive terms
(:class:`~avsuite.losses.ContrastiveObjective`). The logit scale is clamped to ``log(100)`` after every optimiser step.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader

from avsuite.audio.frontend import FrontendConfig
from avsuite.config import load_config
from avsuite.data.manifest import read_manifest
from avsuite.data.pipeline import DataConfig
from avsuite.losses import ContrastiveObjective, compute_objective, pack_captions, unpack
from avsuite.models.clap import ClapModel, ClapModelConfig, load_matching
from avsuite.recipes import clap_data
from avsuite.recipes.common import (OptimConfig, TrainerConfig, adamw_with_schedule, build_trainer,
                                    export_model, resume_path, write_config, write_metrics)


@dataclass(frozen=True, kw_only=True)
class ComposeConfig:
    """Training-time compositions (CompA / TeminAL stages) built from the training clips."""
    mode: Literal["none", "compa", "teminal_a", "teminal_b"] = "none"
    #: fraction of each batch replaced by compositions
    prob: float = 0.5
    gap_seconds: float = 0.25


@dataclass(frozen=True, kw_only=True)
class Config:
    frontend: FrontendConfig = field(default_factory=lambda: FrontendConfig(
        sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64, f_min=50.0, f_max=8000.0,
        log="db", top_db=80.0))
    data: DataConfig = field(default_factory=DataConfig)
    model: ClapModelConfig = field(default_factory=ClapModelConfig)
    loss: ContrastiveObjective = field(default_factory=ContrastiveObjective)
    compose: ComposeConfig = field(default_factory=ComposeConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, warmup_steps=20))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    #: decode the whole corpus into memory once (small corpora, many epochs); false streams it
    #: through the shared fairseq2 pipeline (large corpora; no label-unique batches / compositions)
    preload: bool = True
    #: batches with distinct labels (fewer false negatives)
    label_unique_batches: bool = True
    #: train-time random gain (+- dB)
    gain_db: float = 6.0
    #: stop training after this many minutes of wall time (null: only trainer.max_steps)
    max_minutes: float | None = None
    #: initialise from this model dir (e.g. TeminAL stage B from stage A); null = fresh
    init_from: str | None = None
    #: prompt templates of the zero-shot evaluation (ensembled)
    templates: tuple[str, ...] = ("{}", "the sound of {}", "a recording of {}", "this is the sound of {}",
                                  "{} can be heard")


def load(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    return load_config(Config, path, overrides)


# ----------------------------------------------------------------------------- Lightning module
class ClapModule(L.LightningModule):
    def __init__(self, cfg: Config, train_clips: list[clap_data.Clip] | None = None):
        super().__init__()
        self.cfg = cfg
        self.model = ClapModel(cfg.model, cfg.frontend)
        self.train_clips = train_clips or []
        self.history: list[tuple[int, float]] = []
        self._rng = random.Random(cfg.data.seed)

    def train_dataloader(self) -> DataLoader:
        cfg = self.cfg
        ds = clap_data.ClipDataset(self.train_clips, cfg.frontend.sample_rate, cfg.data.max_seconds or 10.0,
                                   train=True, gain_db=cfg.gain_db)
        if cfg.compose.mode != "none":
            ds = clap_data.CompositionMix(ds, cfg.compose.mode, cfg.compose.prob, sr=cfg.frontend.sample_rate,
                                          seed=cfg.data.seed, gap_seconds=cfg.compose.gap_seconds)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self._trainer else (0, 1)
        labels = [c.label for c in self.train_clips] if cfg.label_unique_batches else \
            [None] * len(self.train_clips)
        bs = min(cfg.data.batch_size, len(self.train_clips))
        sampler = clap_data.LabelUniqueBatchSampler(labels, bs, seed=cfg.data.seed, rank=rank, world_size=world)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=clap_data.collate_clips, num_workers=0)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        captions = [self._rng.choice(c) for c in batch["captions"]]
        audio = self.model.encode_audio(batch["audio"], batch["lengths"])
        extra: dict[str, Any] = {}
        if any(batch["negatives"]):   # CompA / TeminAL: each audio's own hard-negative captions
            pack = pack_captions([[c] for c in captions], batch["negatives"])
            pos, neg = unpack(self.model.encode_text(pack.texts), pack)
            text = pos[:, 0]
            extra = {"neg_text": neg, "neg_mask": pack.neg_mask.to(neg.device)}
        else:
            text = self.model.encode_text(captions)
        if self.cfg.loss.cwcl:  # CWCL weights from the (frozen) text tower's own caption similarity
            with torch.no_grad():
                extra["frozen"] = self.model.text_encoder(captions)
        losses = compute_objective(self.cfg.loss, audio, text, self.model.logit_scale.exp(), **extra)
        bs = len(captions)
        for k, v in losses.items():
            self.log(f"train/{k}", v, prog_bar=(k == "loss"), batch_size=bs, sync_dist=False)
        self.log("train/logit_scale", self.model.logit_scale.exp(), batch_size=bs)
        self.history.append((int(self.global_step), float(losses["loss"].detach())))
        return losses["loss"]

    def on_train_batch_end(self, *args: Any) -> None:
        self.model.clamp_logit_scale()

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return adamw_with_schedule(params, self.cfg.optim, self.cfg.trainer.max_steps)


class TimeBudget(L.Callback):
    """Stop training cleanly once ``seconds`` of wall time have passed since fit start."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if time.monotonic() - self.start > self.seconds:
            trainer.should_stop = True


# ----------------------------------------------------------------------------- train / evaluate
def _init_from(model: ClapModel, model_dir: str) -> None:
    from avsuite.checkpoint import load_model_dir

    state, _ = load_model_dir(model_dir)
    load_matching(model, state, f"init_from {model_dir}: architecture differs")


def train(cfg: Config, out: Path, *, resume: bool = False) -> dict[str, float]:
    """Train on ``cfg.data.manifest``; writes config.yaml, model/, last.ckpt, metrics.json, loss_curve.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    rows = read_manifest(cfg.data.manifest)
    datamodule = None
    if cfg.preload:
        clips, stats = clap_data.load_clips(rows, cfg.frontend.sample_rate, min_seconds=cfg.data.min_seconds)
        if len(clips) < 2:
            raise ValueError(f"{cfg.data.manifest}: need at least 2 decodable clips with captions, got {len(clips)}")
        module = ClapModule(cfg, clips)
    else:
        if cfg.compose.mode != "none":
            raise ValueError("compose.mode needs preload: true (compositions are built from clips in memory)")
        from avsuite.data.datamodule import AudioDataModule

        stats = {"loaded": len(rows)}
        module = ClapModule(cfg)
        datamodule = AudioDataModule(cfg.data, clap_data.collate_examples, train_rows=rows)
    if cfg.init_from:
        _init_from(module.model, cfg.init_from)
    callbacks = [TimeBudget(cfg.max_minutes * 60)] if cfg.max_minutes else []
    trainer = build_trainer(cfg.trainer, out, enable_validation=False, callbacks=callbacks)
    if trainer.is_global_zero:
        write_config(out, cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_path(out, resume))
    metrics: dict[str, float] = {"train_clips": float(stats["loaded"]), "skipped_clips": float(len(rows) - stats["loaded"]),
                                 "steps": float(trainer.global_step)}
    if module.history:
        tail = [v for _, v in module.history[-20:]]
        metrics["train_loss"] = sum(tail) / len(tail)
    if not trainer.is_global_zero:
        return metrics
    model = module.model.eval()
    export_model(out, model.state_dict(), model.export_config())
    plot_loss_curve(module.history, out / "loss_curve.png")
    if cfg.data.valid_manifest:
        metrics.update({f"valid_{k}": v for k, v in
                        evaluate_model(model, read_manifest(cfg.data.valid_manifest), out / "valid",
                                       templates=cfg.templates).items()})
    write_metrics(out, metrics)
    return metrics


@torch.no_grad()
def evaluate_model(model: ClapModel, rows: list[dict], out: Path, *, templates: tuple[str, ...] | None = None,
                   batch_size: int = 16) -> dict[str, float]:
    """Zero-shot (labels) + retrieval (captions) on ``rows``; plots under ``out``. -> flat metrics."""
    from avsuite.eval import retrieval, zeroshot

    out = Path(out)
    emb, kept, errors = zeroshot.embed_rows(model, rows, batch_size)
    metrics: dict[str, float] = {"eval_clips": float(len(kept)), "eval_skipped": float(len(errors))}
    labels = [r.get("label") for r in kept]
    if kept and all(labels) and len(set(labels)) >= 2:
        zs, cm, classes = zeroshot.zeroshot_eval(model, emb, labels, templates=templates or zeroshot.DEFAULT_TEMPLATES)
        metrics.update(zs)
        zeroshot.plot_confusion(cm, classes, out / "confusion.png")
    caps = [clap_data.row_captions(r) for r in kept]
    if len(retrieval.unique_captions(caps)[0]) >= 2:
        metrics.update(retrieval.retrieval_eval(model, emb, caps)[0])
    if kept and all(caps):
        first = [c[0] for c in caps]
        retrieval.plot_similarity(emb[:40] @ model.encode_text(first[:40]).float().cpu().T,
                                  [r.get("label") or r["id"] for r in kept[:40]], first[:40], out / "similarity.png")
    return metrics


def evaluate(model_dir: Path, data: Path, out: Path) -> dict[str, float]:
    """``data``: a manifest (JSONL) or an ESC-50 / UrbanSound8K / class-per-folder directory."""
    from avsuite.eval.benchmarks import load_eval_rows
    from avsuite.models.registry import load_model

    model = load_model(model_dir)
    metrics = evaluate_model(model, load_eval_rows(data), Path(out))
    write_metrics(Path(out), metrics)
    return metrics


def plot_loss_curve(history: list[tuple[int, float]], path: Path) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses = zip(*history)
    k = max(1, len(losses) // 50)
    smooth = [sum(losses[max(0, i - k):i + 1]) / len(losses[max(0, i - k):i + 1]) for i in range(len(losses))]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, losses, alpha=0.3, label="loss")
    ax.plot(steps, smooth, label=f"moving mean ({k + 1})")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def quickstart(out: Path) -> dict[str, float]:
    """The main job; see :mod:`avsuite.recipes.clap_quickstart`."""
    from avsuite.recipes.clap_quickstart import run

    return run(Path(out))


__all__ = ["Config", "ComposeConfig", "ClapModule", "train", "evaluate", "evaluate_model", "quickstart"]
