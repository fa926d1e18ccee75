"""Siamese speech / text encoders for CTC + optimal-transport pre-training (Le et al., ICML 2023).

- :class:`SpeechEncoder`: the shared :class:`~avsuite.audio.frontend.AudioFrontend` (80-dim Kaldi
  fbank) -> 2 strided Conv1d+GLU (4x subsampling) -> sinusoidal positions -> Conformer layers
  (``torchaudio.models.Conformer`` blocks) or pre-norm Transformer layers -> CTC head (on the last
  layer, or on an intermediate one with ``ctc_layer``).
- :class:`TextEncoder`: token embedding + positions -> pre-norm Transformer layers.
- :class:`SiameseCTCOT`: both encoders; :meth:`SiameseCTCOT.ot_features` gives the length-normalised
  (non-affine LayerNorm / sqrt(d)) features the OT loss compares.

Models take waveforms ``(B, T)`` + lengths in samples: the fbank frontend (and, while training
with ``SpeechArch.spec_augment``, :func:`avsuite.audio.augment.spec_augment` drawn from the global
torch RNG) runs inside. :func:`output_lengths` gives the encoder frame count of a waveform length
without running anything. Architectures are named presets (:data:`PRESETS`): ``tiny`` (CPU, tests)
and ``base`` (the paper's d=512, 12 speech layers, 6 text layers). Model dirs are built and loaded
by :mod:`avsuite.models.seq2seq` (it imports this module, never the reverse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avsuite.audio.augment import spec_augment
from avsuite.audio.frontend import AudioFrontend, FrontendConfig, frame_lengths
from avsuite.audio.masks import lengths_to_mask


@dataclass(frozen=True, kw_only=True)
class SpeechArch:
    d_model: int = 144
    n_heads: int = 4
    ffn_dim: int = 576
    speech_layers: int = 4
    text_layers: int = 2
    decoder_layers: int = 2
    conv_kernel: int = 15
    arch: Literal["conformer", "transformer"] = "conformer"
    dropout: float = 0.1
    #: 0 = CTC on the last speech layer; k > 0 = CTC on the output of layer k (intermediate CTC)
    ctc_layer: int = 0
    #: longest input, in encoder frames after 4x subsampling (positions table size)
    max_frames: int = 1500
    max_tokens: int = 512
    #: SpecAugment in ``forward`` while training: frequency masks of <= ``spec_freq_width`` mel bins,
    #: time masks of <= ``spec_time_fraction`` of each item's frames (zero fill)
    spec_augment: bool = False
    spec_freq_masks: int = 2
    spec_freq_width: int = 10
    spec_time_masks: int = 2
    spec_time_fraction: float = 0.1


PRESETS: dict[str, SpeechArch] = {
    "tiny": SpeechArch(),
    "small": SpeechArch(d_model=256, n_heads=4, ffn_dim=1024, speech_layers=8, text_layers=4, decoder_layers=4),
    "base": SpeechArch(d_model=512, n_heads=8, ffn_dim=2048, speech_layers=12, text_layers=6, decoder_layers=6,
                       conv_kernel=31),
}


def preset(name: str, **overrides: Any) -> SpeechArch:
    if name not in PRESETS:
        raise ValueError(f"unknown speech preset {name!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def sinusoids(n: int, d: int) -> Tensor:
    """``(n, d)`` sinusoidal position table."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    inv = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv[: d // 2])
    return table


class ConvSubsampler(nn.Module):
    """``(B, M, F)`` features -> ``(B, F', D)`` with ``F' = ceil(F / 4)``: two Conv1d(k=5, s=2) + GLU."""

    def __init__(self, n_mels: int, d_model: int):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(n_mels, 2 * d_model, 5, stride=2, padding=2),
                                    nn.Conv1d(d_model, 2 * d_model, 5, stride=2, padding=2)])

    @staticmethod
    def out_lengths(lengths: Tensor) -> Tensor:
        """``(B,)`` input frames -> ``(B,)`` output frames (``ceil(n / 4)``; 0 stays 0)."""
        for _ in range(2):
            lengths = _halve(lengths)
        return lengths

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = feats
        for conv in self.convs:
            mask = lengths_to_mask(lengths, x.shape[-1])[:, None, :]
            x = F.glu(conv(x * mask), dim=1)
            lengths = _halve(lengths)
        return x.transpose(1, 2), lengths


