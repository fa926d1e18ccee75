"""The one audio frontend: ``(B, T)`` waveform -> ``(B, n_mels, frames)`` log-mel, on device.

:class:`AudioFrontend` precomputes its window and mel filterbank as buffers; it lives inside every
model, so a checkpoint fixes its exact features. Presets give the configurations the anchors use:

- :func:`laion_clap` — 48 kHz, n_fft 1024, hop 480, 64 mels, 50–14000 Hz, dB (LAION-CLAP / PANNs)
- :func:`whisper` — 16 kHz, n_fft 400, hop 160, 80 slaney mels, Whisper's log10 + clamp + scale
  (LatentSync's audio features)
- :func:`kaldi_fbank` — 16 kHz, 25 ms / 10 ms, 80 HTK mels, povey window, natural log (speech)

Pure functions (:func:`mel_filterbank`, :func:`frame_lengths`) are usable on their own.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avsuite.audio.masks import lengths_to_mask
from avsuite.audio.resample import Resample


@dataclass(frozen=True, kw_only=True)
class FrontendConfig:
    sample_rate: int = 16000
    #: rate of the waveforms fed in; when set and different, the frontend resamples first
    input_sample_rate: int | None = None
    n_fft: int = 400
    win_length: int | None = None
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    window: Literal["hann", "hamming", "povey"] = "hann"
    center: bool = True
    pad_mode: Literal["reflect", "constant"] = "reflect"
    power: float = 2.0
    mel_scale: Literal["slaney", "htk", "kaldi"] = "slaney"
    mel_norm: Literal["slaney"] | None = "slaney"
    #: Kaldi framing: frames of win_length, per-frame DC removal and pre-emphasis, rfft padded to n_fft
    kaldi: bool = False
    preemphasis: float = 0.97
    log: Literal["db", "log", "whisper", "none"] = "db"
    amin: float = 1e-10
    top_db: float | None = None
    normalize: Literal["none", "utterance", "global"] = "none"
    global_mean: float = 0.0
    global_std: float = 1.0

    def __post_init__(self) -> None:
        win = self.win_length or self.n_fft
        if win > self.n_fft:
            raise ValueError(f"win_length {win} > n_fft {self.n_fft}")
        if self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError("hop_length and n_mels must be positive")
        f_max = self.f_max if self.f_max is not None else self.sample_rate / 2
        if not 0 <= self.f_min < f_max <= self.sample_rate / 2 + 1e-6:
            raise ValueError(f"need 0 <= f_min < f_max <= sr/2, got {self.f_min}, {f_max}, sr={self.sample_rate}")
        if self.normalize == "global" and self.global_std <= 0:
            raise ValueError("global_std must be positive")


def laion_clap(**kw) -> FrontendConfig:
    return FrontendConfig(**{**dict(sample_rate=48000, n_fft=1024, hop_length=480, n_mels=64, f_min=50.0,
                                    f_max=14000.0, mel_scale="slaney", mel_norm="slaney", log="db"), **kw})


def whisper(**kw) -> FrontendConfig:
    return FrontendConfig(**{**dict(sample_rate=16000, n_fft=400, hop_length=160, n_mels=80,
                                    mel_scale="slaney", mel_norm="slaney", log="whisper"), **kw})


def kaldi_fbank(**kw) -> FrontendConfig:
    return FrontendConfig(**{**dict(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=80,
                                    f_min=20.0, window="povey", center=False, mel_scale="kaldi",
                                    mel_norm=None, kaldi=True, log="log", amin=torch.finfo(torch.float32).eps),
                             **kw})


PRESETS = {"laion_clap": laion_clap, "whisper": whisper, "kaldi_fbank": kaldi_fbank}


# ----------------------------------------------------------------------------- pure functions
def hz_to_mel(f: Tensor, scale: str) -> Tensor:
    if scale in ("htk", "kaldi"):
        return 2595.0 * torch.log10(1.0 + f / 700.0) if scale == "htk" else 1127.0 * torch.log1p(f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    lin = f / f_sp
    return torch.where(f >= min_log_hz, min_log_mel + torch.log(f.clamp(min=1e-10) / min_log_hz) / logstep, lin)


def mel_to_hz(m: Tensor, scale: str) -> Tensor:
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if scale == "kaldi":
        return 700.0 * torch.expm1(m / 1127.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(m >= min_log_mel, min_log_hz * torch.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(n_freqs: int, sample_rate: int, n_mels: int, f_min: float, f_max: float,
                   scale: str = "slaney", norm: str | None = "slaney") -> Tensor:
    """``(n_freqs, n_mels)`` triangular filters (Hz-domain triangles, as librosa/torchaudio)."""
    dt = torch.float64
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=dt)
    if scale == "kaldi":
        return _kaldi_filterbank(n_freqs, sample_rate, n_mels, f_min, f_max)
    m_pts = torch.linspace(float(hz_to_mel(torch.tensor(f_min, dtype=dt), scale)),
                           float(hz_to_mel(torch.tensor(f_max, dtype=dt), scale)), n_mels + 2, dtype=dt)
    f_pts = mel_to_hz(m_pts, scale)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = torch.clamp(torch.minimum(down, up), min=0.0)
    if norm == "slaney":
        fb = fb * (2.0 / (f_pts[2:n_mels + 2] - f_pts[:n_mels]))[None, :]
    return fb.float()


def _kaldi_filterbank(n_freqs: int, sample_rate: int, n_mels: int, f_min: float, f_max: float) -> Tensor:
    """Kaldi's banks: triangles linear in the (1127 ln) mel domain; the Nyquist bin gets zero."""
    dt = torch.float64
    n_fft = (n_freqs - 1) * 2
    fft_bin_width = sample_rate / n_fft
    mel_lo = 1127.0 * math.log1p(f_min / 700.0)
    mel_hi = 1127.0 * math.log1p(f_max / 700.0)
    delta = (mel_hi - mel_lo) / (n_mels + 1)
    b = torch.arange(n_mels, dtype=dt)[:, None]
    left, center, right = mel_lo + b * delta, mel_lo + (b + 1) * delta, mel_lo + (b + 2) * delta
    mel = 1127.0 * torch.log1p(fft_bin_width * torch.arange(n_fft // 2, dtype=dt) / 700.0)[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)     # (n_mels, n_fft/2)
    banks = F.pad(banks, (0, 1))                              # Nyquist column
    return banks.T.float()


def make_window(kind: str, length: int) -> Tensor:
    if kind == "hann":
        return torch.hann_window(length, periodic=True)
    if kind == "hamming":
        return torch.hamming_window(length, periodic=True)
    if kind == "povey":
        return torch.hann_window(length, periodic=False).pow(0.85)
    raise ValueError(f"unknown window {kind!r}")


def frame_lengths(lengths: Tensor, cfg: FrontendConfig) -> Tensor:
    """Number of valid frames for waveforms of ``lengths`` samples (at ``cfg.sample_rate``)."""
    if cfg.center:
        return 1 + torch.div(lengths, cfg.hop_length, rounding_mode="floor")
    win = cfg.win_length or cfg.n_fft
    return (1 + torch.div(lengths - win, cfg.hop_length, rounding_mode="floor")).clamp(min=0)


def _reflect_pad_per_item(wave: Tensor, lengths: Tensor, pad: int) -> Tensor:
    """Reflect-pad each row at its own end (not at the batch's padded end): ``(B, T+2*pad)``."""
    b, t = wave.shape
    pos = torch.arange(-pad, t + pad, device=wave.device)[None, :].expand(b, -1)
    last = (lengths - 1).clamp(min=0)[:, None]
    idx = pos.abs()
    idx = torch.where(idx > last, 2 * last - idx, idx)
    valid = (idx >= 0) & (pos < lengths[:, None] + pad)
    out = torch.gather(wave, 1, idx.clamp(0, t - 1))
    return out * valid


# ----------------------------------------------------------------------------- module
class AudioFrontend(nn.Module):
    """``(B, T)`` wave [+ ``(B,)`` lengths] -> ``(B, n_mels, frames)`` features [+ frame lengths]."""

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        self.cfg = cfg
        self.resampler = (Resample(cfg.input_sample_rate, cfg.sample_rate)
                          if cfg.input_sample_rate and cfg.input_sample_rate != cfg.sample_rate else None)
        win = cfg.win_length or cfg.n_fft
        window = make_window(cfg.window, win)
        if not cfg.kaldi and win < cfg.n_fft:  # centred inside the n_fft frame, as torch.stft does
            left = (cfg.n_fft - win) // 2
            window = F.pad(window, (left, cfg.n_fft - win - left))
        self.register_buffer("window", window, persistent=False)
        f_max = cfg.f_max if cfg.f_max is not None else cfg.sample_rate / 2
        fb = mel_filterbank(cfg.n_fft // 2 + 1, cfg.sample_rate, cfg.n_mels, cfg.f_min, f_max,
                            cfg.mel_scale, cfg.mel_norm)
        self.register_buffer("fb", fb, persistent=False)
        self._cache = threading.local()

    @property
    def frame_length(self) -> int:
        return (self.cfg.win_length or self.cfg.n_fft) if self.cfg.kaldi else self.cfg.n_fft

    def _frames(self, wave: Tensor, lengths: Tensor | None) -> Tensor:
        cfg = self.cfg
        if cfg.center:
            pad = cfg.n_fft // 2
            if lengths is not None and cfg.pad_mode == "reflect" and bool((lengths < wave.shape[1]).any()):
                wave = _reflect_pad_per_item(wave, lengths, pad)
            else:  # reflection needs more samples than the pad: very short inputs pad with zeros
                mode = cfg.pad_mode if wave.shape[-1] > pad else "constant"
                wave = F.pad(wave[:, None], (pad, pad), mode=mode)[:, 0]
        frames = wave.unfold(-1, self.frame_length, cfg.hop_length)   # (B, F, L) view
        if cfg.kaldi:
            frames = frames - frames.mean(dim=-1, keepdim=True)
            if cfg.preemphasis:
                prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
                frames = frames - cfg.preemphasis * prev
        return frames

    def power_mel(self, wave: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Linear mel energies, ``(B, frames, n_mels)``.

        Without autograd (inference, feature extraction) the three large intermediates (windowed
        frames, spectrum, power) go to per-thread work buffers: fresh ~50 MB tensors cost more in
        page faults than the arithmetic, and |X|^2 is one mul + addcmul over the (re, im) views.
        """
        frames = self._frames(wave, lengths)
        n_bins = self.cfg.n_fft // 2 + 1
        if torch.is_grad_enabled() and (wave.requires_grad or self.fb.requires_grad):
            ri = torch.view_as_real(torch.fft.rfft(frames * self.window, n=self.cfg.n_fft))
            power = ri[..., 0].square() + ri[..., 1].square()
        else:
            buf_w, buf_s, power = self._work_buffers(frames.shape, n_bins, wave.device)
            torch.mul(frames, self.window, out=buf_w)
            ri = torch.view_as_real(torch.fft.rfft(buf_w, n=self.cfg.n_fft, out=buf_s))
            torch.mul(ri[..., 0], ri[..., 0], out=power).addcmul_(ri[..., 1], ri[..., 1])
        if self.cfg.power != 2.0:
            power = power.pow(self.cfg.power / 2.0)
        return power @ self.fb

    def _work_buffers(self, shape: torch.Size, n_bins: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        cache = self._cache.__dict__
        key = (tuple(shape), device)
        if cache.get("key") != key:
            cache["key"] = key
            cache["w"] = torch.empty(shape, device=device)
            cache["s"] = torch.empty((*shape[:-1], n_bins), dtype=torch.complex64, device=device)
            cache["p"] = torch.empty((*shape[:-1], n_bins), device=device)
        return cache["w"], cache["s"], cache["p"]

    def _log(self, mel: Tensor, mask: Tensor | None) -> Tensor:
        cfg = self.cfg
        if cfg.log == "none":
            return mel
        inplace = not (torch.is_grad_enabled() and mel.requires_grad)
        if cfg.log == "log":
            return mel.clamp_(min=cfg.amin).log_() if inplace else torch.log(mel.clamp(min=cfg.amin))
        if cfg.log == "db":
            out = (mel.clamp_(min=cfg.amin).log10_().mul_(10.0) if inplace
                   else 10.0 * torch.log10(mel.clamp(min=cfg.amin)))
            if cfg.top_db is not None:
                peak = _masked_amax(out, mask)
                out = torch.maximum(out, peak - cfg.top_db)
            return out
        out = torch.log10(mel.clamp(min=1e-10))                      # whisper
        out = torch.maximum(out, _masked_amax(out, mask) - 8.0)
        return (out + 4.0) / 4.0

    def _normalize(self, x: Tensor, mask: Tensor | None) -> Tensor:
        cfg = self.cfg
        if cfg.normalize == "global":
            return (x - cfg.global_mean) / cfg.global_std
        if cfg.normalize == "utterance":
            m = mask[..., None].to(x.dtype) if mask is not None else torch.ones_like(x[..., :1])
            n = m.sum(dim=1, keepdim=True).clamp(min=1)
            mean = (x * m).sum(dim=1, keepdim=True) / n
            var = (((x - mean) * m) ** 2).sum(dim=1, keepdim=True) / n
            return (x - mean) / (var + 1e-5).sqrt() * m
        return x

    def _precomputed(self, feats: Tensor, lengths: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
        """``(B, n_mels, F)`` features computed by this config's frontend outside the model (the data
        layer's feature cache stage, keyed by the config's hash): returned as they are, ``lengths``
        being frame counts."""
        feats = feats.float()
        return (feats, lengths.clamp(max=feats.shape[-1])) if lengths is not None else feats

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """``wave (B, T)`` -> ``(B, n_mels, F)``; with ``lengths (B,)`` also returns ``(B,)`` frame lengths.
        Features ``(B, n_mels, F)`` (the feature cache stage) pass through, ``lengths`` in frames.

        Frames past an item's length are zero after normalisation and never affect its values,
        so a padded batch equals its items run one by one.
        """
        if wave.dim() == 3 and wave.shape[1] == self.cfg.n_mels:      # the feature cache stage's output
            return self._precomputed(wave, lengths)
        if wave.dim() == 1:
            wave = wave[None]
        if wave.dim() != 2:
            raise ValueError(f"expected a (B, T) waveform or (B, {self.cfg.n_mels}, F) features, "
                             f"got shape {tuple(wave.shape)}")
        if self.resampler is not None:
            t_in = wave.shape[-1]
            wave = self.resampler(wave)
            if lengths is not None:
                lengths = torch.ceil(lengths * (wave.shape[-1] / t_in)).long().clamp(max=wave.shape[-1])
        min_len = self.frame_length if not self.cfg.center else 1
        if wave.shape[-1] < min_len:
            wave = F.pad(wave, (0, min_len - wave.shape[-1]))
        mel = self.power_mel(wave.float(), lengths)                   # (B, F, M)
        mask = None
        if lengths is not None:
            n_frames = frame_lengths(lengths, self.cfg).clamp(max=mel.shape[1])
            mask = lengths_to_mask(n_frames, mel.shape[1])
        out = self._normalize(self._log(mel, mask), mask).transpose(1, 2)
        return (out, n_frames) if lengths is not None else out


def _masked_amax(x: Tensor, mask: Tensor | None) -> Tensor:
    """Per-item max over ``(F, M)`` of ``x (B, F, M)``, ignoring frames outside ``mask (B, F)``."""
    if mask is not None:
        x = x.masked_fill(~mask[..., None], float("-inf"))
    return x.amax(dim=(1, 2), keepdim=True)
