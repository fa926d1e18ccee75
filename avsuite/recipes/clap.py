"""The clap recipe: CLAP / CWCL / CompA / TeminAL training, evaluation and the quickstart.

    avsuite train clap --config configs/clap/tiny.yaml --out runs/clap_tiny
    avsuite eval clap --model runs/clap_tiny/model --data MANIFEST_OR_ESC50_DIR --out runs/clap_eval
    avsuite quickstart --out runs/quickstart

Training streams the manifest through the one data layer (:mod:`avsuite.recipes.clap_data`:
label-distinct batches, random crop + gain, one caption per clip per step drawn by the reader,
CompA / TeminAL compositions) and optimises a weighted sum of contrastive terms
(:class:`~avsuite.losses.ContrastiveObjective`). Model-side randomness (crop inside the window,
SpecAugment, dropout) uses the global torch RNG, which ``last.ckpt`` saves: a killed run resumed
with ``--resume`` ends with the weights of an uninterrupted one. The logit scale is clamped to
``log(100)`` after every optimiser step.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import lightning as L
import torch

from avsuite import viz
from avsuite.audio.frontend import FrontendConfig
from avsuite.config import load_config
from avsuite.data.batches import row_captions
from avsuite.data.manifest import read_manifest, write_manifest
from avsuite.data.pipeline import check_sample_rate
from avsuite.losses import ContrastiveObjective, compute_objective, pack_captions, unpack
from avsuite.models.clap import ClapModel, ClapModelConfig, load_matching
from avsuite.recipes import clap_data
from avsuite.recipes.clap_data import ClapBatch, ClapDataConfig, ComposeConfig
from avsuite.recipes.common import (OptimConfig, TrainerConfig, adamw_with_schedule, build_trainer,
                                    export_model, param_groups, resume_path, write_config, write_metrics)


@dataclass(frozen=True, kw_only=True)
class Config:
    frontend: FrontendConfig = field(default_factory=lambda: FrontendConfig(
        sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64, f_min=50.0, f_max=8000.0,
        log="db", top_db=80.0))
    data: ClapDataConfig = field(default_factory=ClapDataConfig)
    model: ClapModelConfig = field(default_factory=ClapModelConfig)
    loss: ContrastiveObjective = field(default_factory=ContrastiveObjective)
    compose: ComposeConfig = field(default_factory=ComposeConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, warmup_steps=20))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    #: stop training after this many minutes of wall time (null: only trainer.max_steps)
    max_minutes: float | None = None
    #: initialise from this model dir (e.g. TeminAL stage B from stage A); null = fresh
    init_from: str | None = None
    #: lr multiplier of the text tower's trainable weights (a tuned pretrained layer wants far less
    #: than the fresh audio tower's lr); 1 = one lr for all
    text_lr_scale: float = 1.0
    #: prompt templates of the zero-shot evaluation (ensembled)
    templates: tuple[str, ...] = ("{}", "the sound of {}", "a recording of {}", "this is the sound of {}",
                                  "{} can be heard")

    def __post_init__(self) -> None:
        check_sample_rate(self.data, self.frontend)
        if not 0 < self.text_lr_scale <= 10:
            raise ValueError(f"text_lr_scale must be in (0, 10], got {self.text_lr_scale}")


def load(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    return load_config(Config, path, overrides)


# ----------------------------------------------------------------------------- Lightning module
class ClapModule(L.LightningModule):
    """CLAP training step over :class:`~avsuite.recipes.clap_data.ClapBatch`; keeps the loss history
    (``(step, loss)``) in the checkpoint so loss_curve.png covers a resumed run too."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.model = ClapModel(cfg.model, cfg.frontend)
        self.history: list[tuple[int, float]] = []

    def _text(self, batch: ClapBatch) -> tuple[torch.Tensor, dict[str, Any]]:
        """-> text embeddings ``(B, D)`` of each item's caption [+ hard negatives for CompA, + each
        composition's paraphrase for the text_hard term]."""
        captions = [c[0] for c in batch.captions]
        hard = self.cfg.loss.text_hard > 0
        if not any(batch.negatives):
            text = self.model.encode_text(captions)
            none = torch.zeros(len(captions), dtype=torch.bool, device=text.device)
            return text, ({"para_text": text, "para_mask": none, "swap_mask": none[:, None][:, :0]} if hard else {})
        paras = batch.paraphrases or [None] * len(captions)
        pack = pack_captions([[c] + ([p] if hard and p else []) for c, p in zip(captions, paras)], batch.negatives)
        pos, neg = unpack(self.model.encode_text(pack.texts), pack)
        extra: dict[str, Any] = {"neg_text": neg, "neg_mask": pack.neg_mask.to(neg.device)}
        if hard:
            has = pos.shape[1] > 1
            extra["para_text"] = pos[:, 1] if has else pos[:, 0]
            extra["para_mask"] = (pack.pos_mask[:, 1] if has else torch.zeros_like(pack.pos_mask[:, 0])).to(pos.device)
            swaps = batch.swaps or [[] for _ in captions]
            extra["swap_mask"] = torch.tensor([[pack.texts[j] in sw for j in row] for row, sw in
                                               zip(pack.neg_index.tolist(), swaps)], dtype=torch.bool,
                                              device=pos.device).reshape(pack.neg_mask.shape) & pack.neg_mask.to(pos.device)
        return pos[:, 0], extra

    def training_step(self, batch: ClapBatch, batch_idx: int) -> torch.Tensor:
        audio = self.model.encode_audio(batch.audio, batch.lengths)
        text, extra = self._text(batch)
        if self.cfg.loss.cwcl:  # CWCL weights from the (frozen) text tower's own caption similarity
            with torch.no_grad():
                extra["frozen"] = self.model.text_encoder([c[0] for c in batch.captions])
        losses = compute_objective(self.cfg.loss, audio, text, self.model.logit_scale.exp(), **extra)
        bs = len(batch)
        for k, v in losses.items():
            self.log(f"train/{k}", v, prog_bar=(k == "loss"), batch_size=bs, sync_dist=False)
        self.log("train/logit_scale", self.model.logit_scale.exp(), batch_size=bs)
        self.history.append((int(self.global_step), float(losses["loss"].detach())))
        return losses["loss"]

    def on_train_batch_end(self, *args: Any) -> None:
        self.model.clamp_logit_scale()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["loss_history"] = [[s, v] for s, v in self.history]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = [(int(s), float(v)) for s, v in checkpoint.get("loss_history", [])]

    def configure_optimizers(self) -> dict[str, Any]:
        scale = self.cfg.text_lr_scale
        if scale == 1.0:
            return adamw_with_schedule(self.model, self.cfg.optim, self.cfg.trainer.max_steps)
        text = {id(p) for p in self.model.text_encoder.parameters()}
        groups = [{**g, "params": ps, "lr": self.cfg.optim.lr * (scale if is_text else 1.0)}
                  for g in param_groups(self.model, self.cfg.optim.weight_decay) for is_text in (True, False)
                  if (ps := [p for p in g["params"] if (id(p) in text) == is_text])]
        return adamw_with_schedule(groups, self.cfg.optim, self.cfg.trainer.max_steps)


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


