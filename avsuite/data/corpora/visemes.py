"""Phonemes (espeak-ng English mnemonics with start times) -> per-video-frame mouth shape.

    track = viseme_track(speech.phonemes, end=speech.seconds, n_frames=75, fps=25)
    track.open, track.spread, track.round       # (T,) each; open 0 = lips closed .. 1 = jaw wide open

Each phoneme has one or two targets ``(open, spread, round)`` (diphthongs glide from the first to
the second). Keys are placed in the phoneme's interval; stops (``p b t d k g``) get their closure
key before the release the event marks, bilabials (``p b m``) close the lips fully; the mouth rests until
``ANTICIPATION_S`` before the first phoneme. The keys are
linearly interpolated on a 1 ms grid, smoothed with a Gaussian (coarticulation, ``smooth_s``) and
averaged over each frame's interval ``[i/fps, (i+1)/fps)``. Pauses (``_``, ``_:``) relax to rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REST = (0.0, 0.0, 0.0)
_CLOSED = (0.0, -0.05, 0.1)
_VOWELS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "a": ((1.0, 0.25, 0.0),), "a#": ((0.9, 0.2, 0.0),), "aa": ((1.0, 0.2, 0.0),), "A:": ((1.0, 0.1, 0.1),),
    "A@": ((0.95, 0.1, 0.15),), "A": ((1.0, 0.1, 0.1),), "V": ((0.75, 0.15, 0.0),), "@": ((0.45, 0.1, 0.0),),
    "@2": ((0.4, 0.1, 0.0),), "@5": ((0.4, 0.0, 0.2),), "@L": ((0.4, 0.1, 0.0),), "3": ((0.4, 0.0, 0.3),),
    "3:": ((0.5, 0.0, 0.35),), "E": ((0.65, 0.45, 0.0),), "e": ((0.6, 0.45, 0.0),), "I": ((0.35, 0.7, 0.0),),
    "I2": ((0.35, 0.65, 0.0),), "I#": ((0.35, 0.6, 0.0),), "i": ((0.3, 0.8, 0.0),), "i:": ((0.28, 0.95, 0.0),),
    "0": ((0.85, -0.1, 0.45),), "O": ((0.75, -0.25, 0.7),), "O:": ((0.7, -0.3, 0.8),), "O@": ((0.7, -0.3, 0.75),),
    "o@": ((0.65, -0.3, 0.8),), "U": ((0.35, -0.3, 0.75),), "u:": ((0.25, -0.45, 1.0),), "u": ((0.25, -0.4, 0.95),),
    "aI": ((1.0, 0.25, 0.0), (0.35, 0.7, 0.0)), "aI@": ((1.0, 0.25, 0.0), (0.45, 0.2, 0.0)),
    "aU": ((1.0, 0.2, 0.0), (0.35, -0.35, 0.8)), "eI": ((0.65, 0.45, 0.0), (0.35, 0.75, 0.0)),
    "oU": ((0.7, -0.25, 0.65), (0.3, -0.45, 0.95)), "OI": ((0.75, -0.3, 0.75), (0.35, 0.7, 0.0)),
    "e@": ((0.65, 0.4, 0.0), (0.45, 0.1, 0.0)), "i@": ((0.3, 0.8, 0.0), (0.45, 0.1, 0.0)),
    "i@3": ((0.3, 0.8, 0.0), (0.45, 0.0, 0.3)), "U@": ((0.35, -0.3, 0.75), (0.45, 0.1, 0.0)),
}
_CONSONANTS: dict[str, tuple[float, float, float]] = {
    "p": _CLOSED, "b": _CLOSED, "m": _CLOSED, "f": (0.08, 0.15, 0.0), "v": (0.08, 0.15, 0.0),
    "T": (0.2, 0.15, 0.0), "D": (0.2, 0.15, 0.0), "t": (0.2, 0.25, 0.0), "d": (0.2, 0.25, 0.0),
    "n": (0.2, 0.2, 0.0), "l": (0.3, 0.15, 0.0), "s": (0.1, 0.45, 0.0), "z": (0.1, 0.45, 0.0),
    "S": (0.18, -0.2, 0.65), "Z": (0.18, -0.2, 0.65), "tS": (0.18, -0.2, 0.6), "dZ": (0.18, -0.2, 0.6),
    "k": (0.3, 0.1, 0.0), "g": (0.3, 0.1, 0.0), "N": (0.3, 0.1, 0.0), "x": (0.3, 0.1, 0.0),
    "r": (0.2, -0.15, 0.55), "w": (0.1, -0.35, 0.95), "j": (0.2, 0.6, 0.0), "C": (0.2, 0.5, 0.0),
}
_STOPS = frozenset("pbtdkg")
_BILABIAL = frozenset("pbm")
#: how long before a stop's release (its event time) the closure starts (s)
CLOSURE_S = 0.06
#: how long before the first sound the mouth leaves its rest shape (s)
ANTICIPATION_S = 0.1


def targets(phoneme: str) -> tuple[tuple[float, float, float], ...] | None:
    """The ``(open, spread, round)`` target(s) of one mnemonic; ``()`` for a pause; None for ``h``
    (it takes the shape of its neighbours)."""
    p = phoneme.strip()
    if not p or p.startswith("_") or p in {"'", ",", "%", "=", ";"}:
        return ()
    if p == "h":
        return None
    if p in _VOWELS:
        return _VOWELS[p]
    if p in _CONSONANTS:
        return (_CONSONANTS[p],)
    for n in (3, 2, 1):  # a mnemonic with a suffix (``t#``, ``l/``, ``@-``) or an accent variant
        if p[:n] in _VOWELS:
            return _VOWELS[p[:n]]
        if p[:n] in _CONSONANTS:
            return (_CONSONANTS[p[:n]],)
    return ((0.45, 0.1, 0.0),) if p[0] in "aeiouAEIOUV@03" else ((0.2, 0.1, 0.0),)


@dataclass(frozen=True, kw_only=True)
class VisemeTrack:
    """Per-frame mouth shape, each ``(T,)`` float32: ``open`` [0, 1], ``spread`` [-1, 1], ``round`` [0, 1]."""

    open: np.ndarray
    spread: np.ndarray
    round: np.ndarray

    def __len__(self) -> int:
        return len(self.open)


def _keys(phonemes: tuple[tuple[str, float], ...], end: float) -> list[tuple[float, tuple[float, float, float]]]:
    keys: list[tuple[float, tuple[float, float, float]]] = [(0.0, REST)]
    if phonemes and phonemes[0][1] > ANTICIPATION_S:  # rest until the lips start moving for the first sound
        keys.append((phonemes[0][1] - ANTICIPATION_S, REST))
    for i, (name, start) in enumerate(phonemes):
        stop = phonemes[i + 1][1] if i + 1 < len(phonemes) else end
        stop = max(stop, start + 1e-3)
        tg = targets(name)
        if tg is None:
            continue
        if not tg:  # a pause: rest through it (if it is long enough to relax into)
            if stop - start > 0.12:
                keys += [(start + 0.05, REST), (stop - 0.05, REST)]
            continue
        base = name.strip()[:1]
        if base in _STOPS and name.strip() not in _VOWELS:
            keys += [(start - CLOSURE_S, tg[0]), (start + 0.3 * (stop - start) if base in _BILABIAL else start, tg[0])]
        elif len(tg) == 1:
            keys += [(start + 0.25 * (stop - start), tg[0]), (start + 0.75 * (stop - start), tg[0])]
        else:
            keys += [(start + 0.3 * (stop - start), tg[0]), (start + 0.9 * (stop - start), tg[1])]
    keys.append((end, REST))
    keys.sort(key=lambda k: k[0])
    return keys


def viseme_track(phonemes: tuple[tuple[str, float], ...] | list, *, end: float, n_frames: int, fps: float = 25.0,
                 smooth_s: float = 0.03, offset_s: float = 0.0, gain: float = 1.0) -> VisemeTrack:
    """Mouth shape per frame for phonemes ``(name, start_s)`` (times relative to the clip start plus
    ``offset_s``); ``gain`` scales ``open`` (clipped to [0, 1])."""
    phonemes = tuple((str(n), float(t) + offset_s) for n, t in phonemes)
    keys = _keys(phonemes, max(end, phonemes[-1][1] if phonemes else 0.0))
    grid = np.arange(0.0, n_frames / fps + 1e-9, 1e-3)
    kt = np.array([k[0] for k in keys])
    kv = np.array([k[1] for k in keys], dtype=np.float64)
    curves = np.stack([np.interp(grid, kt, kv[:, j]) for j in range(3)])  # (3, G)
    if smooth_s > 0:
        half = int(4 * smooth_s * 1000)
        x = np.arange(-half, half + 1) / 1000.0
        kern = np.exp(-0.5 * (x / smooth_s) ** 2)
        kern /= kern.sum()
        padded = np.pad(curves, ((0, 0), (half, half)), mode="edge")
        curves = np.stack([np.convolve(c, kern, mode="valid") for c in padded])
    edges = np.clip(np.round(np.arange(n_frames + 1) / fps * 1000).astype(int), 0, curves.shape[1])
    per = np.stack([curves[:, a:max(b, a + 1)].mean(axis=1) if a < curves.shape[1] else curves[:, -1]
                    for a, b in zip(edges[:-1], edges[1:])]) if n_frames else np.zeros((0, 3))
    per = per.astype(np.float32)
    return VisemeTrack(open=np.clip(per[:, 0] * gain, 0.0, 1.0), spread=np.clip(per[:, 1], -1.0, 1.0),
                       round=np.clip(per[:, 2], 0.0, 1.0))


__all__ = ["REST", "VisemeTrack", "targets", "viseme_track"]
