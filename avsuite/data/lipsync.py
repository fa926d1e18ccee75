"""Lip-sync generator batches: the video stage of the one reader (:mod:`avsuite.data.av`), with
a target window, a reference window and per-frame mel windows.

    reader = Reader(manifest, cfg, train=True, collate=collate_lipsync, load=LipSyncLoad())
    batch = next(iter(reader))     # LipSyncBatch: frames / ref (B, T, 3, H, W) in [-1, 1],
                                   # mel (B, T, 80, S), sync_mel (B, W, 1, 80, M)

Per item (row i, generator seeded by (seed, epoch, batch, slot) as every stage of the reader):

- a window start s uniform over the starts whose ``n_frames`` frames exist and whose SyncNet
  sub-windows have their mel; frames s..s+T-1 are decoded, cropped to the face box
  (:func:`~avsuite.data.av.crop_faces`, as SyncNet's data) or, with ``mouth_crop``, to a square
  around the row's ``mouth`` (:func:`mouth_box`), and scaled to [-1, 1];
- reference frames (LatentSync): another window of the same clip starting >= ``min_ref_gap``
  frames away (the farthest window when the clip is too short for that);
- ``mel``: for each frame its ``mel_steps`` Wav2Lip mel columns centred on the frame
  (:func:`frame_mel_windows`) -> the generator's audio tokens;
- ``sync_mel``: the mel window (``sync_mel_steps`` from ``int(80 f / fps)``) of each
  ``sync_frames``-frame sub-window at offsets 0, k, 2k, ... -> the SyncNet loss.

:class:`LatentLoad` does the same on whole clips cached in memory (crops, mel and, for the UNet
stage, the frozen VAE's latents): no video decoding and no VAE encoder in a training step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from avsuite.audio.wav2lip_mel import mel_start, wav2lip_mel
from avsuite.data.av import AVDataConfig, clip_box, crop_faces, decode_speech, decode_video, mouth_box
from avsuite.data.batches import _Movable
from avsuite.data.pipeline import ItemContext


@dataclass(frozen=True, kw_only=True)
class LipSyncDataConfig(AVDataConfig):
    """AVDataConfig (16-frame windows; ``mel_steps`` = mel columns per frame for the audio tokens,
    centred on the frame) + the SyncNet sub-windows and the reference window."""
    n_frames: int = 16
    #: SyncNet sub-windows: frames and mel columns each (the SyncNet's preset)
    sync_frames: int = 5
    sync_mel_steps: int = 16
    #: reference window at least this many frames from the target window (LatentSync: 16)
    min_ref_gap: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.face_size < 8:
            raise ValueError("face_size must be >= 8 (the VAE downsamples)")
        if not 1 <= self.sync_frames <= self.n_frames or self.sync_mel_steps < 1:
            raise ValueError("need 1 <= sync_frames <= n_frames and sync_mel_steps >= 1")

    def sync_offsets(self) -> list[int]:
        return list(range(0, self.n_frames - self.sync_frames + 1, self.sync_frames))


def frame_mel_windows(mel: Tensor, n_frames: int, fps: float, steps: int = 16, start: int = 0) -> Tensor:
    """``(80, F)`` Wav2Lip mel of a clip -> ``(n_frames, 80, steps)``: for video frame ``start + i``
    the ``steps`` columns from ``mel_start(start + i) + 1 - steps // 2`` (centred on the frame),
    the mel padded with silence (-4) past both ends."""
    m = F.pad(mel, (steps, 2 * steps), value=-4.0)
    idx = [max(0, mel_start(start + i, fps) + 1 - steps // 2 + steps) for i in range(n_frames)]
    return torch.stack([m[:, s:s + steps] for s in idx])


def valid_starts(n_frames: int, n_mel: int, fps: float, cfg: LipSyncDataConfig) -> int:
    """Number of window starts s (0..n-1) with all frames and every SyncNet sub-window's mel."""
    n = max(0, n_frames - cfg.n_frames + 1)
    last = cfg.sync_offsets()[-1]
    while n > 0 and mel_start(n - 1 + last, fps) + cfg.sync_mel_steps > n_mel:
        n -= 1
    return n


def ref_start(gen: torch.Generator, s: int, n: int, gap: int) -> int:
    """A start in [0, n) at least ``gap`` from ``s``; the farthest one when there is none."""
    far = [t for t in range(n) if abs(t - s) >= gap]
    if far:
        return far[int(torch.randint(len(far), (), generator=gen))]
    return max(range(n), key=lambda t: (abs(t - s), -t))


#: the generator crops exactly as the SyncNet stage does (one function: the expert used as its loss
#: sees the same box)
face_box = clip_box


def to_signed(faces: Tensor) -> Tensor:
    """``(..., H, W, 3)`` uint8 -> ``(..., 3, H, W)`` float in [-1, 1]."""
    return faces.movedim(-1, -3).float() / 127.5 - 1.0


