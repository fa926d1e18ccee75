"""The syncnet recipe: train a SyncNet expert (audio-visual sync discriminator) on an AV manifest.

    avsuite train syncnet --config configs/syncnet/tiny.yaml --out runs/syncnet
    avsuite eval syncnet --model runs/syncnet/model --data MANIFEST --out runs/syncnet_eval

Data: the one reader with the video stage (:mod:`avsuite.data.av`): 5-frame (16 for
``stable_syncnet``) lower-face windows, 50/50 positives (aligned Wav2Lip mel window) and negatives
(another clip's audio, or the same clip shifted by >= ``data.min_shift`` frames, later
``data.hard_min_shift``). Rows whose ``split`` is missing or ``train`` train; held-out clips come
from ``data.valid_manifest`` / ``data.test_manifest`` or the manifest's ``valid`` / ``test`` rows.

Loss: BCE on the cosine of the ReLU'd, L2-normalised embeddings (Wav2Lip / LatentSync).
metrics.json: ``sync_acc`` (cos > 0.5 == label, LatentSync's eval) and ``sync_loss`` on the
held-out clips (``eval_passes`` seeded windows per clip: a fixed set), per negative kind
(``sync_acc_pos`` / ``_other`` / ``_shift``), and LSE-D / LSE-C / AV offset of the held-out clips
(syncnet_python's algorithm with THIS model as the evaluator: not comparable to published LSE),
``pair_acc_shift5`` (aligned vs >= 5-frame-shifted audio per window) and the offset check: each
clip's audio shifted by k in -6..6 frames, the fraction of (clip, k) whose LSE offset reads k within a
frame (``offset_check_within1``, per k ``offset_check_k{k}``; ``offset_check.json`` / ``.png`` next to
metrics.json).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor

from avsuite.config import load_config
from avsuite.data.av import SyncBatch, SyncDataConfig, SyncLoad, clip_box, collate_sync, read_clips
from avsuite.data.datamodule import AudioDataModule
from avsuite.data.pipeline import Reader
from avsuite.data.rows import ManifestRows
from avsuite.data.sampling import ShuffledBatches
from avsuite.losses.sync import sync_cosine, sync_loss
from avsuite.models.syncnet import SyncNet, SyncNetConfig, syncnet_preset
from avsuite.recipes.common import (OptimConfig, TrainerConfig, adamw_with_schedule, build_trainer, export_model,
                                    resume_path, write_config, write_metrics)


@dataclass(frozen=True, kw_only=True)
class ModelSection:
    """A named architecture (:func:`avsuite.models.syncnet.syncnet_preset`)."""
    preset: Literal["tiny", "mouth32", "wav2lip", "stable_syncnet"] = "tiny"


@dataclass(frozen=True, kw_only=True)
class EvalSection:
    #: seeded windows (each a positive or a negative) per held-out clip for sync_acc / sync_loss
    passes: int = 32
    #: held-out clips scored with LSE-D / LSE-C / offset (0: none)
    lse_clips: int = 32
    batch_size: int = 32
    #: held-out clips for the offset check: audio shifted by k in -offset_max_shift..offset_max_shift
    #: frames, LSE's AV offset must read k (0: no check)
    offset_clips: int = 32
    offset_max_shift: int = 6

    def __post_init__(self) -> None:
        if self.passes < 1 or self.lse_clips < 0 or self.batch_size < 1:
            raise ValueError("eval.passes and eval.batch_size must be >= 1, eval.lse_clips >= 0")
        if self.offset_clips < 0 or not 0 <= self.offset_max_shift <= 14:
            raise ValueError("eval.offset_clips must be >= 0 and eval.offset_max_shift in [0, 14] (LSE's vshift is 15)")


@dataclass(frozen=True, kw_only=True)
class Config:
    data: SyncDataConfig = field(default_factory=SyncDataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, weight_decay=0.0, scheduler="constant"))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalSection = field(default_factory=EvalSection)

    def __post_init__(self) -> None:
        m, d = syncnet_preset(self.model.preset), self.data
        want = {"n_frames": m.n_frames, "mel_steps": m.mel_steps, "face_size": m.face_size, "face_width": m.face_width}
        bad = {k: (getattr(d, k), v) for k, v in want.items() if getattr(d, k) != v}
        if bad:
            raise ValueError("data does not match model.preset=" + self.model.preset + ": " +
                             ", ".join(f"data.{k}={have} (the model needs {need})" for k, (have, need) in bad.items()))
        if d.sample_rate != 16000:
            raise ValueError(f"data.sample_rate must be 16000 (the Wav2Lip mel), got {d.sample_rate}")


def load(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    return load_config(Config, path, overrides)


# ----------------------------------------------------------------------------- Lightning module
def model_inputs(model: SyncNet, batch: SyncBatch) -> tuple[Tensor, Tensor]:
    """Batch frames ([0, 1]) in the model's pixel range, and the mel."""
    frames = batch.frames * 2 - 1 if model.cfg.pixel_range == "signed" else batch.frames
    return frames, batch.mel


