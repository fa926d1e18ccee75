"""The lipsync recipe: a latent-diffusion lip-sync generator (LatentSync's layout) in two stages.

    avsuite train lipsync --config configs/lipsync/tiny.yaml stage=vae --out runs/lipsync_vae
    avsuite train lipsync --config configs/lipsync/tiny.yaml stage=unet init=runs/lipsync_vae/model \
        syncnet=runs/syncnet/model --out runs/lipsync
    avsuite eval lipsync --model runs/lipsync/model --data MANIFEST --out runs/lipsync_eval
    avsuite eval lipsync --model runs/lipsync/model --data MANIFEST --syncnet EVAL_SYNCNET --out DIR  # LSE table

* ``stage: vae`` trains the small AutoencoderKL on face crops (L1 + 0.1 (1 - SSIM) + 1e-6 KL).
* ``stage: unet`` loads ``init``'s VAE (frozen), measures ``scaling_factor`` = 1 / std of the
  latents of the first ``scale_batches`` training batches, and trains the UNet + audio tokens:
  eps-MSE with LatentSync's mixed noise (shared over the clip's frames + independent, one t per
  clip), audio dropout, and (``loss.w_pixel`` / ``loss.w_sync`` > 0) the one-step x0 decoded by the
  frozen VAE: L1 + SSIM on the lower half, and a frozen SyncNet (``syncnet``: a model dir) BCE(cos, 1)
  for clips with ``t < loss.sync_max_t`` (:mod:`avsuite.losses.lipsync`), every ``loss.pixel_every``-th step.
* ``cache_latents: true`` (CPU): every training clip is decoded and cropped once and, in the unet
  stage, every frame encoded once by the frozen VAE (:mod:`avsuite.recipes.lipsync_cache`);
  ``data.mouth_crop`` crops around the row's ``mouth`` instead of the face (preset ``mouth32``).

metrics.json (held-out ``test`` rows, else ``valid``): re-dubbing each clip's first window with its
own audio (reference = another window of the clip, ``eval.steps`` DDIM steps, guidance
``eval.guidance``): mouth-region (mask = 0) ``mouth_l1`` / ``mouth_psnr`` and lower-half
``mouth_ssim``, the same for the ``ref_*`` baseline (the reference window's mouth pasted in) and
the ``vae_*`` ceiling (encode + decode of the ground truth); ``sync_cos`` / ``sync_acc``
(cos > 0.5) of the generated windows and ``sync_cos_gt`` of the real ones if ``eval.syncnet`` or
``syncnet`` is given. ``stage: vae`` reports ``vae_*`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor

from avsuite.config import load_config
from avsuite.data.datamodule import AudioDataModule
from avsuite.data.lipsync import (LatentBatch, LatentLoad, LipSyncBatch, LipSyncDataConfig, LipSyncLoad,
                                  collate_latents, collate_lipsync)
from avsuite.data.pipeline import Reader
from avsuite.data.rows import ManifestRows
from avsuite.data.sampling import ShuffledBatches
from avsuite.losses.lipsync import audio_dropout, lipsync_loss, lower_half, one_step_x0, ssim, vae_loss
from avsuite.losses.sync import sync_cosine
from avsuite.models.lipsync import LipSyncModel, lipsync_preset, make_scheduler
from avsuite.recipes.common import (OptimConfig, TrainerConfig, adamw_with_schedule, build_trainer, export_model,
                                    resume_path, write_config, write_metrics)
from avsuite.video.io import ffmpeg_logs_without_the_gil


@dataclass(frozen=True, kw_only=True)
class ModelSection:
    preset: Literal["tiny", "mouth32", "mouth32_l16", "micro", "latentsync_256"] = "tiny"


@dataclass(frozen=True, kw_only=True)
class LossSection:
    w_pixel: float = 0.1
    w_ssim: float = 0.1
    w_sync: float = 0.05
    #: the SyncNet loss only for clips whose timestep is below this (x0 of noisier t is not a face)
    sync_max_t: int = 500
    audio_dropout: float = 0.1
    kl_weight: float = 1e-6
    #: vae stage: L1 weight of the regenerated (mask = 0) pixels relative to the kept ones
    vae_mouth_weight: float = 1.0
    #: the decoded-x0 losses (pixel, SSIM, SyncNet) only every k-th step (they cost a VAE decode)
    pixel_every: int = 1

    def __post_init__(self) -> None:
        weights = (self.w_pixel, self.w_ssim, self.w_sync, self.kl_weight, self.vae_mouth_weight)
        if min(weights) < 0 or not 0 <= self.audio_dropout < 1:
            raise ValueError("loss weights must be >= 0 and audio_dropout in [0, 1)")
        if self.pixel_every < 1:
            raise ValueError(f"loss.pixel_every must be >= 1, got {self.pixel_every}")


@dataclass(frozen=True, kw_only=True)
class EvalSection:
    clips: int = 4
    steps: int = 20
    guidance: float = 1.5
    #: an evaluator SyncNet model dir (default: the training one, ``syncnet``)
    syncnet: str | None = None
    #: face detector written into the model dir for ``avsuite lipsync`` ("box": whole frame)
    detector: str = "blazeface"


@dataclass(frozen=True, kw_only=True)
class Config:
    stage: Literal["vae", "unet"] = "unet"
    #: model dir whose VAE the unet stage starts from (the vae stage's output)
    init: str | None = None
    #: frozen SyncNet model dir for the sync loss (null: no sync loss)
    syncnet: str | None = None
    #: batches whose latents set scaling_factor = 1 / std
    scale_batches: int = 4
    #: decode + crop every training clip once (vae stage) and, in the unet stage, encode every frame
    #: once with the frozen VAE: train on the cache (avsuite.recipes.lipsync_cache; the scale is then
    #: 1 / std of all cached latents)
    cache_latents: bool = False
    data: LipSyncDataConfig = field(default_factory=LipSyncDataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, weight_decay=0.0, scheduler="constant"))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalSection = field(default_factory=EvalSection)

    def __post_init__(self) -> None:
        m, d = lipsync_preset(self.model.preset), self.data
        bad = {k: (getattr(d, k), getattr(m, k)) for k in ("n_frames", "face_size", "mel_steps")
               if getattr(d, k) != getattr(m, k)}
        if bad:
            raise ValueError(f"data does not match model.preset={self.model.preset}: " +
                             ", ".join(f"data.{k}={a} (the model needs {b})" for k, (a, b) in bad.items()))
        if d.sample_rate != 16000:
            raise ValueError(f"data.sample_rate must be 16000 (the Wav2Lip mel), got {d.sample_rate}")
        if self.stage == "unet" and not self.init:
            raise ValueError("stage=unet needs init=<model dir of the vae stage> (its VAE is frozen)")


def load(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    return load_config(Config, path, overrides)


def _flat(x: Tensor) -> Tensor:
    """``(B, T, ...)`` -> ``(B * T, ...)``."""
    return x.reshape(-1, *x.shape[2:])


def sync_windows(pixels: Tensor, t_frames: int, offsets: list[int], k: int, unit: bool) -> Tensor:
    """Decoded ``(B * T, 3, H, W)`` in [-1, 1] -> ``(B * W, 3k, H/2, W)`` SyncNet inputs (lower
    halves of the ``k``-frame sub-windows at ``offsets``, frame-major channels)."""
    low = lower_half(pixels)
    x = low.reshape(-1, t_frames, *low.shape[1:])                            # (B, T, 3, H/2, W)
    w = torch.stack([x[:, o:o + k] for o in offsets], dim=1)                 # (B, W, k, 3, H/2, W)
    w = w.reshape(-1, k * 3, *w.shape[-2:])
    return (w + 1) / 2 if unit else w


# ----------------------------------------------------------------------------- Lightning module
class LipSyncModule(L.LightningModule):
    def __init__(self, cfg: Config, model: LipSyncModel, syncnet: torch.nn.Module | None = None):
        super().__init__()
        self.cfg, self.model = cfg, model
        self._sync = [syncnet.eval().requires_grad_(False)] if syncnet is not None else []
        self.sched = make_scheduler(model.cfg)
        if cfg.stage == "unet":
            model.vae.requires_grad_(False)
        else:
            model.unet.requires_grad_(False)
            model.audio.requires_grad_(False)
        self.history: list[tuple[int, float]] = []

    def on_fit_start(self) -> None:
        for net in self._sync:
            net.to(self.device)

    def train(self, mode: bool = True) -> "LipSyncModule":
        super().train(mode)
        if self.cfg.stage == "unet":
            self.model.vae.eval()
        return self

    def training_step(self, batch: LipSyncBatch, batch_idx: int) -> Tensor:
        out = self._vae_step(batch) if self.cfg.stage == "vae" else self._unet_step(batch)
        for k, v in out.items():
            self.log(f"train/{k}", v, prog_bar=k == "loss", batch_size=len(batch))
        self.history.append((int(self.global_step), float(out["loss"].detach())))
        return out["loss"]

    def _vae_step(self, batch: LipSyncBatch) -> dict[str, Tensor]:
        x = _flat(batch.frames)
        dist = self.model.vae.encode(x).latent_dist
        recon = self.model.vae.decode(dist.sample()).sample
        lc = self.cfg.loss
        weight = None if lc.vae_mouth_weight == 1.0 else 1 + (lc.vae_mouth_weight - 1) * (1 - self.model.mask)
        return vae_loss(recon, x, dist.mean, dist.logvar, kl_weight=lc.kl_weight, weight=weight)

    def _unet_step(self, batch: LipSyncBatch | LatentBatch) -> dict[str, Tensor]:
        m, lc = self.model, self.cfg.loss
        b, t_frames = batch.frames.shape[:2]
        x = _flat(batch.frames)
        with torch.no_grad():
            if isinstance(batch, LatentBatch):
                latents = _flat(batch.latents) * m.scaling
                cond = m.condition_latents(_flat(batch.masked) * m.scaling, _flat(batch.ref) * m.scaling)
            else:
                latents, cond = m.encode(x), m.condition(x, _flat(batch.ref))
        shape = (b, 1, *latents.shape[1:])
        eps = (torch.randn(shape, device=self.device) * 0.5 ** 0.5 +
               torch.randn((b, t_frames, *latents.shape[1:]), device=self.device) * 0.5 ** 0.5)
        eps = _flat(eps)
        t_clip = torch.randint(0, self.sched.config.num_train_timesteps, (b,), device=self.device)
        t = t_clip.repeat_interleave(t_frames)
        noisy = self.sched.add_noise(latents, eps, t)
        tokens, _ = audio_dropout(m.tokens(_flat(batch.mel)), lc.audio_dropout)
        eps_pred = m.predict(noisy, t, cond, tokens)
        pred = sync_cos = sync_on = None
        if (lc.w_pixel > 0 or lc.w_ssim > 0 or (self._sync and lc.w_sync > 0)) and \
                self.global_step % lc.pixel_every == 0:
            abar = self.sched.alphas_cumprod.to(self.device)[t]
            pred = m.decode(one_step_x0(noisy, eps_pred, abar))
        if pred is not None and self._sync and lc.w_sync > 0:
            sn = self._sync[0]
            d = self.cfg.data
            v = sn.encode_frames(sync_windows(pred, t_frames, d.sync_offsets(), d.sync_frames,
                                              sn.cfg.pixel_range == "unit"))
            a = sn.encode_mel(_flat(batch.sync_mel))
            sync_cos = sync_cosine(v, a)
            sync_on = (t_clip < lc.sync_max_t).repeat_interleave(len(d.sync_offsets()))
        return lipsync_loss(eps_pred, eps, pred=pred, target=x if pred is not None else None, sync_cos=sync_cos,
                            sync_on=sync_on, w_pixel=lc.w_pixel, w_ssim=lc.w_ssim, w_sync=lc.w_sync)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lipsync_history"] = [list(h) for h in self.history]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = [(int(s), float(v)) for s, v in checkpoint.get("lipsync_history", [])]

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return adamw_with_schedule(params, self.cfg.optim, self.cfg.trainer.max_steps)


# ----------------------------------------------------------------------------- splits / readers
def _split(rows: ManifestRows, names: tuple[str | None, ...]) -> list[int]:
    return [i for i in range(len(rows)) if rows[i].get("split") in names]


def heldout(rows: ManifestRows) -> ManifestRows | None:
    idx = _split(rows, ("test",)) or _split(rows, ("valid",))
    return rows.select(idx) if idx else None


def eval_reader(rows: ManifestRows, d: LipSyncDataConfig, batch_size: int) -> Reader:
    cfg = replace(d, batch_size=batch_size, shuffle=False, drop_last=False, strict=False)
    return Reader(rows, cfg, train=False, collate=collate_lipsync, load=LipSyncLoad(),
                  sampler=ShuffledBatches(seed=cfg.seed, shuffle=False))


@torch.no_grad()
def measure_scaling(model: LipSyncModel, rows: ManifestRows, d: LipSyncDataConfig, n_batches: int) -> float:
    """1 / std of the unscaled VAE latents (posterior means) of the first ``n_batches`` batches."""
    saved = float(model.scaling)
    model.with_scaling(1.0)
    zs = []
    for k, batch in enumerate(eval_reader(rows, d, d.batch_size)):
        if k >= n_batches:
            break
        zs.append(model.encode(_flat(batch.frames)).flatten())
    model.with_scaling(saved)
    if not zs:
        raise ValueError("no readable training clip to measure the VAE scaling factor on")
    return float(1.0 / torch.cat(zs).std().clamp_min(1e-6))


def crop_mismatch(syncnet_conf: dict[str, Any], d: LipSyncDataConfig) -> str | None:
    """Why a SyncNet trained with model-dir config ``syncnet_conf`` (its ``mouth_crop`` / ``crop_box``)
    would see another crop than the generator's step does (``d.mouth_crop`` / ``d.crop_box``), or None."""
    theirs = syncnet_conf.get("mouth_crop")
    if (theirs is None) != (d.mouth_crop is None):
        return (f"the SyncNet was trained on {'mouth' if theirs else 'face'} crops, the generator uses "
                f"{'mouth' if d.mouth_crop else 'face'} crops")
    if theirs is not None:
        same = np.allclose(theirs, d.mouth_crop)
        what = f"mouth_crop {list(theirs)} vs data.mouth_crop {list(d.mouth_crop)}"
    else:
        box = syncnet_conf.get("crop_box", (0.0, 0.0, 1.0, 1.0))
        same, what = np.allclose(box, d.crop_box), f"crop_box {list(box)} vs data.crop_box {list(d.crop_box)}"
    return None if same else f"the SyncNet's {what}"


