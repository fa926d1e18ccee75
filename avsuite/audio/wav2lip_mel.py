"""The Wav2Lip / Tacotron mel spectrogram that SyncNet experts read (Wav2Lip ``audio.py`` +
``hparams.py``; LatentSync's StableSyncNet reads the same features).

    mel = wav2lip_mel(wave)                      # (..., T) 16 kHz -> (..., 80, 1 + T // 200)
    frontend = Wav2LipMel()                      # the same as an nn.Module with buffers (on device)
    s = mel_start(frame_idx, fps)                # first mel frame of video frame i: int(80 * i / fps)
    w = mel_window(mel, frame_idx, fps, 16)      # (80, 16) = 0.2 s = 5 video frames at 25 fps

Recipe (all of it fixed by :class:`Wav2LipMelConfig`): pre-emphasis ``y[n] = x[n] - 0.97 x[n-1]``
(``y[0] = x[0]``, scipy ``lfilter([1, -k], [1])``); STFT n_fft 800, hop 200 (80 frames/s), win 800,
periodic Hann, centred with REFLECT padding (librosa 0.7's default, which Wav2Lip used; librosa
>= 0.10 pads with zeros by default); magnitude (power 1); 80 Slaney mels (Slaney norm) from 55 to
7600 Hz; ``20 log10(max(1e-5, mel)) - 20`` dB; symmetric normalisation
``clip(8 (S + 100) / 100 - 4, -4, 4)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avsuite.audio.frontend import mel_filterbank


@dataclass(frozen=True, kw_only=True)
class Wav2LipMelConfig:
    sample_rate: int = 16000
    n_fft: int = 800
    hop_length: int = 200
    win_length: int = 800
    n_mels: int = 80
    f_min: float = 55.0
    f_max: float = 7600.0
    preemphasis: float = 0.97
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    max_abs_value: float = 4.0

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft or self.hop_length < 1 or self.n_mels < 1:
            raise ValueError("need win_length <= n_fft, hop_length >= 1, n_mels >= 1")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {self.f_min}, {self.f_max}")

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length


WAV2LIP = Wav2LipMelConfig()


def preemphasize(wave: Tensor, k: float) -> Tensor:
    """``(..., T)`` -> ``(..., T)``: ``y[0] = x[0]``, ``y[n] = x[n] - k x[n-1]``."""
    if k == 0:
        return wave
    return torch.cat([wave[..., :1], wave[..., 1:] - k * wave[..., :-1]], dim=-1)


def _mel(wave: Tensor, cfg: Wav2LipMelConfig, window: Tensor, fb: Tensor) -> Tensor:
    lead = wave.shape[:-1]
    x = preemphasize(wave.reshape(-1, wave.shape[-1]), cfg.preemphasis)
    if x.shape[-1] <= cfg.n_fft // 2:
        raise ValueError(f"audio of {x.shape[-1]} samples is too short for the reflect-padded STFT "
                         f"(needs > {cfg.n_fft // 2})")
    spec = torch.stft(x, cfg.n_fft, cfg.hop_length, cfg.win_length, window=window, center=True,
                      pad_mode="reflect", return_complex=True).abs()          # (N, n_fft/2+1, F)
    mel = torch.matmul(fb.T, spec)                                             # (N, n_mels, F)
    min_level = 10.0 ** (cfg.min_level_db / 20.0)
    db = 20.0 * torch.log10(torch.clamp(mel, min=min_level)) - cfg.ref_level_db
    m = cfg.max_abs_value
    out = torch.clamp(2 * m * (db - cfg.min_level_db) / (-cfg.min_level_db) - m, -m, m)
    return out.reshape(*lead, cfg.n_mels, out.shape[-1])


@functools.lru_cache(maxsize=8)
def _buffers(cfg: Wav2LipMelConfig) -> tuple[Tensor, Tensor]:
    window = torch.hann_window(cfg.win_length, periodic=True)
    fb = mel_filterbank(cfg.n_fft // 2 + 1, cfg.sample_rate, cfg.n_mels, cfg.f_min, cfg.f_max,
                        scale="slaney", norm="slaney")
    return window, fb


def wav2lip_mel(wave: Tensor, cfg: Wav2LipMelConfig = WAV2LIP) -> Tensor:
    """``(..., T)`` float waveform at ``cfg.sample_rate`` -> ``(..., n_mels, 1 + T // hop)`` in
    ``[-max_abs_value, max_abs_value]`` (Wav2Lip's ``audio.melspectrogram``, channels first)."""
    window, fb = _buffers(cfg)
    return _mel(wave.float(), cfg, window.to(wave.device), fb.to(wave.device))


class Wav2LipMel(nn.Module):
    """:func:`wav2lip_mel` with its window and filterbank as (non-persistent) buffers."""

    def __init__(self, cfg: Wav2LipMelConfig = WAV2LIP):
        super().__init__()
        self.cfg = cfg
        window, fb = _buffers(cfg)
        self.register_buffer("window", window.clone(), persistent=False)
        self.register_buffer("fb", fb.clone(), persistent=False)

    def forward(self, wave: Tensor) -> Tensor:
        """``(..., T)`` -> ``(..., n_mels, 1 + T // hop)``."""
        return _mel(wave.float(), self.cfg, self.window, self.fb)


def mel_start(frame_idx: int, fps: float, mel_fps: float = 80.0) -> int:
    """First mel frame of video frame ``frame_idx`` (Wav2Lip: ``int(80. * (i / float(fps)))``)."""
    return int(mel_fps * (frame_idx / float(fps)))


def mel_window(mel: Tensor, frame_idx: int, fps: float, steps: int = 16, mel_fps: float = 80.0) -> Tensor | None:
    """``(..., n_mels, F)`` -> the ``(..., n_mels, steps)`` window of video frame ``frame_idx``,
    or None when it runs past the end (Wav2Lip skips such samples)."""
    s = mel_start(frame_idx, fps, mel_fps)
    if s < 0 or s + steps > mel.shape[-1]:
        return None
    return mel[..., s:s + steps]


def mel_steps(n_video_frames: int, fps: float = 25.0, mel_fps: float = 80.0) -> int:
    """Mel frames spanning ``n_video_frames`` (16 for 5 frames, 52 for 16 frames at 25 fps:
    LatentSync's ``ceil(n / 5 * 16)``)."""
    return math.ceil(n_video_frames * mel_fps / fps)