class SyncModule(L.LightningModule):
    """One :func:`~avsuite.losses.sync.sync_loss` per step; validation logs ``valid/sync_acc`` and
    ``valid/sync_loss`` over the whole held-out set."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.model = SyncNet(syncnet_preset(cfg.model.preset))
        self._val: list[tuple[Tensor, Tensor]] = []
        self.history: list[tuple[int, float, float]] = []

    def training_step(self, batch: SyncBatch, batch_idx: int) -> Tensor:
        v, a = self.model(*model_inputs(self.model, batch))
        out = sync_loss(v, a, batch.label)
        bs = len(batch)
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=bs)
        self.log("train/sync_acc", out["sync_acc"], prog_bar=True, batch_size=bs)
        self.history.append((int(self.global_step), float(out["loss"].detach()), float(out["sync_acc"])))
        return out["loss"]

    def validation_step(self, batch: SyncBatch, batch_idx: int) -> None:
        v, a = self.model(*model_inputs(self.model, batch))
        self._val.append((sync_cosine(v, a).detach().cpu(), batch.label.cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        cos, y = (torch.cat(x) for x in zip(*self._val))
        self._val = []
        self.log("valid/sync_acc", ((cos > 0.5).float() == y).float().mean(), batch_size=len(y))
        self.log("valid/sync_loss", torch.nn.functional.binary_cross_entropy(cos, y), batch_size=len(y))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sync_history"] = [list(h) for h in self.history]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = [(int(s), float(l), float(a)) for s, l, a in checkpoint.get("sync_history", [])]

    def configure_optimizers(self) -> dict[str, Any]:
        return adamw_with_schedule(self.model, self.cfg.optim, self.cfg.trainer.max_steps)


# ----------------------------------------------------------------------------- splits
def _rows(path: str | Path) -> ManifestRows:
    return ManifestRows.from_path(path)


def split_of(rows: ManifestRows, names: tuple[str | None, ...]) -> list[int]:
    return [i for i in range(len(rows)) if rows[i].get("split") in names]


def heldout_rows(cfg: SyncDataConfig, which: str) -> ManifestRows | None:
    """``valid`` / ``test`` clips: the split's own manifest (its rows of that split, or all when it
    has no splits), else the training manifest's rows of that split; None when there are none."""
    own = cfg.valid_manifest if which == "valid" else cfg.test_manifest
    rows = _rows(own or cfg.manifest)
    idx = split_of(rows, (which,))
    if own and not idx and not split_of(rows, tuple({rows[i].get("split") for i in range(len(rows))} - {None})):
        idx = list(range(len(rows)))
    return rows.select(idx) if idx else None