def load_syncnet(path: str | None, d: LipSyncDataConfig) -> torch.nn.Module | None:
    """A frozen SyncNet model dir whose windows fit the data's (``sync_frames``, ``sync_mel_steps``, face
    size) and whose training crop is the generator's (:func:`crop_mismatch`)."""
    if not path:
        return None
    from avsuite.checkpoint import read_model_config
    from avsuite.models.registry import load_model

    net = load_model(path, kind="syncnet")
    want = {"sync_frames": net.cfg.n_frames, "sync_mel_steps": net.cfg.mel_steps, "face_size": net.cfg.face_size}
    bad = [f"data.{k}={getattr(d, k)} (the SyncNet needs {v})" for k, v in want.items() if getattr(d, k) != v]
    if net.cfg.face_width != d.face_size:
        bad.append("face width")
    crop = crop_mismatch(read_model_config(path), d)
    bad += [crop] if crop else []
    if bad:
        raise ValueError(f"{path}: the SyncNet does not fit the lip-sync data: {', '.join(bad)}")
    return net


# ----------------------------------------------------------------------------- train / evaluate
def build_model(cfg: Config) -> LipSyncModel:
    model = LipSyncModel(lipsync_preset(cfg.model.preset))
    if cfg.init:
        from avsuite.models.registry import load_model

        init = load_model(cfg.init, kind="lipsync")
        model.vae.load_state_dict(init.vae.state_dict())
        if cfg.stage == "vae":
            model.load_state_dict(init.state_dict())
    return model


