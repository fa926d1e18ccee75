"""The lip-sync generator: an audio-conditioned latent-diffusion UNet (LatentSync's layout, 2-D).

    model = LipSyncModel(lipsync_preset("tiny"))
    tokens = model.tokens(mel_windows)                  # (N, 80, S) -> (N, K, D) per video frame
    cond = model.condition(frames, ref)                 # (N, 3, H, W) x2 in [-1, 1] -> (N, 9, h, w)
    eps = model.predict(noisy, t, cond, tokens)         # (N, 4, h, w)
    sched = make_scheduler(model.cfg)                   # DDIM with LatentSync's config

Frames of a clip are folded into the batch (``N = B * T``). The UNet input is LatentSync's 13
channels: ``cat([noisy latent (4), mask (1), masked-frame latent (4), reference latent (4)])``;
mask = :func:`avsuite.video.align.lower_face_mask` (1 = keep, 0 = regenerate) nearest-resized to
the latent grid. Components are diffusers' ``AutoencoderKL`` / ``UNet2DConditionModel`` /
``DDIMScheduler`` as they are. Latents are ``vae_mean * scaling_factor``; the factor is measured
from data (1 / std of the latents) when the UNet stage starts and kept in the model dir config.

Audio: :class:`MelTokens` turns each frame's Wav2Lip mel window (``S`` = 16 frames = 0.2 s,
centred on the frame, see :func:`avsuite.data.lipsync.frame_mel_windows`) into ``K`` cross-attention tokens (``S / K``
mel columns each -> linear -> + position -> MLP -> LayerNorm). (LatentSync's Whisper-tiny tokens,
50 x 384 per frame, are not wired here: the interface is ``tokens(mel_windows)``.)

Presets: ``tiny`` (CPU: 64 px, /4 VAE -> 16 x 16 latents, UNet (32, 64, 128)), ``mouth32`` (CPU: a
32 px crop around the mouth, 8 x 8 latents, the same UNet, 8-frame windows; 2.5x cheaper per frame),
``mouth32_l16`` (``mouth32`` with a /2 VAE: 16 x 16 latents) and
``latentsync_256`` (GPU: 256 px, SD-1.5 widths, /8 VAE -> 32 x 32 latents, tokens of 384).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: LatentSync configs/scheduler_config.json (SD-1.5's DDIM)
LATENTSYNC_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "steps_offset": 1, "clip_sample": False, "set_alpha_to_one": False, "prediction_type": "epsilon"}


@dataclass(frozen=True, kw_only=True)
class LipSyncConfig:
    #: aligned face crop side (pixels); frames per clip window (LatentSync: 16)
    face_size: int = 64
    n_frames: int = 16
    #: AutoencoderKL kwargs (diffusers names); UNet2DConditionModel kwargs (in/out channels fixed 13/4)
    vae: dict[str, Any] = field(default_factory=dict)
    unet: dict[str, Any] = field(default_factory=dict)
    #: audio tokens: mel columns per frame window, tokens per frame, token width (= cross_attention_dim)
    mel_steps: int = 16
    n_tokens: int = 4
    token_dim: int = 64
    #: latents = vae_mean * scaling_factor (measured from data; 1.0 until then)
    scaling_factor: float = 1.0
    scheduler: dict[str, Any] = field(default_factory=lambda: dict(LATENTSYNC_SCHEDULER))

    def __post_init__(self) -> None:
        if self.mel_steps % self.n_tokens:
            raise ValueError(f"mel_steps ({self.mel_steps}) must be a multiple of n_tokens ({self.n_tokens})")
        if self.unet.get("cross_attention_dim", self.token_dim) != self.token_dim:
            raise ValueError("unet.cross_attention_dim must equal token_dim")
        if self.face_size % self.downsample:
            raise ValueError(f"face_size {self.face_size} is not a multiple of the VAE factor {self.downsample}")
        if not self.scaling_factor > 0:
            raise ValueError(f"scaling_factor must be > 0, got {self.scaling_factor}")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.vae.get("block_out_channels", (1,))) - 1)

    @property
    def latent_size(self) -> int:
        return self.face_size // self.downsample


def _vae(block_out: tuple[int, ...], layers: int, groups: int, size: int) -> dict[str, Any]:
    n = len(block_out)
    return dict(block_out_channels=block_out, down_block_types=("DownEncoderBlock2D",) * n,
                up_block_types=("UpDecoderBlock2D",) * n, layers_per_block=layers, latent_channels=4,
                norm_num_groups=groups, sample_size=size)


def _unet(block_out: tuple[int, ...], layers: int, dim: int, heads: int, groups: int, size: int) -> dict[str, Any]:
    n = len(block_out)
    return dict(block_out_channels=block_out, layers_per_block=layers, cross_attention_dim=dim,
                attention_head_dim=heads, norm_num_groups=groups, sample_size=size,
                down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1))


def lipsync_preset(name: str, **overrides: Any) -> LipSyncConfig:
    """``tiny`` | ``mouth32`` | ``mouth32_l16`` | ``micro`` | ``latentsync_256`` (see the module
    docstring); ``overrides`` replace fields."""
    presets = {
        "tiny": dict(face_size=64, n_frames=16, mel_steps=16, n_tokens=4, token_dim=64,
                     vae=_vae((32, 64, 64), 1, 16, 64), unet=_unet((32, 64, 128), 1, 64, 8, 16, 16)),
        # CPU training on a tight mouth crop (data.mouth_crop): 32 px, micro's /4 VAE -> 8 x 8 latents,
        # tiny's UNet, 8-frame windows (frames are independent in a 2-D UNet: fewer per window = more clips)
        "mouth32": dict(face_size=32, n_frames=8, mel_steps=16, n_tokens=4, token_dim=64,
                        vae=_vae((16, 32, 32), 1, 8, 32), unet=_unet((32, 64, 128), 1, 64, 8, 16, 8)),
        # mouth32 with a /2 VAE -> 16 x 16 x 4 latents (the /4 one blurred the mouth below what a
        # SyncNet reads: README lip-sync table, VAE-ceiling row); the UNet has no attention at 16 x 16
        # (cross-attention on the audio at 8 x 8 and 4 x 4: 1.6x cheaper per step on CPU)
        "mouth32_l16": dict(face_size=32, n_frames=8, mel_steps=16, n_tokens=4, token_dim=64,
                            vae=_vae((32, 64), 1, 16, 32),
                            unet={**_unet((32, 64, 128), 1, 64, 8, 16, 16),
                                  "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                                  "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")}),
        # tests / smoke runs: the same code at a quarter of tiny's widths
        "micro": dict(face_size=64, n_frames=16, mel_steps=16, n_tokens=4, token_dim=32,
                      vae=_vae((16, 32, 32), 1, 8, 64), unet=_unet((16, 32, 32), 1, 32, 8, 8, 16)),
        "latentsync_256": dict(face_size=256, n_frames=16, mel_steps=16, n_tokens=8, token_dim=384,
                               vae=_vae((128, 256, 512, 512), 2, 32, 256),
                               unet=_unet((320, 640, 1280, 1280), 2, 384, 8, 32, 32)),
    }
    if name not in presets:
        raise KeyError(f"unknown lip-sync preset {name!r}; choose from: {', '.join(presets)}")
    return LipSyncConfig(**{**presets[name], **overrides})


def make_scheduler(cfg: LipSyncConfig):
    """A fresh ``DDIMScheduler`` with the model's (LatentSync's) config."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**cfg.scheduler)


