"""A fast path for the commonest corpus file: 16-bit PCM WAV, read with one ``pread`` of its window.

:func:`read_pcm16` parses the RIFF header itself and converts ``int16 -> float32`` as libsndfile
does (``x / 32768``, exact), so its samples equal ``soundfile.read(..., dtype="float32")`` bit
for bit; it returns None for anything else (other sample formats, compressed or odd headers) and
the caller uses soundfile. It skips soundfile's per-call Python work (format tables, seek and
info calls: ~0.3 ms per clip, a third of a 3 s crop's decode), and it refuses a truncated file
(the header promises more frames than the file holds) with the same message as the soundfile path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

_PCM, _EXTENSIBLE = 1, 0xFFFE
_SUBTYPE_PCM = b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def _layout(head: bytes) -> tuple[int, int, int, int] | None:
    """``(channels, rate, data offset, data bytes)`` of a 16-bit PCM WAV header, else None."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        body = head[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                return None
            tag, ch, rate = (int.from_bytes(body[0:2], "little"), int.from_bytes(body[2:4], "little"),
                             int.from_bytes(body[4:8], "little"))
            bits = int.from_bytes(body[14:16], "little")
            if tag == _EXTENSIBLE and (len(body) < 40 or body[24:40] != _SUBTYPE_PCM):
                return None
            if tag not in (_PCM, _EXTENSIBLE) or bits != 16 or ch < 1 or rate < 1:
                return None
            fmt = (ch, rate)
        elif cid == b"data":
            if fmt is None or size in (0, 0xFFFFFFFF):         # streamed wavs: leave them to libsndfile
                return None
            return fmt[0], fmt[1], pos + 8, size
        pos += 8 + size + (size & 1)
    return None


def read_pcm16(path: Path, size: int, pick: Callable[[int, int], tuple[int, int]]
               ) -> tuple[np.ndarray, int] | None:
    """``(data (T,) mono or (C, T), rate)`` of frames ``pick(rate, frames) -> [a, b)`` of a 16-bit
    PCM WAV of ``size`` bytes, or None when the file is not one (use soundfile). ``pick`` may raise
    (too long, segment past the end); a truncated file raises ``ValueError(message)``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.pread(fd, 4096, 0)
        lay = _layout(head)
        if lay is None:
            return None
        ch, rate, offset, nbytes = lay
        promised, held = nbytes // (2 * ch), max(size - offset, 0) // (2 * ch)
        if promised > held + 1:
            raise ValueError(f"truncated file: the header promises {promised / rate:.2f} s, "
                             f"the file holds {held / rate:.2f} s")
        a, b = pick(rate, min(promised, held))
        raw = os.pread(fd, (b - a) * 2 * ch, offset + a * 2 * ch)
    finally:
        os.close(fd)
    pcm = np.frombuffer(raw, dtype="<i2", count=len(raw) // 2)
    data = np.multiply(pcm, np.float32(1.0 / 32768.0), dtype=np.float32)
    return (data, rate) if ch == 1 else (data.reshape(-1, ch).T, rate)