def train(cfg: Config, out: Path, *, resume: bool = False) -> dict[str, float]:
    """Writes ``config.yaml``, ``model/``, ``last.ckpt``, ``metrics.json`` under ``out``."""
    ffmpeg_logs_without_the_gil()          # lightning turned PyAV's log bridge on: a decoder-thread deadlock
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d = cfg.data
    if not d.manifest:
        raise ValueError("data.manifest is required (an AV manifest: avsuite data build av --out DIR)")
    L.seed_everything(cfg.trainer.seed, verbose=False)
    rows = ManifestRows.from_path(d.manifest)
    train_rows = rows.select(_split(rows, (None, "train")))
    if len(train_rows) < 1:
        raise ValueError(f"{d.manifest}: no training clip (rows with split train or no split)")
    model = build_model(cfg)
    collate, load_fn = collate_lipsync, LipSyncLoad()
    if cfg.cache_latents:
        from avsuite.recipes.lipsync_cache import build_latent_cache, cached_scaling

        unet = cfg.stage == "unet"
        cache = build_latent_cache(model, train_rows, d, out / f"{'latent' if unet else 'crop'}_cache.pt", encode=unet)
        if unet:
            model.with_scaling(cached_scaling(cache))
        collate, load_fn = collate_latents, LatentLoad(cache)
    elif cfg.stage == "unet":
        model.with_scaling(measure_scaling(model, train_rows, d, cfg.scale_batches))
    syncnet = load_syncnet(cfg.syncnet, d) if cfg.stage == "unet" and cfg.loss.w_sync > 0 else None
    module = LipSyncModule(cfg, model, syncnet)
    sampler = lambda _rows: ShuffledBatches(seed=d.seed, shuffle=d.shuffle, drop_last=d.drop_last)  # noqa: E731
    dm = AudioDataModule(d, collate, train=train_rows, sampler=sampler, load=load_fn)
    trainer = build_trainer(cfg.trainer, out, enable_validation=False)
    if trainer.is_global_zero:
        write_config(out, cfg)
    trainer.fit(module, datamodule=dm, ckpt_path=resume_path(out, resume, module))
    metrics: dict[str, float] = {"steps": float(trainer.global_step), "train_clips": float(len(train_rows)),
                                 "scaling_factor": float(model.scaling)}
    if module.history:
        tail = module.history[-20:]
        metrics["train_loss"] = sum(h[1] for h in tail) / len(tail)
    metrics.update({f"skipped_{k}": float(v) for k, v in sorted(dm.train_reader().stats.counts.items())})
    if not trainer.is_global_zero:
        return metrics
    model = module.model.cpu().eval()
    export_model(out, model.state_dict(), export_config(model, cfg))
    held = heldout(rows)
    if held is not None:
        evaluator = load_syncnet(cfg.eval.syncnet or cfg.syncnet, d) if cfg.stage == "unet" else None
        metrics.update(evaluate_model(model, held, d, cfg.eval, stage=cfg.stage, syncnet=evaluator))
    write_metrics(out, metrics)
    return metrics