def _world_size(cfg: TrainerConfig) -> int:
    return cfg.devices if cfg.strategy.startswith("ddp") and cfg.devices > 1 else 1


def train(cfg: Config, out: Path, *, resume: bool = False, callbacks: Sequence[L.Callback] = ()) -> dict[str, float]:
    """Train on ``cfg.data.manifest``; writes config.yaml, model/, last.ckpt, metrics.json, loss_curve.png.
    ``callbacks`` are added to the trainer's (tests, tools)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    datamodule = clap_data.datamodule(cfg.data, cfg.compose, world_size=_world_size(cfg.trainer))
    module = ClapModule(cfg)
    if cfg.init_from:
        _init_from(module.model, cfg.init_from)
    callbacks = [*callbacks, *([TimeBudget(cfg.max_minutes * 60)] if cfg.max_minutes else [])]
    trainer = build_trainer(cfg.trainer, out, enable_validation=False, callbacks=callbacks)
    if trainer.is_global_zero:
        write_config(out, cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_path(out, resume, module))
    reader = datamodule.train_reader()
    kept = len(reader.rows) if reader.allowed is None else len(reader.allowed)
    metrics: dict[str, float] = {"train_clips": float(kept), "skipped_clips": float(len(reader.rows) - kept),
                                 "skipped_reads": float(reader.stats.total), "steps": float(trainer.global_step)}
    if module.history:
        tail = [v for _, v in module.history[-20:]]
        metrics["train_loss"] = sum(tail) / len(tail)
    if not trainer.is_global_zero:
        return metrics
    model = module.model.eval()
    export_model(out, model.state_dict(), model.export_config())
    viz.plot_loss_curve(module.history, out / "loss_curve.png")
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
        viz.plot_confusion(cm, [zeroshot.label_text(c) for c in classes], out / "confusion.png")
    caps = [row_captions(r) for r in kept]
    if len(retrieval.unique_captions(caps)[0]) >= 2:
        metrics.update(retrieval.retrieval_eval(model, emb, caps)[0])
    if kept and all(caps):
        first = [c[0] for c in caps]
        viz.plot_similarity(emb[:40] @ model.encode_text(first[:40]).float().cpu().T,
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



# ----------------------------------------------------------------------------- quickstart (the main job)
# ``avsuite quickstart``: build (or reuse) the real ``sounds`` corpus; split it by CLASS (a seeded
# quarter of the labels with >= 2 clips is held out entirely: neither audio nor captions are seen
# in training; seen classes keep a 1-in-8 hash hold-out of clips); train the tiny CLAP (frozen
# MiniLM + tiny CNN14) within a time budget; report zero-shot on the UNSEEN classes next to chance,
# zero-shot on held-out clips of seen classes, retrieval and the compositional/temporal 2x2 scores.
#: fraction of the labels held out as unseen classes
UNSEEN_FRACTION = 0.25
SPLIT_SEED = 0
#: the class split used to CHOOSE quickstart settings (``run_quickstart(validation=True)``): other
#: unseen classes than the reported split, and the cross-source recordings are not scored at all
VALID_SPLIT_SEED = 1
#: the source family held out of training entirely: its real instrument recordings are scored
#: against classes the model learnt from other sources (fluidsynth renders, tuxpaint clips)
CROSS_SOURCE = "gcompris-qt-data"

def quickstart_config(train_manifest: Path, *, max_minutes: float = 6.0, max_steps: int = 300, **model_kw: Any):
    """The quickstart's training config (also the reference for ``configs/clap/tiny.yaml``)."""
    model = {"audio": "cnn14_tiny", "text": "minilm", "freeze_text": True, "embed_dim": 384,
             "text_projection": "identity", "max_seconds": 3.0, "spec_time_mask": 10, "spec_freq_mask": 8, **model_kw}
    return Config(
        frontend=FrontendConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=320, n_mels=64,
                                f_min=50.0, f_max=8000.0, log="db", top_db=80.0),
        data=ClapDataConfig(manifest=str(train_manifest), sample_rate=16000, crop_seconds=3.0, batch_size=32, seed=0,
                            label_distinct=True, gain_db=6.0),
        model=ClapModelConfig(**model),
        loss=ContrastiveObjective(clap=1.0),
        optim=OptimConfig(lr=1e-3, weight_decay=0.01, warmup_steps=50, scheduler="cosine", min_lr_ratio=0.05),
        trainer=TrainerConfig(max_steps=max_steps, accelerator="cpu", devices=1, log_every_n_steps=10,
                              checkpoint_every_n_steps=200, seed=0),
        max_minutes=max_minutes,
    )


