"""Render a talking face: a still face image + a viseme track -> frames whose mouth follows the speech.

    face = procedural_face(3, size=128)                       # or real_face(image, mouth=(cx, cy, w))
    style = clip_style(rng)                                    # per-clip jaw gain, colours, head motion
    frames = render(face, track, style)                        # (T, S, S, 3) uint8 RGB

Per frame: (1) a smooth remap moves the jaw/chin down by ``open`` and stretches or narrows the mouth
corners by ``spread``/``round``; (2) the mouth is painted with anti-aliased analytic shapes: lips
(identity colour), a dark cavity whose height follows ``open``, upper/lower teeth and a tongue when
open, rounding makes it narrow, tall and thick-lipped; (3) a slow small head motion (rotation,
translation, scale) moves the whole frame; (4) a per-clip colour jitter and optional mirror.
Geometry is in pixels of the ``S x S`` face-centred frame: mouth centre about ``(0.5 S, 0.7 S)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avsuite.data.corpora.visemes import VisemeTrack


@dataclass(frozen=True, kw_only=True)
class Face:
    """One identity: ``image`` (S, S, 3) float32 0..255 with no (or a closed) mouth, the mouth centre
    and half-width in pixels, lip and skin colours, and whether the image already shows a mouth
    (a real face: it is covered with skin colour first)."""

    name: str
    image: np.ndarray
    mouth: tuple[float, float, float]
    lip: tuple[float, float, float]
    skin: tuple[float, float, float]
    chin: float                      # y of the chin (px): the jaw warp fades out below it
    has_mouth: bool = False
    source: str = "procedural"


@dataclass(frozen=True, kw_only=True)
class ClipStyle:
    """Per-clip randomness of the rendering (drawn by :func:`clip_style`)."""

    jaw: float = 1.0                 # cavity / jaw-drop gain
    lip_thickness: float = 1.0
    cavity: tuple[float, float, float] = (45.0, 12.0, 18.0)
    teeth: tuple[float, float, float] = (232.0, 228.0, 215.0)
    tongue: tuple[float, float, float] = (175.0, 70.0, 80.0)
    motion: float = 1.0              # head motion amplitude (1 = about +-2 px, +-2 deg, < 0.4 Hz)
    phases: tuple[float, ...] = (0.0,) * 8
    freqs: tuple[float, ...] = (0.3,) * 8
    color_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    brightness: float = 0.0
    mirror: bool = False


def clip_style(rng: np.random.Generator, *, motion: float = 1.0) -> ClipStyle:
    dark = rng.uniform(0.6, 1.4)
    return ClipStyle(jaw=float(rng.uniform(0.85, 1.2)), lip_thickness=float(rng.uniform(0.8, 1.25)),
                     cavity=tuple(float(c * dark) for c in (45.0, 12.0, 18.0)),
                     teeth=tuple(float(c) for c in rng.uniform(205, 245) * np.array([1.0, 0.98, 0.92])),
                     tongue=tuple(float(c) for c in rng.uniform(0.8, 1.1) * np.array([175.0, 70.0, 80.0])),
                     motion=float(motion * rng.uniform(0.5, 1.2)),
                     phases=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 8)),
                     freqs=tuple(float(f) for f in rng.uniform(0.1, 0.4, 8)),
                     color_gain=tuple(float(g) for g in rng.uniform(0.88, 1.12, 3)),
                     brightness=float(rng.uniform(-15, 15)), mirror=bool(rng.random() < 0.5))


def _soft(r: np.ndarray, scale: float) -> np.ndarray:
    """Anti-aliased inside-mask of ``r < 1`` where ``scale`` px is the distance per unit of ``r``."""
    return np.clip((1.0 - r) * scale + 0.5, 0.0, 1.0)


def _ellipse(x: np.ndarray, y: np.ndarray, a: float, b_top: float, b_bot: float) -> tuple[np.ndarray, float]:
    b = np.where(y < 0, max(b_top, 1e-3), max(b_bot, 1e-3))
    r = np.sqrt((x / max(a, 1e-3)) ** 2 + (y / b) ** 2)
    return r, min(a, max(b_top, b_bot))


def _blend(img: np.ndarray, mask: np.ndarray, color) -> None:
    img += mask[..., None] * (np.asarray(color, np.float32) - img)


def _jaw_maps(face: Face, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grids ``X, Y`` and the jaw (vertical) and corner (horizontal) weight fields, each (S, S)."""
    cx, cy, w = face.mouth
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    lat = np.exp(-0.5 * ((xx - cx) / (1.9 * w)) ** 2)
    rise = np.clip((yy - (cy - 0.1 * w)) / (0.35 * w), 0.0, 1.0)
    fall = np.clip(1.0 - (yy - face.chin) / (0.6 * w), 0.0, 1.0)
    jaw = (lat * rise * fall).astype(np.float32)
    corner = np.exp(-0.5 * (((xx - cx) / (1.6 * w)) ** 2 + ((yy - cy) / (0.7 * w)) ** 2)).astype(np.float32)
    return xx, yy, jaw, corner