def export_config(model: LipSyncModel, cfg: Config) -> dict[str, Any]:
    mouth = list(cfg.data.mouth_crop) if cfg.data.mouth_crop is not None else None
    return {**model.export_config(), "crop_box": list(cfg.data.crop_box), "mouth_crop": mouth,
            "sample_rate": cfg.data.sample_rate,
            "stage": cfg.stage, "inference": {"steps": cfg.eval.steps, "guidance": cfg.eval.guidance,
                                              "detector": cfg.eval.detector}}


def _mouth_scores(pred: Tensor, gt: Tensor, keep: Tensor) -> dict[str, Tensor]:
    """Per item ``l1`` / ``psnr`` over the regenerated pixels (``keep == 0``) and ``ssim`` on the lower half."""
    region = (1 - keep).expand_as(pred)
    n = region.flatten(1).sum(1).clamp_min(1)
    err = (pred - gt).abs() * region
    mse = ((pred - gt) ** 2 * region).flatten(1).sum(1) / n
    return {"l1": err.flatten(1).sum(1) / n, "psnr": (10 * torch.log10(4.0 / mse.clamp_min(1e-10))).clamp_max(100),
            "ssim": ssim(lower_half(pred), lower_half(gt), reduce=False)}


@torch.no_grad()
def evaluate_model(model: LipSyncModel, rows: ManifestRows, d: LipSyncDataConfig, ev: EvalSection, *,
                   stage: str = "unet", syncnet: torch.nn.Module | None = None) -> dict[str, float]:
    """Held-out metrics (see the module docstring) over the first window of up to ``ev.clips`` clips."""
    from avsuite.inference.lipsync import generate

    model = model.eval()
    rows = rows.select(list(range(min(ev.clips, len(rows)))))
    got: dict[str, list[Tensor]] = {}
    add = lambda k, v: got.setdefault(k, []).append(v.detach().float().reshape(-1).cpu())  # noqa: E731
    for batch in eval_reader(rows, replace(d, seed=d.seed + 1), 1):
        x, ref, mel = _flat(batch.frames), _flat(batch.ref), _flat(batch.mel)
        keep = model.mask
        recon = model.decode(model.encode(x)).clamp(-1, 1)
        for k, v in _mouth_scores(recon * (1 - keep) + x * keep, x, keep).items():
            add(f"vae_{k}", v)
        if stage == "vae":
            continue
        for k, v in _mouth_scores(ref * (1 - keep) + x * keep, x, keep).items():
            add(f"ref_{k}", v)
        gen = generate(model, x, ref, mel, steps=ev.steps, guidance=ev.guidance,
                       generator=torch.Generator().manual_seed(d.seed))
        for k, v in _mouth_scores(gen, x, keep).items():
            add(f"mouth_{k}", v)
        if syncnet is not None:
            unit = syncnet.cfg.pixel_range == "unit"
            a = syncnet.encode_mel(_flat(batch.sync_mel))
            for name, pix in (("sync_cos", gen), ("sync_cos_gt", x)):
                v = syncnet.encode_frames(sync_windows(pix, d.n_frames, d.sync_offsets(), d.sync_frames, unit))
                add(name, sync_cosine(v, a))
    out = {k: float(torch.cat(v).mean()) for k, v in got.items()}
    if "sync_cos" in got:
        out["sync_acc"] = float((torch.cat(got["sync_cos"]) > 0.5).float().mean())
        out["sync_acc_gt"] = float((torch.cat(got["sync_cos_gt"]) > 0.5).float().mean())
    out["eval_clips"] = float(len(got.get("vae_l1", [])))
    return out