def _split(row: dict) -> str:
    """The row's own split, else a stable 1-in-8 hash hold-out of its id."""
    return row.get("split") or ("train" if zlib.crc32(str(row["id"]).encode()) % 8 else "valid")


def split_corpus(rows: list[dict], out: Path, *, seed: int = SPLIT_SEED,
                 cross_source: str | None = CROSS_SOURCE) -> dict[str, Path]:
    """Write ``train.jsonl`` (seen classes, train split), ``seen_heldout.jsonl`` (seen classes,
    other splits) and ``unseen.jsonl`` (held-out classes) under ``out``; with ``cross_source``,
    every clip of that source is kept out of all three, and ``cross_source.jsonl`` holds those of
    its clips whose class is trained from OTHER sources (a source the model never heard)."""
    held = [r for r in rows if cross_source and r.get("source") == cross_source]
    rest = [r for r in rows if not (cross_source and r.get("source") == cross_source)]
    seen, unseen = clap_data.class_disjoint_split(rest, UNSEEN_FRACTION, seed=seed)
    train = [r for r in seen if _split(r) == "train"]
    heldout = [r for r in seen if _split(r) != "train"]
    trained = {r.get("label") for r in train}
    cross = [r for r in held if r.get("label") in trained]
    paths = {"train": out / "train.jsonl", "seen_heldout": out / "seen_heldout.jsonl", "unseen": out / "unseen.jsonl",
             "cross_source": out / "cross_source.jsonl"}
    for name, part in (("train", train), ("seen_heldout", heldout), ("unseen", unseen), ("cross_source", cross)):
        write_manifest(part, paths[name])
    return paths