def _halve(lengths: Tensor) -> Tensor:
    """Output length of a stride-2, kernel-5, padding-2 convolution."""
    return torch.div(lengths - 1, 2, rounding_mode="floor") + 1


def output_lengths(wave_lengths: Tensor, frontend: FrontendConfig) -> Tensor:
    """``(B,)`` waveform lengths (samples at the frontend's input rate) -> ``(B,)`` encoder frames.

    A pure function of the frontend config and the 4x subsampler: what :class:`SpeechEncoder`
    outputs for those lengths (0 when a wave is shorter than one analysis window)."""
    n = torch.as_tensor(wave_lengths, dtype=torch.long)
    if frontend.input_sample_rate and frontend.input_sample_rate != frontend.sample_rate:
        n = torch.ceil(n * (frontend.sample_rate / frontend.input_sample_rate)).long()
    return ConvSubsampler.out_lengths(frame_lengths(n, frontend))


class _TransformerLayer(nn.TransformerEncoderLayer):
    def __init__(self, a: SpeechArch):
        super().__init__(a.d_model, a.n_heads, a.ffn_dim, a.dropout, activation="gelu", batch_first=True,
                         norm_first=True)


def _masked_conformer_layer(a: SpeechArch) -> nn.Module:
    """torchaudio's ``ConformerLayer`` with padding zeroed before its depthwise convolution.

    Without this, the convolution mixes padded frames into the last valid ones and a padded
    batch no longer equals its items run one by one.
    """
    from torchaudio.models.conformer import ConformerLayer

    class MaskedConformerLayer(ConformerLayer):
        def __init__(self) -> None:
            super().__init__(a.d_model, a.ffn_dim, a.n_heads, a.conv_kernel, dropout=a.dropout)
            self._valid: Tensor | None = None
            self.conv_module.sequential[2].register_forward_pre_hook(self._mask_depthwise)

        def _mask_depthwise(self, _module: nn.Module, args: tuple[Tensor, ...]):
            if self._valid is None:
                return None
            return (args[0] * self._valid[:, None, :].to(args[0].dtype),)   # (B, C, T)

        def forward(self, x: Tensor, key_padding_mask: Tensor | None) -> Tensor:
            self._valid = None if key_padding_mask is None else ~key_padding_mask
            try:
                return super().forward(x, key_padding_mask)
            finally:
                self._valid = None

    return MaskedConformerLayer()


def _layers(a: SpeechArch, n: int, kind: str) -> nn.ModuleList:
    if kind == "conformer":
        return nn.ModuleList(_masked_conformer_layer(a) for _ in range(n))
    return nn.ModuleList(_TransformerLayer(a) for _ in range(n))