def _paint_mouth(img: np.ndarray, face: Face, style: ClipStyle, o: float, s: float, r: float) -> None:
    """Paint the mouth for ``open o``, ``spread s``, ``round r`` into ``img`` (S, S, 3) float32, in place."""
    cx, cy, w = face.mouth
    size = img.shape[0]
    hmax = 0.55 * w * style.jaw
    h = o * hmax                                   # cavity half-height (px)
    width = w * (1.0 + 0.2 * s - 0.38 * r)         # mouth half-width
    t = 0.22 * w * style.lip_thickness * (1.0 + 0.5 * r)
    ccy = cy + 0.5 * h                             # cavity centre: the jaw opens downward
    x0, x1 = int(max(cx - 1.6 * w, 0)), int(min(cx + 1.6 * w + 1, size))
    y0, y1 = int(max(cy - 1.2 * w, 0)), int(min(cy + 1.6 * w + 2 * hmax, size))
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - cx, yy - ccy
    patch = img[y0:y1, x0:x1]
    if face.has_mouth:  # cover the photo's own mouth with skin, softly
        rr, sc = _ellipse(dx, yy - cy, 1.25 * w, 0.5 * w, 0.55 * w + h)
        _blend(patch, 0.95 * np.clip((1.0 - rr) * 3.0, 0.0, 1.0), face.skin)
    r_out, sc_out = _ellipse(dx, dy, width + 0.15 * t, h + t, h + 1.15 * t)
    lips = _soft(r_out, sc_out)
    lip = np.asarray(face.lip, np.float32)
    shade = np.clip(1.0 - 0.18 * np.clip(dy / max(h + t, 1.0), -1, 1), 0.75, 1.2)[..., None]
    patch += lips[..., None] * (lip * shade - patch)
    ch = max(h, 0.45)                              # closed lips still show a dark line
    cw = width * (0.92 - 0.25 * r) + 0.5 * r * ch
    r_cav, sc_cav = _ellipse(dx, dy, cw, ch, ch)
    cav = _soft(r_cav, sc_cav) * (0.75 if h < 0.5 else 1.0)
    _blend(patch, cav, style.cavity)
    if h > 0.8:
        teeth_h = min(0.3 * w, 0.8 * h)
        top = np.clip((dy + ch - teeth_h) / -1.0 + 0.5, 0.0, 1.0)        # rows above cavity top + teeth_h
        _blend(patch, cav * top * float(np.clip(1.0 - 0.8 * r, 0.2, 1.0)), style.teeth)
        tongue_r, tsc = _ellipse(dx, dy - 0.75 * ch, 0.7 * cw, 0.55 * ch, 0.55 * ch)
        _blend(patch, cav * _soft(tongue_r, tsc) * float(np.clip((o - 0.2) * 2.5, 0.0, 0.9)), style.tongue)
        if o > 0.55:
            low = np.clip((dy - ch + 0.35 * teeth_h) + 0.5, 0.0, 1.0)
            _blend(patch, cav * low * 0.8 * float(np.clip(1.0 - r, 0.0, 1.0)), style.teeth)


def _head_affine(i: int, fps: float, size: int, style: ClipStyle) -> np.ndarray:
    """The 2x3 affine of the slow head motion at frame ``i``."""
    t = i / fps
    ph, fr = style.phases, style.freqs
    wave = [np.sin(2 * np.pi * fr[k] * t + ph[k]) - np.sin(ph[k]) for k in range(4)]
    angle = 1.0 * style.motion * wave[0]
    tx, ty = 1.2 * style.motion * wave[1], 1.0 * style.motion * wave[2]
    scale = 1.0 + 0.012 * style.motion * wave[3]
    a = np.deg2rad(angle)
    c = size / 2.0
    m = np.array([[scale * np.cos(a), -scale * np.sin(a), 0.0], [scale * np.sin(a), scale * np.cos(a), 0.0]])
    m[:, 2] = np.array([c + tx, c + ty]) - m[:, :2] @ np.array([c, c])
    return m.astype(np.float32)


def render(face: Face, track: VisemeTrack, style: ClipStyle, *, fps: float = 25.0) -> np.ndarray:
    """-> ``(T, S, S, 3)`` uint8 RGB frames, one per entry of ``track``."""
    import cv2

    size = face.image.shape[0]
    xx, yy, jaw, corner = _jaw_maps(face, size)
    cx, _, w = face.mouth
    drop = 1.55 * 0.55 * w * style.jaw            # jaw drop (px) at open = 1: matches the cavity
    gain = np.asarray(style.color_gain, np.float32)
    out = np.empty((len(track), size, size, 3), np.uint8)
    for i in range(len(track)):
        o, s, r = float(track.open[i]), float(track.spread[i]), float(track.round[i])
        stretch = 0.15 * s - 0.3 * r
        map_x = xx - stretch * (xx - cx) * corner / (1.0 + stretch)
        map_y = yy - o * drop * jaw
        img = cv2.remap(face.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        _paint_mouth(img, face, style, o, s, r)
        img = cv2.warpAffine(img, _head_affine(i, fps, size, style), (size, size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
        img = img * gain + style.brightness
        if style.mirror:
            img = img[:, ::-1]
        out[i] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return out


def mouth_box(face: Face, *, margin: float = 1.3) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` pixels around the mouth at full opening, in the unmoved, unmirrored frame."""
    cx, cy, w = face.mouth
    size = face.image.shape[0]
    return (int(max(cx - margin * w, 0)), int(max(cy - 0.6 * w, 0)), int(min(cx + margin * w, size)),
            int(min(cy + 1.5 * w, size)))


__all__ = ["ClipStyle", "Face", "clip_style", "mouth_box", "render"]