def compositional_scores(model: Any, rows: list[dict], n: int = 32, seed: int = SPLIT_SEED) -> dict[str, float]:
    """CompA-order / attribute and TeminAL temporal 2x2 scores on sets built from ``rows``."""
    from avsuite.eval.benchmarks import compositional_eval

    return compositional_eval(model, rows, n=n, seed=seed, clip_seconds=1.5)


def run_quickstart(out: Path, *, max_minutes: float = 6.0, max_steps: int = 300, manifest: Path | None = None,
        overrides: Sequence[str] = (), split_seed: int = SPLIT_SEED, validation: bool = False,
        **model_kw: Any) -> dict[str, float]:
    """The whole quickstart; returns the flat metrics also written to ``out/metrics.json``.

    ``manifest``: use this sounds manifest instead of building the corpus; ``overrides``: dotted
    config overrides (``loss.cwcl=1.0`` ...) for ablations. ``validation``: the run that settings
    are chosen on: the class split of :data:`VALID_SPLIT_SEED` and no cross-source scoring (the
    held-out source stays out of training but is never looked at: it is the test)."""
    out = Path(out)
    if validation:
        split_seed = VALID_SPLIT_SEED
    t0 = time.monotonic()
    if manifest is None:
        from avsuite.data.corpora import build, default_corpus_dir

        manifest = build("sounds", default_corpus_dir("sounds"))
    rows = read_manifest(manifest)
    paths = split_corpus(rows, out / "data", seed=split_seed)
    cfg = quickstart_config(paths["train"], max_minutes=max_minutes, max_steps=max_steps, **model_kw)
    if overrides:
        from avsuite.config import apply_overrides, from_dict, to_dict

        cfg = from_dict(Config, apply_overrides(to_dict(cfg), list(overrides)))
    train_metrics = train(cfg, out)
    from avsuite.models.registry import load_model

    model = load_model(out / "model")
    unseen = evaluate_model(model, read_manifest(paths["unseen"]), out, templates=cfg.templates)
    metrics: dict[str, float] = {k: v for k, v in unseen.items()}
    seen_rows = read_manifest(paths["seen_heldout"])
    if len({r.get("label") for r in seen_rows}) >= 2:
        seen = evaluate_model(model, seen_rows, out / "seen_heldout", templates=cfg.templates)
        metrics.update({f"seen_{k}": v for k, v in seen.items() if k.startswith("zeroshot")})
    cross_rows = [] if validation else read_manifest(paths["cross_source"])
    if len({r.get("label") for r in cross_rows}) >= 2:
        cross = evaluate_model(model, cross_rows, out / "cross_source", templates=cfg.templates)
        metrics.update({f"cross_{k}": v for k, v in cross.items() if k.startswith("zeroshot")})
    metrics.update(compositional_scores(model, read_manifest(paths["unseen"]), seed=split_seed))
    metrics.update({"train_loss": train_metrics.get("train_loss", float("nan")),
                    "train_steps": train_metrics.get("steps", 0.0), "train_clips": train_metrics.get("train_clips", 0.0),
                    "unseen_classes": metrics.get("zeroshot_classes", 0.0), "corpus_clips": float(len(rows)),
                    "wall_minutes": (time.monotonic() - t0) / 60})
    write_metrics(out, metrics)
    _print_summary(metrics, out)
    return metrics