def evaluate(model_dir: Path, data: Path, out: Path, *, syncnet: Path | None = None, clips: int | None = None,
             steps: int | None = None, split: str | None = None, ceiling: bool = False) -> dict[str, float]:
    """Score a lip-sync model dir on an AV manifest (its ``split`` rows; default: ``test``, else
    ``valid``, else all). With ``syncnet`` (an evaluator SyncNet model dir): the LSE table of
    :mod:`avsuite.eval.lipsync` (``OUT/metrics.json`` + ``OUT/table.md``; ``ceiling``: only its rows
    that need no UNet)."""
    from avsuite.checkpoint import read_model_config
    from avsuite.models.registry import load_model

    ffmpeg_logs_without_the_gil()          # lightning turned PyAV's log bridge on: a decoder-thread deadlock
    if syncnet is not None:
        from avsuite.eval.lipsync import run_lse_table

        return run_lse_table(Path(model_dir), Path(data), Path(syncnet), Path(out), clips=clips, steps=steps,
                             split=split, ceiling=ceiling)
    if ceiling:
        raise ValueError("--ceiling needs --syncnet (an evaluator SyncNet: it selects rows of the LSE table)")
    model = load_model(model_dir, kind="lipsync")
    conf = read_model_config(model_dir)
    m = model.cfg
    mouth = conf.get("mouth_crop")
    d = LipSyncDataConfig(manifest=str(data), n_frames=m.n_frames, face_size=m.face_size, mel_steps=m.mel_steps,
                          crop_box=tuple(conf.get("crop_box", (0.0, 0.0, 1.0, 1.0))),
                          mouth_crop=tuple(mouth) if mouth else None)
    rows = ManifestRows.from_path(data)
    if split is not None:
        idx = _split(rows, (split,))
        if not idx:
            raise ValueError(f"{data}: no row with split {split!r}")
        held = rows.select(idx)
    else:
        held = heldout(rows) or rows
    metrics = evaluate_model(model, held, d, EvalSection(), stage=str(conf.get("stage", "unet")))
    write_metrics(Path(out), metrics)
    return metrics


__all__ = ["Config", "ModelSection", "LossSection", "EvalSection", "LipSyncModule", "train", "evaluate",
           "evaluate_model", "measure_scaling", "sync_windows", "load", "crop_mismatch", "load_syncnet"]
