"""Lip-sync generator losses (LatentSync's objective, with two documented deviations).

    x0 = one_step_x0(noisy, eps_pred, abar_t)                 # (N, 4, h, w)
    out = lipsync_loss(eps_pred, eps, pred=decoded, target=frames, sync_cos=cos, sync_on=t < 500)
    out["loss"], out["mse"], out["l1"], out["ssim"], out["sync"]

* ``mse``: epsilon-prediction MSE (weight 1, LatentSync stage 1 and 2).
* ``l1`` + ``ssim`` on the LOWER HALF of the one-step x0 decoded by the frozen VAE, in place of
  LatentSync's LPIPS (no VGG weights offline); ``ssim`` enters the loss as ``1 - SSIM``.
* ``sync``: BCE(cos, 1) of a frozen SyncNet on the decoded lower halves vs the mel window
  (LatentSync weight 0.05). Deviation: applied only to items whose timestep is below a threshold
  (``sync_on``), since x0 from a very noisy x_t is not a face and its SyncNet score is noise.
* :func:`audio_dropout` zeroes the tokens of a random ``p`` of the items, so classifier-free
  guidance (uncond = zero tokens) has a trained unconditional branch (LatentSync trains none).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def one_step_x0(noisy: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """``x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)``; ``alpha_bar`` scalar or ``(N,)``."""
    a = alpha_bar.to(noisy.dtype).reshape(-1, *([1] * (noisy.dim() - 1)))
    return (noisy - (1 - a).sqrt() * eps) / a.sqrt()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """``(size, size)`` normalised Gaussian (Wang et al. 2004: 11 x 11, sigma 1.5)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def ssim(x: Tensor, y: Tensor, *, data_range: float = 2.0, size: int = 11, sigma: float = 1.5,
         reduce: bool = True) -> Tensor:
    """Mean SSIM of ``(N, C, H, W)`` images (Gaussian window, valid convolution, K1 .01, K2 .03):
    a scalar, or ``(N,)`` with ``reduce=False``. Windows larger than the image shrink to fit."""
    size = min(size, x.shape[-1], x.shape[-2])
    c = x.shape[1]
    w = gaussian_window(size, sigma).to(x.device, x.dtype).expand(c, 1, size, size)
    blur = lambda z: F.conv2d(z, w, groups=c)  # noqa: E731
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    per = s.flatten(1).mean(1)
    return per.mean() if reduce else per


def psnr(x: Tensor, y: Tensor, *, data_range: float = 2.0) -> Tensor:
    """``(N, ...)`` -> ``(N,)`` PSNR in dB (capped at 100 for identical images)."""
    mse = (x - y).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-10))).clamp_max(100.0)


def lower_half(x: Tensor) -> Tensor:
    """``(N, C, H, W)`` -> ``(N, C, H - H // 2, W)``."""
    return x[..., x.shape[-2] // 2:, :]


def audio_dropout(tokens: Tensor, p: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Zero the ``(N, K, D)`` tokens of each item with probability ``p`` -> (tokens, kept ``(N,)`` bool)."""
    if p <= 0:
        return tokens, torch.ones(len(tokens), dtype=torch.bool, device=tokens.device)
    keep = torch.rand(len(tokens), generator=generator, device="cpu" if generator is None else generator.device) >= p
    keep = keep.to(tokens.device)
    return tokens * keep[:, None, None].to(tokens.dtype), keep


def lipsync_loss(eps_pred: Tensor, eps: Tensor, *, pred: Tensor | None = None, target: Tensor | None = None,
                 sync_cos: Tensor | None = None, sync_on: Tensor | None = None, w_pixel: float = 0.1,
                 w_ssim: float = 0.1, w_sync: float = 0.05) -> dict[str, Tensor]:
    """``eps_pred, eps (N, 4, h, w)``; optional ``pred, target (N, 3, H, W)`` decoded x0 and the
    frames (lower halves are compared); ``sync_cos (M,)`` SyncNet cosines of generated windows and
    ``sync_on (M,)`` bool (windows whose timestep is below the threshold) ->
    ``{"loss", "mse", "l1", "ssim", "sync"}`` (absent parts are 0; ``ssim`` is the SSIM itself)."""
    mse = F.mse_loss(eps_pred.float(), eps.float())
    zero = mse.new_zeros(())
    total, l1, sim, sync = mse, zero, zero, zero
    if pred is not None and target is not None:
        p, t = lower_half(pred.float()), lower_half(target.float())
        l1 = (p - t).abs().mean()
        sim = ssim(p, t)
        total = total + w_pixel * l1 + w_ssim * (1 - sim)
    if sync_cos is not None and sync_cos.numel():
        on = torch.ones_like(sync_cos, dtype=torch.bool) if sync_on is None else sync_on
        if on.any():
            with torch.autocast(device_type=sync_cos.device.type, enabled=False):
                c = sync_cos.float()[on].clamp(1e-7, 1 - 1e-7)
                sync = F.binary_cross_entropy(c, torch.ones_like(c))
            total = total + w_sync * sync
    return {"loss": total, "mse": mse.detach(), "l1": l1.detach(), "ssim": sim.detach(), "sync": sync.detach()}


def vae_loss(recon: Tensor, x: Tensor, mean: Tensor, logvar: Tensor, *, kl_weight: float = 1e-6,
             w_ssim: float = 0.1, weight: Tensor | None = None) -> dict[str, Tensor]:
    """AutoencoderKL training: L1 + ``w_ssim (1 - SSIM)`` + ``kl_weight`` KL(q || N(0, I))
    (summed over latent elements, mean over items) -> ``{"loss", "l1", "ssim", "kl"}``.
    ``weight`` (broadcastable to ``recon``, >= 0, e.g. ``(1, 1, H, W)`` heavier on the mouth): the L1
    is ``sum(w |recon - x|) / sum(w)`` (equal to the plain mean for a constant weight)."""
    err = (recon.float() - x.float()).abs()
    if weight is None:
        l1 = err.mean()
    else:
        if weight.min() < 0 or not weight.sum() > 0:
            raise ValueError("vae_loss weight must be >= 0 with a positive sum")
        w = weight.float().expand_as(err)
        l1 = (err * w).sum() / w.sum()
    sim = ssim(recon.float(), x.float())
    kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1 - logvar.float()).flatten(1).sum(1).mean()
    total = l1 + w_ssim * (1 - sim) + kl_weight * kl
    return {"loss": total, "l1": l1.detach(), "ssim": sim.detach(), "kl": kl.detach()}


def psnr_from_mse(mse: float, data_range: float = 2.0) -> float:
    return 100.0 if mse <= 1e-10 else min(100.0, 10 * math.log10(data_range ** 2 / mse))


__all__ = ["one_step_x0", "ssim", "psnr", "gaussian_window", "lower_half", "audio_dropout", "lipsync_loss",
           "vae_loss", "psnr_from_mse"]