def _print_summary(m: dict[str, float], out: Path) -> None:
    def pct(k: str) -> str:
        return f"{100 * m[k]:5.1f}%" if k in m else "   n/a"

    lines = [
        f"quickstart: {int(m.get('corpus_clips', 0))} clips; trained {int(m.get('train_steps', 0))} steps on "
        f"{int(m.get('train_clips', 0))} clips in {m.get('wall_minutes', 0):.1f} min (total)",
        f"zero-shot on {int(m.get('unseen_classes', 0))} UNSEEN classes ({int(m.get('zeroshot_n', 0))} clips): "
        f"top-1 {pct('zeroshot_top1')} (chance {pct('zeroshot_chance')}), top-5 {pct('zeroshot_top5')} "
        f"(chance {pct('zeroshot_chance_top5')})",
        f"zero-shot on held-out clips of seen classes: top-1 {pct('seen_zeroshot_top1')} "
        f"(chance {pct('seen_zeroshot_chance')})",
        f"cross-source: {int(m.get('cross_zeroshot_n', 0))} {CROSS_SOURCE} recordings (a source never trained on) of "
        f"{int(m.get('cross_zeroshot_classes', 0))} trained classes: top-1 {pct('cross_zeroshot_top1')} "
        f"(chance {pct('cross_zeroshot_chance')})",
        f"retrieval (unseen-class clips): R@1/5/10 audio->text {pct('r1_a2t')} {pct('r5_a2t')} {pct('r10_a2t')}; "
        f"text->audio {pct('r1_t2a')} {pct('r5_t2a')} {pct('r10_t2a')}",
    ]
    for kind in ("order", "attribute", "temporal"):
        if f"{kind}_text_score" in m:
            lines.append(f"{kind:>9} ({int(m[f'{kind}_sets'])} 2x2 sets, unseen-class clips): text "
                         f"{pct(f'{kind}_text_score')} audio {pct(f'{kind}_audio_score')} group "
                         f"{pct(f'{kind}_group_score')} (chance 25.0% / 25.0% / 16.7%)")
    lines.append(f"wrote {out}/model, {out}/metrics.json, {out}/confusion.png, {out}/loss_curve.png, "
                 f"{out}/similarity.png")
    print("\n".join(lines), flush=True)



def quickstart(out: Path, *, validation: bool = False, overrides: Sequence[str] = ()) -> dict[str, float]:
    """The main job (``avsuite quickstart [--validation] [key=value ...]``): see :func:`run_quickstart`."""
    return run_quickstart(Path(out), validation=validation, overrides=overrides)


__all__ = ["Config", "ComposeConfig", "ClapModule", "train", "evaluate", "evaluate_model", "quickstart",
           "run_quickstart", "quickstart_config", "split_corpus"]
