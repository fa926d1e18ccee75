"""The lipsync UNet stage on cached VAE latents (``cache_latents: true``).

The VAE is frozen in the UNet stage, so every frame's latent (and its masked frame's latent) is
computed once: :func:`build_latent_cache` decodes each training clip, crops it as the data stage
does (:func:`avsuite.data.lipsync.face_box`), encodes frames and masked frames in chunks (posterior
means, unscaled) and keeps the uint8 crops (pixel losses) and the clip's Wav2Lip mel. The reader
then runs :class:`avsuite.data.lipsync.LatentLoad` on it: same windows, references and mel windows
as the pixel path, no video decoding and no VAE encoder in the step. Saved as ``OUT/latent_cache.pt``
(keyed by the VAE weights' checksum) and reused by ``--resume``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from avsuite.data.av import read_clips
from avsuite.data.lipsync import LipSyncDataConfig, face_box, to_signed
from avsuite.data.rows import ManifestRows
from avsuite.models.lipsync import LipSyncModel


def vae_checksum(model: LipSyncModel) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.vae.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_clip(model: LipSyncModel, faces: Tensor, chunk: int = 128) -> tuple[Tensor, Tensor]:
    """``faces (T, H, W, 3)`` uint8 -> unscaled posterior means ``(T, 4, h, w)`` of the frames and of
    the masked frames (``frames * mask``, as :meth:`LipSyncModel.condition`)."""
    lat, masked = [], []
    for a in range(0, len(faces), chunk):
        x = to_signed(faces[a:a + chunk])
        lat.append(model.vae.encode(x).latent_dist.mean)
        masked.append(model.vae.encode(x * model.mask).latent_dist.mean)
    return torch.cat(lat), torch.cat(masked)


@torch.no_grad()
def build_latent_cache(model: LipSyncModel, rows: ManifestRows, d: LipSyncDataConfig,
                       path: Path | None = None, *, encode: bool = True) -> dict[str, dict[str, Any]]:
    """``{id: {"faces", "mel", "fps"[, "latents", "masked"]}}`` for every readable row (see the module
    doc; ``encode=False``: crops only, for the VAE stage); loaded from / saved to ``path`` when given
    (rebuilt when the VAE or the crop size differs)."""
    from avsuite.audio.wav2lip_mel import wav2lip_mel

    key = vae_checksum(model) if encode else "crops"
    if path is not None and Path(path).is_file():
        saved = torch.load(path, weights_only=True)
        if saved.get("vae") == key and saved.get("face_size") == d.face_size:
            return saved["clips"]
    was = model.training
    model.eval()
    cache: dict[str, dict[str, Any]] = {}
    for row, faces, wave, fps in read_clips(rows, d, face_box, (d.face_size,) * 2):
        entry = {"faces": faces, "mel": wav2lip_mel(wave), "fps": fps}
        if encode:
            entry["latents"], entry["masked"] = encode_clip(model, faces)
        cache[row["id"]] = entry
    model.train(was)
    if path is not None:
        torch.save({"vae": key, "face_size": d.face_size, "clips": cache}, path)
    return cache


def cached_scaling(cache: dict[str, dict[str, Any]]) -> float:
    """1 / std of every cached (unscaled) frame latent."""
    if not cache:
        raise ValueError("no readable training clip to measure the VAE scaling factor on")
    z = torch.cat([c["latents"].flatten() for c in cache.values()])
    return float(1.0 / z.std().clamp_min(1e-6))


__all__ = ["build_latent_cache", "cached_scaling", "encode_clip", "vae_checksum"]