class SpeechEncoder(nn.Module):
    """``(B, T)`` wave -> ``(B, T', D)`` encodings, ``(B,)`` lengths, ``(B, T', V)`` CTC logits."""

    def __init__(self, arch: SpeechArch, frontend: FrontendConfig, vocab_size: int):
        super().__init__()
        self.arch = arch
        self.frontend = AudioFrontend(frontend)
        self.subsample = ConvSubsampler(frontend.n_mels, arch.d_model)
        self.register_buffer("pos", sinusoids(arch.max_frames, arch.d_model), persistent=False)
        self.layers = _layers(arch, arch.speech_layers, arch.arch)
        self.norm = nn.LayerNorm(arch.d_model)
        self.ctc_head = nn.Linear(arch.d_model, vocab_size) if vocab_size > 0 else None
        self.drop = nn.Dropout(arch.dropout)

    def output_lengths(self, wave_lengths: Tensor) -> Tensor:
        """``(B,)`` samples -> ``(B,)`` encoder frames (see :func:`output_lengths`)."""
        return output_lengths(wave_lengths, self.frontend.cfg)

    def features(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T)`` -> fbank ``(B, M, F)`` and frame lengths ``(B,)`` (no gradient; no parameters),
        SpecAugment-ed while training when ``arch.spec_augment``."""
        with torch.no_grad():
            feats, n = self.frontend(wave, lengths)
        a = self.arch
        if self.training and a.spec_augment:
            feats = spec_augment(feats, n, n_freq_masks=a.spec_freq_masks, freq_width=a.spec_freq_width,
                                 n_time_masks=a.spec_time_masks, time_fraction=a.spec_time_fraction)
        return feats, n

    def forward(self, wave: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """``wave (B, T)``, ``lengths (B,)`` samples -> see :meth:`encode_features`."""
        feats, n = self.features(wave, lengths)
        return self.encode_features(feats, n)

    def encode_features(self, feats: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """``feats (B, M, F)`` fbank, ``lengths (B,)`` frames -> ``{"out", "lengths", "mask", "ctc_logits"}``."""
        if bool((lengths <= 0).any()):
            raise ValueError("speech input too short: an item has no feature frames")
        x, lens = self.subsample(feats, lengths)
        if x.shape[1] > self.arch.max_frames:
            raise ValueError(f"speech too long: {x.shape[1]} encoder frames > max_frames={self.arch.max_frames} "
                             f"(~{self.arch.max_frames * 0.04:.0f} s); crop it or raise model.max_frames")
        x = self.drop(x * math.sqrt(self.arch.d_model) + self.pos[: x.shape[1]])
        mask = lengths_to_mask(lens, x.shape[1])
        ctc_src = None
        for i, layer in enumerate(self.layers, start=1):
            x = self._layer(layer, x, ~mask)
            if i == self.arch.ctc_layer:
                ctc_src = x
        x = self.norm(x)
        if ctc_src is None:
            ctc_src = x
        out = {"out": x, "lengths": lens, "mask": mask}
        if self.ctc_head is not None:
            out["ctc_logits"] = self.ctc_head(ctc_src)
        return out

    def _layer(self, layer: nn.Module, x: Tensor, pad: Tensor) -> Tensor:
        if self.arch.arch == "conformer":   # torchaudio's ConformerLayer is time-major
            return layer(x.transpose(0, 1), pad).transpose(0, 1)
        return layer(x, src_key_padding_mask=pad)


class TextEncoder(nn.Module):
    """``(B, S)`` token ids (0 = padding) -> ``(B, S, D)`` encodings."""

    def __init__(self, arch: SpeechArch, vocab_size: int):
        super().__init__()
        self.arch = arch
        self.embed = nn.Embedding(vocab_size, arch.d_model, padding_idx=0)
        nn.init.normal_(self.embed.weight, 0.0, arch.d_model ** -0.5)
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.register_buffer("pos", sinusoids(arch.max_tokens, arch.d_model), persistent=False)
        self.layers = nn.ModuleList(_TransformerLayer(arch) for _ in range(arch.text_layers))
        self.norm = nn.LayerNorm(arch.d_model)
        self.drop = nn.Dropout(arch.dropout)

    def forward(self, tokens: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        if tokens.shape[1] > self.arch.max_tokens:
            raise ValueError(f"text too long: {tokens.shape[1]} tokens > max_tokens={self.arch.max_tokens}")
        mask = lengths_to_mask(lengths, tokens.shape[1])
        x = self.drop(self.embed(tokens) * math.sqrt(self.arch.d_model) + self.pos[: tokens.shape[1]])
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=~mask)
        return {"out": self.norm(x), "lengths": lengths, "mask": mask}


def ot_features(x: Tensor) -> Tensor:
    """Non-affine LayerNorm / sqrt(D): unit-norm-ish features whose scale the model cannot shrink."""
    return F.layer_norm(x, x.shape[-1:]) / math.sqrt(x.shape[-1])


class SiameseCTCOT(nn.Module):
    """Speech encoder (+ CTC head) and text encoder sharing one character/subword vocabulary."""

    def __init__(self, arch: SpeechArch, frontend: FrontendConfig, vocab_size: int):
        super().__init__()
        self.speech = SpeechEncoder(arch, frontend, vocab_size)
        self.text = TextEncoder(arch, vocab_size)

    def output_lengths(self, wave_lengths: Tensor) -> Tensor:
        return self.speech.output_lengths(wave_lengths)

    def forward(self, wave: Tensor, wave_lengths: Tensor, tokens: Tensor, token_lengths: Tensor) -> dict[str, Tensor]:
        """``wave (B, T)`` + ``wave_lengths (B,)``, ``tokens (B, S)`` + ``token_lengths (B,)`` ->
        ``log_probs (B, T', V)``, ``speech_lengths (B,)``, OT features ``speech (B, T', D)`` /
        ``text (B, S, D)`` and their masks."""
        sp = self.speech(wave, wave_lengths)
        tx = self.text(tokens, token_lengths)
        return {"log_probs": sp["ctc_logits"].log_softmax(-1), "speech_lengths": sp["lengths"],
                "speech": ot_features(sp["out"]), "speech_mask": sp["mask"],
                "text": ot_features(tx["out"]), "text_mask": tx["mask"]}