@dataclass
class LipSyncLoad:
    """The reader's ``load(ctx, item, gen)`` for the lip-sync generator (see the module doc)."""

    def __call__(self, ctx: ItemContext, item: Any, gen: torch.Generator) -> dict[str, Any] | None:
        cfg: LipSyncDataConfig = ctx.cfg             # type: ignore[assignment]
        i = int(item)
        row = ctx.row(i)
        wave = decode_speech(ctx, i, gen)
        if wave is None:
            return None
        fps = float(row.get("fps") or 25.0)
        n_frames = int(row.get("n_frames") or math.floor(wave.numel() / cfg.sample_rate * fps))
        mel = wav2lip_mel(wave)
        n = valid_starts(n_frames, mel.shape[-1], fps, cfg)
        if n < 1:
            ctx.skip("too_short", f"{row['id']}: shorter than one {cfg.n_frames}-frame window")
            return None
        s = int(torch.randint(n, (), generator=gen))
        r = ref_start(gen, s, n, cfg.min_ref_gap)
        lo, hi = min(s, r), max(s, r) + cfg.n_frames
        frames = decode_video(ctx, i, lo, hi - lo)
        if frames is None:
            return None
        box = face_box(row, frames.shape[1:3], cfg)
        if box is None:
            ctx.skip("no_mouth", f"{row['id']}: data.mouth_crop needs the row's 'mouth' [cx, cy, half_width]")
            return None
        faces = crop_faces(frames, box, (cfg.face_size,) * 2)
        sync = [mel[:, mel_start(s + o, fps):mel_start(s + o, fps) + cfg.sync_mel_steps] for o in cfg.sync_offsets()]
        return {"id": row["id"], "faces": faces[s - lo:s - lo + cfg.n_frames], "ref": faces[r - lo:r - lo + cfg.n_frames],
                "mel": frame_mel_windows(mel, cfg.n_frames, fps, cfg.mel_steps, start=s),
                "sync_mel": torch.stack(sync)[:, None], "start": s, "ref_start": r}


@dataclass(frozen=True)
class LipSyncBatch(_Movable):
    """``frames``, ``ref`` ``(B, T, 3, H, W)`` in [-1, 1]; ``mel (B, T, 80, S)``;
    ``sync_mel (B, W, 1, 80, M)`` (one window per SyncNet sub-window); ``starts (B,)``."""
    frames: Tensor
    ref: Tensor
    mel: Tensor
    sync_mel: Tensor
    starts: Tensor
    ids: list[str]


def collate_lipsync(examples: list[dict[str, Any]]) -> LipSyncBatch:
    return LipSyncBatch(frames=to_signed(torch.stack([e["faces"] for e in examples])),
                        ref=to_signed(torch.stack([e["ref"] for e in examples])),
                        mel=torch.stack([e["mel"] for e in examples]),
                        sync_mel=torch.stack([e["sync_mel"] for e in examples]),
                        starts=torch.tensor([e["start"] for e in examples]), ids=[e["id"] for e in examples])


# ----------------------------------------------------------------------------- cached latents
@dataclass
class LatentLoad:
    """The reader's ``load`` on a cache of whole clips (built once by the recipe):
    ``cache[id] = {"faces" (T, H, W, 3) uint8 crops, "mel" (80, F), "fps"}`` and, for the UNet stage
    (the VAE is frozen there), ``"latents", "masked" (T, 4, h, w)``: unscaled posterior means of the
    frames and of the masked frames. Same window / reference / mel logic as :class:`LipSyncLoad`,
    no video decoding; :func:`collate_latents` makes a :class:`LatentBatch` (with latents) or a
    :class:`LipSyncBatch` (faces only)."""
    cache: dict[str, dict[str, Any]]

    def __call__(self, ctx: ItemContext, item: Any, gen: torch.Generator) -> dict[str, Any] | None:
        cfg: LipSyncDataConfig = ctx.cfg             # type: ignore[assignment]
        row = ctx.row(int(item))
        c = self.cache.get(row["id"])
        if c is None:
            ctx.skip("not_cached", f"{row['id']}: not in the latent cache")
            return None
        fps, mel, t = float(c["fps"]), c["mel"], cfg.n_frames
        n = valid_starts(len(c["faces"]), mel.shape[-1], fps, cfg)
        if n < 1:
            ctx.skip("too_short", f"{row['id']}: shorter than one {t}-frame window")
            return None
        s = int(torch.randint(n, (), generator=gen))
        r = ref_start(gen, s, n, cfg.min_ref_gap)
        sync = [mel[:, mel_start(s + o, fps):mel_start(s + o, fps) + cfg.sync_mel_steps] for o in cfg.sync_offsets()]
        out = {"id": row["id"], "faces": c["faces"][s:s + t], "mel": frame_mel_windows(mel, t, fps, cfg.mel_steps, start=s),
               "sync_mel": torch.stack(sync)[:, None], "start": s, "ref_start": r}
        if c.get("latents") is None:
            return {**out, "ref": c["faces"][r:r + t]}
        return {**out, "latents": c["latents"][s:s + t], "masked": c["masked"][s:s + t], "ref_latents": c["latents"][r:r + t]}


@dataclass(frozen=True)
class LatentBatch(_Movable):
    """``latents``, ``masked``, ``ref`` ``(B, T, 4, h, w)`` unscaled VAE latents (frames, masked
    frames, reference frames); ``frames (B, T, 3, H, W)`` in [-1, 1]; ``mel``, ``sync_mel``,
    ``starts`` as :class:`LipSyncBatch`."""
    latents: Tensor
    masked: Tensor
    ref: Tensor
    frames: Tensor
    mel: Tensor
    sync_mel: Tensor
    starts: Tensor
    ids: list[str]


def collate_latents(examples: list[dict[str, Any]]) -> LatentBatch | LipSyncBatch:
    if "latents" not in examples[0]:
        return collate_lipsync(examples)
    stack = lambda k: torch.stack([e[k] for e in examples])  # noqa: E731
    return LatentBatch(latents=stack("latents"), masked=stack("masked"), ref=stack("ref_latents"),
                       frames=to_signed(stack("faces")), mel=stack("mel"), sync_mel=stack("sync_mel"),
                       starts=torch.tensor([e["start"] for e in examples]), ids=[e["id"] for e in examples])


__all__ = ["LipSyncDataConfig", "LipSyncLoad", "LipSyncBatch", "collate_lipsync", "frame_mel_windows",
           "valid_starts", "ref_start", "to_signed", "mouth_box", "face_box", "LatentLoad", "LatentBatch",
           "collate_latents"]
