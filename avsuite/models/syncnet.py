"""SyncNet experts: a face-window encoder and a mel-window encoder whose L2-normalised embeddings
have a high cosine when the mouth moves with the audio.

    model = SyncNet(syncnet_preset("tiny"))
    v, a = model(frames, mel)        # frames (B, 3*T, H, W) lower half of T faces, mel (B, 1, 80, S)
                                     # -> v, a (B, D), unit norm, non-negative (cosine in [0, 1])

Presets (explicit tables, one code path):

- ``wav2lip``: Wav2Lip's SyncNet_color (5 frames, (B,15,48,96) + (B,1,80,16), Conv+BN+ReLU with
  residual blocks, 512-d, 16.4 M parameters). Frames are RGB in [0, 1] (Wav2Lip reads BGR /255).
- ``stable_syncnet``: LatentSync's 16-frame pixel StableSyncNet (``syncnet_16_pixel_attn``):
  two DownEncoder2D (GroupNorm/SiLU residual blocks with strided asymmetric-pad downsampling,
  self-attention + GEGLU at some levels, GroupNorm + ReLU out), (B,48,128,256) + (B,1,80,52),
  2048-d. Frames in [-1, 1]. GPU only (instantiate on the meta device for shapes).
- ``tiny``: the CPU preset: Wav2Lip's layout, 5 frames of a 64 px face's lower half
  (B,15,32,64) + (B,1,80,16), ~2 M parameters, 256-d.
- ``mouth32``: ``tiny`` for the lip-sync generator's 32 px mouth crops (``configs/lipsync/tiny_av.yaml``):
  (B,15,16,32) + (B,1,80,16), one stride-2 stage less, 256-d.

The final ReLU (Wav2Lip: of the last Conv+BN+ReLU; StableSyncNet: after GroupNorm) makes both
embeddings non-negative, so their cosine lies in [0, 1] and is used directly as a probability
(:func:`avsuite.losses.sync.sync_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: a Wav2Lip stage: (out channels, kernel, stride, padding, residual blocks after it)
Stage = tuple[int, int, Any, int, int]
Factor = Any  # int or (h, w)


@dataclass(frozen=True, kw_only=True)
class ConvEncoderConfig:
    """Wav2Lip-style encoder: each stage = Conv+BN+ReLU then ``n`` residual 3x3 Conv+BN(+x)+ReLU."""
    in_channels: int
    stages: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True, kw_only=True)
class DownEncoderConfig:
    """LatentSync DownEncoder2D: conv_in, one ResnetBlock2D (+ downsample) per level, attention
    after the levels flagged in ``attn``, GroupNorm + ReLU out."""
    in_channels: int
    block_out: tuple[int, ...]
    downsample: tuple[Any, ...]
    attn: tuple[int, ...]
    groups: int = 32
    dropout: float = 0.0


@dataclass(frozen=True, kw_only=True)
class SyncNetConfig:
    kind: Literal["conv", "down"] = "conv"
    #: video frames per window; input channels = 3 * n_frames
    n_frames: int = 5
    #: face crop (full face; the model sees its lower half: (face_size // 2, face_width))
    face_size: int = 64
    face_width: int = 64
    #: mel frames per window (80 mels)
    mel_steps: int = 16
    n_mels: int = 80
    #: frame normalisation the model expects: "unit" = [0, 1] (Wav2Lip), "signed" = [-1, 1] (LatentSync)
    pixel_range: Literal["unit", "signed"] = "unit"
    visual: dict[str, Any] = field(default_factory=dict)
    audio: dict[str, Any] = field(default_factory=dict)

    @property
    def face_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the model's visual input."""
        return (3 * self.n_frames, self.face_size // 2, self.face_width)

    @property
    def mel_shape(self) -> tuple[int, int, int]:
        return (1, self.n_mels, self.mel_steps)


_W2L_FACE = ((32, 7, 1, 3, 0), (64, 5, (1, 2), 1, 2), (128, 3, 2, 1, 3), (256, 3, 2, 1, 2), (512, 3, 2, 1, 2),
             (512, 3, 2, 1, 0), (512, 3, 1, 0, 0), (512, 1, 1, 0, 0))
_W2L_AUDIO = ((32, 3, 1, 1, 2), (64, 3, (3, 1), 1, 2), (128, 3, 3, 1, 2), (256, 3, (3, 2), 1, 2),
              (512, 3, 1, 0, 0), (512, 1, 1, 0, 0))
# 32x64 lower half: 32x64 -> 30x31 -> 15x16 -> 8x8 -> 4x4 -> 2x2 -> 1x1
_TINY_FACE = ((16, 7, 1, 3, 0), (32, 5, (1, 2), 1, 1), (64, 3, 2, 1, 1), (128, 3, 2, 1, 1), (256, 3, 2, 1, 1),
              (256, 3, 2, 1, 0), (256, 2, 1, 0, 0), (256, 1, 1, 0, 0))
# 16x32 lower half of a 32 px mouth crop: 16x32 -> 14x15 -> 7x8 -> 4x4 -> 2x2 -> 1x1
_MOUTH32_FACE = ((16, 7, 1, 3, 0), (32, 5, (1, 2), 1, 1), (64, 3, 2, 1, 1), (128, 3, 2, 1, 1), (256, 3, 2, 1, 1),
                 (256, 2, 1, 0, 0), (256, 1, 1, 0, 0))
# 80x16 mel: 80x16 -> 27x16 -> 9x6 -> 3x3 -> 1x1
_TINY_AUDIO = ((16, 3, 1, 1, 1), (32, 3, (3, 1), 1, 1), (64, 3, 3, 1, 1), (128, 3, (3, 2), 1, 1),
               (256, 3, 1, 0, 0), (256, 1, 1, 0, 0))


def syncnet_preset(name: str, **overrides: Any) -> SyncNetConfig:
    """``wav2lip`` | ``stable_syncnet`` | ``tiny`` | ``mouth32`` (see the module docstring)."""
    presets = {
        "wav2lip": dict(kind="conv", n_frames=5, face_size=96, face_width=96, mel_steps=16, pixel_range="unit",
                        visual={"stages": _W2L_FACE}, audio={"stages": _W2L_AUDIO}),
        "tiny": dict(kind="conv", n_frames=5, face_size=64, face_width=64, mel_steps=16, pixel_range="unit",
                     visual={"stages": _TINY_FACE}, audio={"stages": _TINY_AUDIO}),
        "mouth32": dict(kind="conv", n_frames=5, face_size=32, face_width=32, mel_steps=16, pixel_range="unit",
                        visual={"stages": _MOUTH32_FACE}, audio={"stages": _TINY_AUDIO}),
        "stable_syncnet": dict(kind="down", n_frames=16, face_size=256, face_width=256, mel_steps=52,
                               pixel_range="signed",
                               visual={"block_out": (64, 128, 256, 256, 512, 1024, 2048, 2048),
                                       "downsample": ((1, 2), 2, 2, 2, 2, 2, 2, 2), "attn": (0, 0, 0, 0, 1, 1, 0, 0)},
                               audio={"block_out": (32, 64, 128, 256, 512, 1024, 2048),
                                      "downsample": ((2, 1), 2, 2, 1, 2, 2, (2, 3)), "attn": (0, 0, 0, 1, 1, 0, 0)}),
    }
    if name not in presets:
        raise KeyError(f"unknown SyncNet preset {name!r}; choose from: {', '.join(presets)}")
    return SyncNetConfig(**{**presets[name], **overrides})


# ----------------------------------------------------------------------------- Wav2Lip blocks
class ConvBNReLU(nn.Module):
    """Conv2d + BatchNorm2d (+ input when ``residual``) + ReLU: ``(B, Cin, H, W) -> (B, Cout, H', W')``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: Any, padding: int, residual: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.bn = nn.BatchNorm2d(cout)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn(self.conv(x))
        return F.relu(out + x if self.residual else out)


def conv_encoder(in_channels: int, stages: tuple[tuple[Any, ...], ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = in_channels
    for cout, k, s, p, n_res in stages:
        s = tuple(s) if isinstance(s, (list, tuple)) else s
        layers.append(ConvBNReLU(cin, cout, k, s, p))
        layers += [ConvBNReLU(cout, cout, 3, 1, 1, residual=True) for _ in range(n_res)]
        cin = cout
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- LatentSync blocks
def _pad_for(factor: Any) -> tuple[int, int, int, int]:
    """Zero pad (left, right, top, bottom) before a stride-``factor`` 3x3 conv (LatentSync)."""
    if isinstance(factor, (tuple, list)):
        if factor[0] == 1:
            return (0, 1, 1, 1)
        if factor[1] == 1:
            return (1, 1, 0, 1)
    return (0, 1, 0, 1)


class ResBlock(nn.Module):
    """GN-SiLU-conv-GN-SiLU-dropout-conv + (1x1) shortcut, then optional strided downsampling."""

    def __init__(self, cin: int, cout: int, factor: Factor, groups: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin, eps=1e-6), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout, eps=1e-6), nn.Conv2d(cout, cout, 3, 1, 1)
        self.dropout = nn.Dropout(dropout)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        stride = tuple(factor) if isinstance(factor, (tuple, list)) else factor
        self.down = None if stride == 1 else nn.Conv2d(cout, cout, 3, stride, 0)
        self.pad = _pad_for(factor)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        h = h + self.shortcut(x)
        return h if self.down is None else self.down(F.pad(h, self.pad))


class AttnBlock(nn.Module):
    """GN, 1x1 conv, pre-LN 8-head self-attention + GEGLU feed-forward over the H*W tokens, 1x1 conv, residual."""

    def __init__(self, dim: int, groups: int, dropout: float, heads: int = 8):
        super().__init__()
        self.norm, self.conv_in, self.conv_out = nn.GroupNorm(groups, dim, eps=1e-6), nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ff_in, self.ff_out = nn.Linear(dim, 8 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        t = self.conv_in(self.norm(x)).flatten(2).transpose(1, 2)            # (B, HW, C)
        n = self.ln1(t)
        t = self.attn(n, n, n, need_weights=False)[0] + t
        u, gate = self.ff_in(self.ln2(t)).chunk(2, dim=-1)
        t = self.ff_out(u * F.gelu(gate)) + t
        return self.conv_out(t.transpose(1, 2).reshape(b, c, h, w)) + x


class DownEncoder(nn.Module):
    def __init__(self, cfg: DownEncoderConfig):
        super().__init__()
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.block_out[0], 3, 1, 1)
        blocks: list[nn.Module] = []
        cin = cfg.block_out[0]
        for cout, factor, attn in zip(cfg.block_out, cfg.downsample, cfg.attn):
            blocks.append(ResBlock(cin, cout, factor, cfg.groups, cfg.dropout))
            if attn:
                blocks.append(AttnBlock(cout, cfg.groups, cfg.dropout))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = nn.GroupNorm(cfg.groups, cin, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm_out(self.blocks(self.conv_in(x))))


# ----------------------------------------------------------------------------- the model
class SyncNet(nn.Module):
    """``forward(frames (B, 3T, H/2, W), mel (B, 1, 80, S)) -> (v (B, D), a (B, D))``, unit norm."""

    def __init__(self, cfg: SyncNetConfig):
        super().__init__()
        self.cfg = cfg
        c_face = cfg.face_shape[0]
        if cfg.kind == "conv":
            self.visual = conv_encoder(c_face, tuple(cfg.visual["stages"]))
            self.audio = conv_encoder(1, tuple(cfg.audio["stages"]))
        else:
            self.visual = DownEncoder(DownEncoderConfig(in_channels=c_face, **_tuples(cfg.visual)))
            self.audio = DownEncoder(DownEncoderConfig(in_channels=1, **_tuples(cfg.audio)))

    def encode_frames(self, frames: Tensor) -> Tensor:
        """``(B, 3T, H/2, W)`` -> ``(B, D)`` unit norm."""
        return F.normalize(self.visual(frames).flatten(1), dim=1)

    def encode_mel(self, mel: Tensor) -> Tensor:
        """``(B, 1, 80, S)`` -> ``(B, D)`` unit norm."""
        return F.normalize(self.audio(mel).flatten(1), dim=1)

    def forward(self, frames: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        return self.encode_frames(frames), self.encode_mel(mel)

    def export_config(self) -> dict[str, Any]:
        from avsuite.config import to_dict

        return {"kind": "syncnet", "model": to_dict(self.cfg)}


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, (list, tuple)) else v
            for k, v in d.items()}



def config_from_dict(d: dict[str, Any]) -> SyncNetConfig:
    return SyncNetConfig(**{k: v for k, v in d.items()})


def model_from_state(state: dict[str, Tensor], config: dict[str, Any]) -> SyncNet:
    """The model dir loader (``kind: syncnet``) used by :mod:`avsuite.models.registry`."""
    model = SyncNet(config_from_dict(config["model"]))
    model.load_state_dict(state, strict=True)
    return model.eval()


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def embedding_dim(cfg: SyncNetConfig) -> int:
    return (cfg.visual["stages"][-1][0] if cfg.kind == "conv" else cfg.visual["block_out"][-1])


__all__ = ["SyncNet", "SyncNetConfig", "syncnet_preset", "model_from_state", "n_params", "embedding_dim"]