# ----------------------------------------------------------------------------- audio
class MelTokens(nn.Module):
    """``(N, 80, S)`` mel windows -> ``(N, K, D)`` tokens (``S / K`` columns per token)."""

    def __init__(self, n_mels: int, steps: int, n_tokens: int, dim: int):
        super().__init__()
        self.n_tokens, self.chunk = n_tokens, steps // n_tokens
        self.proj = nn.Linear(n_mels * self.chunk, dim)
        self.pos = nn.Parameter(torch.zeros(1, n_tokens, dim))
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, mel: Tensor) -> Tensor:
        n, m, s = mel.shape
        x = mel.reshape(n, m, self.n_tokens, self.chunk).permute(0, 2, 1, 3).reshape(n, self.n_tokens, -1)
        x = self.proj(x / 4.0) + self.pos
        return self.norm(x + self.mlp(x))


# ----------------------------------------------------------------------------- the model
class LipSyncModel(nn.Module):
    """VAE + 13-channel UNet + mel tokens (see the module docstring)."""

    def __init__(self, cfg: LipSyncConfig):
        super().__init__()
        from diffusers import AutoencoderKL, UNet2DConditionModel

        from avsuite.video.align import lower_face_mask

        self.cfg = cfg
        self.vae = AutoencoderKL(**cfg.vae)
        self.unet = UNet2DConditionModel(in_channels=13, out_channels=4, **cfg.unet)
        self.audio = MelTokens(80, cfg.mel_steps, cfg.n_tokens, cfg.token_dim)
        mask = torch.from_numpy(lower_face_mask(cfg.face_size))[None, None]
        self.register_buffer("mask", mask, persistent=False)                    # (1, 1, H, W) 1 = keep
        self.register_buffer("scaling", torch.tensor(float(cfg.scaling_factor)))

    @property
    def latent_mask(self) -> Tensor:
        """``(1, 1, h, w)`` the mask nearest-resized to the latent grid."""
        return F.interpolate(self.mask, size=(self.cfg.latent_size,) * 2, mode="nearest")

    def encode(self, pixels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``(N, 3, H, W)`` in [-1, 1] -> ``(N, 4, h, w)`` scaled latents (the posterior mean, or a
        sample when ``generator`` is given)."""
        dist = self.vae.encode(pixels).latent_dist
        z = dist.mean if generator is None else dist.sample(generator)
        return z * self.scaling

    def decode(self, latents: Tensor) -> Tensor:
        """``(N, 4, h, w)`` scaled latents -> ``(N, 3, H, W)`` (about [-1, 1])."""
        return self.vae.decode(latents / self.scaling).sample

    def tokens(self, mel_windows: Tensor) -> Tensor:
        """``(N, 80, S)`` -> ``(N, K, D)``."""
        return self.audio(mel_windows)

    def condition(self, frames: Tensor, ref: Tensor) -> Tensor:
        """Frames and reference frames ``(N, 3, H, W)`` in [-1, 1] -> ``(N, 9, h, w)`` =
        ``[mask, masked-frame latent, reference latent]``."""
        return self.condition_latents(self.encode(frames * self.mask), self.encode(ref))

    def condition_latents(self, masked: Tensor, refs: Tensor) -> Tensor:
        """Scaled latents of the masked frames and of the references ``(N, 4, h, w)`` -> ``(N, 9, h, w)``
        (:meth:`condition` without the encoder: the recipe's cached-latent path)."""
        return torch.cat([self.latent_mask.expand(len(masked), -1, -1, -1).to(masked.dtype), masked, refs], dim=1)

    def predict(self, noisy: Tensor, t: Tensor, cond: Tensor, tokens: Tensor) -> Tensor:
        """``noisy (N, 4, h, w)``, ``t`` scalar or ``(N,)``, ``cond (N, 9, h, w)``, ``tokens (N, K, D)``
        -> predicted noise ``(N, 4, h, w)``."""
        return self.unet(torch.cat([noisy, cond], dim=1), t, encoder_hidden_states=tokens).sample

    def with_scaling(self, factor: float) -> "LipSyncModel":
        self.cfg = replace(self.cfg, scaling_factor=float(factor))
        self.scaling.fill_(float(factor))
        return self

    def export_config(self) -> dict[str, Any]:
        from avsuite.config import to_dict

        cfg = replace(self.cfg, scaling_factor=float(self.scaling))
        return {"kind": "lipsync", "model": to_dict(cfg)}



def config_from_dict(d: dict[str, Any]) -> LipSyncConfig:
    tup = lambda sub: {k: tuple(v) if isinstance(v, list) else v for k, v in sub.items()}  # noqa: E731
    return LipSyncConfig(**{**d, "vae": tup(d.get("vae", {})), "unet": tup(d.get("unet", {}))})


def model_from_state(state: dict[str, Tensor], config: dict[str, Any]) -> LipSyncModel:
    """The model dir loader (``kind: lipsync``) used by :mod:`avsuite.models.registry`."""
    model = LipSyncModel(config_from_dict(config["model"]))
    model.load_state_dict(state, strict=True)
    return model.eval()


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["LipSyncConfig", "LipSyncModel", "MelTokens", "lipsync_preset", "make_scheduler",
           "model_from_state", "config_from_dict", "LATENTSYNC_SCHEDULER", "n_params"]
