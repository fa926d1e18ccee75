"""Band-limited (windowed-sinc, polyphase) resampling in plain torch.

Pure function :func:`resample` and a module :class:`Resample` that precomputes its kernel as a
buffer, so it runs on the model's device. The kernel is a Hann-windowed sinc low-pass at
``rolloff * min(orig, new) / 2``, evaluated at the ``new/gcd`` output phases (the same design as
torchaudio's default ``sinc_interp_hann``; tests check the two agree to ~1e-6).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@functools.lru_cache(maxsize=64)
def sinc_kernel(orig_sr: int, new_sr: int, *, width: int = 6, rolloff: float = 0.99,
                dtype: torch.dtype = torch.float32) -> tuple[Tensor, int]:
    """Return the ``(new, 1, K)`` polyphase kernel and its half-width in input samples.

    Cached per rate pair (decoding a corpus resamples the same pairs thousands of times); the
    returned tensor is shared, so callers must not modify it in place.
    """
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    base = min(orig, new) * rolloff
    half = int(math.ceil(width * orig / base))
    idx = torch.arange(-half, half + orig, dtype=torch.float64)[None, None] / orig
    t = (-torch.arange(new, dtype=torch.float64)[None, :, None] / new + idx) * base
    t = t.clamp(-width, width)
    window = torch.cos(t * math.pi / width / 2) ** 2
    t = t * math.pi
    scale = base / orig
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * scale
    return kernel.view(new, 1, -1).to(dtype), half


def _apply(wave: Tensor, kernel: Tensor, half: int, orig: int, new: int) -> Tensor:
    shape = wave.shape
    x = wave.reshape(-1, 1, shape[-1])
    n = shape[-1]
    x = F.pad(x, (half, half + orig))
    y = F.conv1d(x, kernel.to(x.dtype), stride=orig)          # (N, new, frames)
    y = y.transpose(1, 2).reshape(x.shape[0], -1)
    out_len = int(math.ceil(new * n / orig))
    return y[..., :out_len].reshape(*shape[:-1], out_len)


#: above this many polyphase phases (an odd rate pair such as 22254 -> 16000 Hz needs 8000 phases of
#: 11127 taps) the kernel would cost more than the signal: use band-limited FFT resampling instead
MAX_PHASES = 1000


def fft_resample(wave: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Band-limited resampling by truncating / zero-padding the spectrum; ``(..., T)`` -> ``(..., T')``.

    The signal is zero-padded first (>= 0.1 s, to a length that maps to an integer output length)
    so the FFT's circular wrap-around stays off the clip's end.
    """
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    t = wave.shape[-1]
    n_out = math.ceil(t * new / orig)
    total = -(-(t + orig_sr // 10) // orig) * orig
    m = total // orig * new
    spec = torch.fft.rfft(F.pad(wave.double(), (0, total - t)))
    out = torch.zeros(*spec.shape[:-1], m // 2 + 1, dtype=spec.dtype, device=spec.device)
    k = min(spec.shape[-1], out.shape[-1])
    out[..., :k] = spec[..., :k]
    return (torch.fft.irfft(out, n=m) * (m / total))[..., :n_out].to(wave.dtype)


#: rate pairs with fewer output phases than this (32 -> 16 kHz has one) compute several consecutive
#: output frames per conv1d step: a (1, 1, T) convolution with one output channel is 3-6x slower
#: on CPU than the same sums laid out over 16 output channels
BLOCK_PHASES = 16


@functools.lru_cache(maxsize=64)
def _blocked_kernel(orig_sr: int, new_sr: int, width: int, rolloff: float, dtype: torch.dtype,
                    blocks: int) -> Tensor:
    """``(blocks * new, 1, K + (blocks - 1) * orig)``: the polyphase kernel's rows for ``blocks``
    consecutive input frames (row block j shifted by ``j * orig`` taps, zeros elsewhere)."""
    kernel, _ = sinc_kernel(orig_sr, new_sr, width=width, rolloff=rolloff, dtype=dtype)
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    k = kernel.shape[-1]
    out = kernel.new_zeros(blocks * new, 1, k + (blocks - 1) * orig)
    for j in range(blocks):
        out[j * new:(j + 1) * new, :, j * orig:j * orig + k] = kernel
    return out


def resample(wave: Tensor, orig_sr: int, new_sr: int, *, width: int = 6, rolloff: float = 0.99) -> Tensor:
    """Resample ``(..., T)`` from ``orig_sr`` to ``new_sr``; returns ``(..., ceil(T*new/orig))``."""
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return wave
    g = math.gcd(orig_sr, new_sr)
    if max(orig_sr, new_sr) // g > MAX_PHASES:
        return fft_resample(wave, orig_sr, new_sr)
    kernel, half = sinc_kernel(orig_sr, new_sr, width=width, rolloff=rolloff, dtype=wave.dtype)
    blocks = max(1, BLOCK_PHASES // (new_sr // g))
    if blocks > 1:
        kernel = _blocked_kernel(orig_sr, new_sr, width, rolloff, wave.dtype, blocks)
    return _apply(wave, kernel.to(wave.device), half, orig_sr // g * blocks, new_sr // g * blocks)


def input_span(orig_sr: int, new_sr: int, out_start: int, out_stop: int, total_in: int | None = None
               ) -> tuple[int, int, int]:
    """The input samples ``[a, b)`` to resample for outputs ``[out_start, out_stop)`` of the whole signal.

    Returns ``(a, b, first)``: ``resample(x[a:b])[k]`` is output ``first + k`` of ``resample(x)``
    (the same taps: ``a`` keeps the polyphase/block alignment, both ends keep the kernel's support),
    so a segment of a long file is read and resampled without the rest. Float sums may differ in
    the last bit; the FFT path (odd rate pairs) keeps 0.1 s of context and is close, not equal.
    ``total_in`` (when known) clips ``b``.
    """
    if orig_sr == new_sr:
        b = out_stop if total_in is None else min(out_stop, total_in)
        return out_start, b, out_start
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    if max(orig_sr, new_sr) // g > MAX_PHASES:
        step, ctx = orig, orig_sr // 10 + orig
    else:
        step = orig * max(1, BLOCK_PHASES // new)
        ctx = sinc_kernel(orig_sr, new_sr)[1] + step + 1
    a = max(0, (out_start * orig // new - ctx) // step * step)
    b = -(-out_stop * orig // new) + ctx
    return a, (b if total_in is None else min(b, total_in)), a // orig * new


class Resample(nn.Module):
    """``(..., T)`` at ``orig_sr`` -> ``(..., T')`` at ``new_sr``; kernel held as a buffer."""

    def __init__(self, orig_sr: int, new_sr: int, *, width: int = 6, rolloff: float = 0.99):
        super().__init__()
        g = math.gcd(orig_sr, new_sr)
        self.orig, self.new = orig_sr // g, new_sr // g
        self.identity = orig_sr == new_sr
        kernel, self.half = sinc_kernel(orig_sr, new_sr, width=width, rolloff=rolloff)
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, wave: Tensor) -> Tensor:
        if self.identity:
            return wave
        return _apply(wave, self.kernel, self.half, self.orig, self.new)