# ----------------------------------------------------------------------------- train / evaluate
def train(cfg: Config, out: Path, *, resume: bool = False) -> dict[str, float]:
    """Writes ``config.yaml``, ``model/``, ``last.ckpt``, ``metrics.json`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.data.manifest:
        raise ValueError("data.manifest is required (an AV manifest: avsuite data build av --out DIR)")
    L.seed_everything(cfg.trainer.seed, verbose=False)
    rows = _rows(cfg.data.manifest)
    k, n = cfg.data.train_part
    train_rows = rows.select(split_of(rows, (None, "train"))[k::n])
    if len(train_rows) < 2:
        raise ValueError(f"{cfg.data.manifest}: {len(train_rows)} training clip(s); SyncNet needs >= 2 "
                         "(negatives take another clip's audio)")
    valid = heldout_rows(cfg.data, "valid")
    d = cfg.data
    sampler = lambda _rows: ShuffledBatches(seed=d.seed, shuffle=d.shuffle, drop_last=d.drop_last)   # noqa: E731
    dm = AudioDataModule(d, collate_sync, train=train_rows, valid=valid, sampler=sampler, load=SyncLoad())
    module = SyncModule(cfg)
    trainer = build_trainer(cfg.trainer, out, enable_validation=valid is not None)
    if trainer.is_global_zero:
        write_config(out, cfg)
    trainer.fit(module, datamodule=dm, ckpt_path=resume_path(out, resume))
    metrics: dict[str, float] = {"steps": float(trainer.global_step), "train_clips": float(len(train_rows))}
    if module.history:
        tail = module.history[-20:]
        metrics["train_loss"] = sum(h[1] for h in tail) / len(tail)
        metrics["train_sync_acc"] = sum(h[2] for h in tail) / len(tail)
    reader = dm.train_reader()
    metrics.update({f"skipped_{k}": float(v) for k, v in sorted(reader.stats.counts.items())})
    if not trainer.is_global_zero:
        return metrics
    model = module.model.cpu().eval()
    export_model(out, model.state_dict(), export_config(model, d))
    test = heldout_rows(d, "test")
    scored = test if test is not None else valid
    pairs: list[tuple[int, float]] = []
    if scored is not None:
        metrics.update(evaluate_model(model, scored, d, cfg.eval, pairs_out=pairs))
        metrics["heldout_split_test"] = float(test is not None)
    write_metrics(out, metrics)
    write_offset_check(out, pairs)
    return metrics


def export_config(model: SyncNet, data: SyncDataConfig) -> dict[str, Any]:
    """The model dir config: the architecture + how faces were cropped (for eval / lipsync)."""
    mouth = list(data.mouth_crop) if data.mouth_crop is not None else None
    return {**model.export_config(), "crop_box": list(data.crop_box), "mouth_crop": mouth, "sample_rate": data.sample_rate}


@torch.no_grad()
def evaluate_model(model: SyncNet, rows: ManifestRows, data: SyncDataConfig, ev: EvalSection, *,
                   pairs_out: list[tuple[int, float]] | None = None) -> dict[str, float]:
    """Held-out ``sync_acc`` / ``sync_loss`` (+ per kind) over ``ev.passes`` seeded windows per clip,
    and mean LSE-D / LSE-C / |offset| over up to ``ev.lse_clips`` clips."""
    cfg = replace(data, batch_size=ev.batch_size, shuffle=False, drop_last=False, strict=False)
    reader = Reader(rows, cfg, train=False, collate=collate_sync, load=SyncLoad(),
                    sampler=ShuffledBatches(seed=cfg.seed, shuffle=False, passes=ev.passes))
    device = next(model.parameters()).device
    cos, lab, kinds = [], [], []
    for batch in reader:
        batch = batch.to(device)
        v, a = model(*model_inputs(model, batch))
        cos.append(sync_cosine(v, a).cpu())
        lab.append(batch.label.cpu())
        kinds += batch.kinds
    if not cos:
        return {"eval_windows": 0.0}
    c, y = torch.cat(cos), torch.cat(lab)
    correct = ((c > 0.5).float() == y).float()
    out = {"sync_acc": float(correct.mean()), "sync_loss": float(torch.nn.functional.binary_cross_entropy(c, y)),
           "eval_windows": float(len(y)), "eval_clips": float(len(rows)), "cos_pos": float(c[y > 0.5].mean()),
           "cos_neg": float(c[y <= 0.5].mean())}
    per: dict[str, list[float]] = defaultdict(list)
    for k, ok in zip(kinds, correct.tolist()):
        per[k].append(ok)
    out.update({f"sync_acc_{k}": float(np.mean(v)) for k, v in per.items()})
    out.update(lse_metrics(model, rows, data, ev.lse_clips, offset_clips=ev.offset_clips,
                           max_shift=ev.offset_max_shift, pairs_out=pairs_out))
    return out


def _clips(rows: ManifestRows, data: SyncDataConfig, n: int) -> Iterator[tuple[Tensor, Tensor, float]]:
    """``(faces (T, H, W, 3) uint8, wave (S,), fps)`` of the readable clips among the first ``n`` rows."""
    for _, faces, wave, fps in read_clips(rows, data, clip_box, (data.face_size, data.face_width), n):
        yield faces, wave, fps


def lse_metrics(model: SyncNet, rows: ManifestRows, data: SyncDataConfig, n_clips: int, *, offset_clips: int = 0,
                max_shift: int = 6, pairs_out: list[tuple[int, float]] | None = None) -> dict[str, float]:
    """Mean LSE-D / LSE-C / |AV offset| over the first ``n_clips`` readable clips of ``rows`` (and
    ``pair_acc_shift5``: aligned vs >= 5-frame-shifted audio of each window, :func:`avsuite.eval.lse.pair_accuracy`,
    the learning-free baseline's protocol), and the
    offset check (:func:`avsuite.eval.lse.offset_check`, k in -max_shift..max_shift) over the first
    ``offset_clips``: ``offset_check_*`` (:func:`avsuite.eval.lse.offset_summary`); the raw
    ``(k, measured)`` pairs are appended to ``pairs_out`` when given (for the plot)."""
    from avsuite.eval.lse import clip_features, lse, offset_check, offset_summary, pair_accuracy

    got, pairs, two = [], [], np.zeros(2)
    for n, (faces, wave, fps) in enumerate(_clips(rows, data, max(n_clips, offset_clips))):
        try:
            if n < n_clips:
                im, cc = clip_features(model, faces, wave, fps)
                got.append(lse(im, cc))
                two += pair_accuracy(im, cc, min_shift=5, seed=n)
            if n < offset_clips:
                pairs += offset_check(model, faces, wave, fps, range(-max_shift, max_shift + 1))
        except ValueError:            # shorter than one window
            continue
    out: dict[str, float] = {}
    if got:
        out.update({"lse_d": float(np.mean([g["lse_d"] for g in got])),
                    "lse_c": float(np.mean([g["lse_c"] for g in got])),
                    "av_offset_abs": float(np.mean([abs(g["av_offset"]) for g in got])), "lse_clips": float(len(got)),
                    "pair_acc_shift5": float(two[0] / max(1.0, two[1])), "pair_shift5_pairs": float(two[1])})
    out.update(offset_summary(pairs))
    if pairs_out is not None:
        pairs_out += pairs
    return out


def evaluate(model_dir: Path, data: Path, out: Path) -> dict[str, float]:
    """Score a model dir on an AV manifest (its ``test`` rows, else ``valid``, else all)."""
    from avsuite.checkpoint import load_model_dir
    from avsuite.models.registry import load_model

    model = load_model(model_dir, kind="syncnet")
    _, conf = load_model_dir(model_dir)
    m: SyncNetConfig = model.cfg
    dcfg = SyncDataConfig(manifest=str(data), n_frames=m.n_frames, mel_steps=m.mel_steps, face_size=m.face_size,
                          face_width=m.face_width, crop_box=tuple(conf.get("crop_box", (0.0, 0.0, 1.0, 1.0))),
                          mouth_crop=tuple(conf["mouth_crop"]) if conf.get("mouth_crop") else None)
    rows = _rows(data)
    idx = split_of(rows, ("test",)) or split_of(rows, ("valid",)) or list(range(len(rows)))
    pairs: list[tuple[int, float]] = []
    metrics = evaluate_model(model, rows.select(idx), dcfg, EvalSection(), pairs_out=pairs)
    write_metrics(Path(out), metrics)
    write_offset_check(Path(out), pairs)
    return metrics


def write_offset_check(out: Path, pairs: list[tuple[int, float]]) -> None:
    """``out/offset_check.json`` (the ``[k, measured]`` pairs) and ``out/offset_check.png``."""
    if not pairs:
        return
    from avsuite.checkpoint import atomic_write_text
    from avsuite.viz import plot_offset_check

    atomic_write_text(out / "offset_check.json", json.dumps([list(p) for p in pairs]) + "\n")
    plot_offset_check(pairs, out / "offset_check.png")


__all__ = ["Config", "ModelSection", "EvalSection", "SyncModule", "train", "evaluate", "evaluate_model",
           "lse_metrics", "load"]
