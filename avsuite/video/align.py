"""LatentSync-style face alignment, the fixed lower-face mask, and paste-back.

    crop, affine = align_face(frame, face, size=64)     # (64, 64, 3) uint8, (2, 3) frame -> crop
    keep = lower_face_mask(64)                          # (64, 64) float32: 1 keep, 0 regenerate
    masked = crop * keep[..., None]                     # what the generator sees
    out = paste_back(frame, new_crop, affine)           # soft paste of the whole crop
    out = paste_back(frame, new_crop, affine, region=1 - keep)   # only the regenerated region

Alignment (LatentSync's ``AlignRestore``): a similarity transform (Umeyama, no reflection)
maps the 3 points of a :class:`~avsuite.video.faces.Face` (image-left eyebrow centre,
image-right eyebrow centre, nose centre) onto ``TEMPLATE`` = [[17, 20], [58, 20], [37.5, 40]]
x 2.8 in a 210 x 280 (w x h) crop, which is then resized to ``size`` x ``size`` (anisotropic,
as LatentSync does; INTER_AREA when shrinking, Lanczos when enlarging). The returned
``affine`` is the composition, in pixel-centre coordinates: crop = affine @ [x, y, 1].

Smoothing (:func:`smooth_points`) averages the alignment points over a centred window
*within each run of consecutive detected frames*; frames without a face are never used
and never filled in.

Paste-back (LatentSync's ``restore_img``): the crop is inverse-warped into the frame, the
warped crop area (or ``region``, crop-space weights) is eroded and Gaussian-blurred into a
soft mask whose support stays inside that area; pixels where the soft mask is 0 are
returned bit-exact, and only the bounding box of the warped crop is touched.
"""

from __future__ import annotations

import math

import numpy as np

#: LatentSync's 3-point template in the 210 x 280 crop (x, y pixels).
TEMPLATE = np.array([[17.0, 20.0], [58.0, 20.0], [37.5, 40.0]]) * 2.8
CROP_W, CROP_H = 210, 280

#: The fixed lower-face mask's geometry, as fractions of the square crop (LatentSync's
#: mask.png: regenerate rows ~37 %..95 % minus a nose notch, ~41 % of the pixels).
MASK_TOP, MASK_BOTTOM = 0.37, 0.95
MASK_LEFT, MASK_RIGHT = 0.14, 0.86
NOTCH_LEFT, NOTCH_RIGHT, NOTCH_BOTTOM = 0.42, 0.58, 0.48


def umeyama(src, dst, *, allow_reflection: bool = False) -> np.ndarray:
    """Least-squares similarity transform (2, 3) with ``dst ~= M @ [src, 1]`` (Umeyama 1991).
    Without ``allow_reflection`` the rotation has det +1 (a mirrored point set is fitted by the
    best proper rotation, never flipped). ``src``/``dst``: (N, 2), N >= 2, src not all equal."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"umeyama needs two (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("umeyama: points must be finite")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s ** 2).sum(1).mean()
    if var_s <= 1e-12:
        raise ValueError("umeyama: the source points coincide")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.ones(2)
    if not allow_reflection and np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[-1] = -1.0
    r = u @ np.diag(e) @ vt
    scale = (sig * e).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = mu_d - scale * r @ mu_s
    return m


def apply_affine(affine, points) -> np.ndarray:
    """(N, 2) points mapped by a (2, 3) affine."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    a = np.asarray(affine, np.float64)
    return p @ a[:, :2].T + a[:, 2]


def invert_affine(affine) -> np.ndarray:
    a = np.asarray(affine, np.float64)
    inv = np.linalg.inv(np.vstack([a, [0.0, 0.0, 1.0]]))
    return inv[:2]


def runs(mask) -> list[tuple[int, int]]:
    """[start, stop) index ranges of the consecutive True runs of a 1-D bool array."""
    m = np.asarray(mask, bool).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], m, [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def smooth_points(points, has_face, window: int = 5) -> np.ndarray:
    """Centred moving average of per-frame points (T, K, 2) (or affines (T, 2, 3), or any
    (T, ...) array) over ``window`` frames, computed separately inside each run of frames
    with ``has_face`` (the window shrinks at run ends). Rows without a face come back as they
    went in. ``window <= 1`` returns a copy."""
    x = np.asarray(points, np.float64)
    has = np.asarray(has_face, bool)
    if len(x) != len(has):
        raise ValueError(f"{len(x)} point rows but {len(has)} has_face flags")
    out = x.copy()
    half = max(0, int(window) // 2)
    if half == 0:
        return out
    for a, b in runs(has):
        seg = x[a:b]
        csum = np.concatenate([np.zeros((1,) + seg.shape[1:]), np.cumsum(seg, 0)])
        idx = np.arange(b - a)
        lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, b - a)
        shape = (-1,) + (1,) * (seg.ndim - 1)
        out[a:b] = (csum[hi] - csum[lo]) / (hi - lo).reshape(shape)
    return out


def crop_geometry(size: int) -> tuple[int, int, np.ndarray]:
    """(width, height, template) of the intermediate crop for a working ``size``: LatentSync's
    210 x 280 scaled by max(1, size / 256) (its ``resolution / 256 * 2.8``)."""
    k = max(1.0, size / 256.0)
    return int(round(CROP_W * k)), int(round(CROP_H * k)), TEMPLATE * k


def alignment_affine(points, size: int) -> np.ndarray:
    """(2, 3) frame -> (size x size crop) affine for 3 alignment points (pixel-centre convention)."""
    w, h, tmpl = crop_geometry(size)
    m = np.vstack([umeyama(points, tmpl), [0.0, 0.0, 1.0]])
    # cv2.resize maps pixel centres: x' = (x + 0.5) * s - 0.5
    sx, sy = size / w, size / h
    r = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return (r @ m)[:2]


def _points_of(face_or_points) -> np.ndarray:
    pts = getattr(face_or_points, "align_points", face_or_points)
    pts = np.asarray(pts, np.float64)
    if pts.shape != (3, 2):
        raise ValueError(f"alignment needs 3 (x, y) points, got shape {pts.shape}")
    return pts


def align_face(frame: np.ndarray, face, size: int) -> tuple[np.ndarray, np.ndarray]:
    """-> ``(crop (size, size, 3) uint8, affine (2, 3))``; ``face`` is a Face or its (3, 2)
    alignment points (e.g. smoothed ones). Outside the frame the crop repeats the edge pixels."""
    import cv2

    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    pts = _points_of(face)
    w, h, tmpl = crop_geometry(size)
    m = umeyama(pts, tmpl)
    inter = cv2.warpAffine(np.ascontiguousarray(frame), m, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if size < min(w, h) else cv2.INTER_LANCZOS4
    crop = cv2.resize(inter, (size, size), interpolation=interp)
    return crop, alignment_affine(pts, size)


def lower_face_mask(size: int) -> np.ndarray:
    """(size, size) float32 LatentSync-style fixed mask: 1 = keep, 0 = regenerate (the lower
    face, rows ~37 %..95 %, columns ~14 %..86 %, minus a nose notch at the top centre)."""
    m = np.ones((size, size), np.float32)
    r = lambda f: int(round(f * size))  # noqa: E731
    m[r(MASK_TOP):r(MASK_BOTTOM), r(MASK_LEFT):r(MASK_RIGHT)] = 0.0
    m[r(MASK_TOP):r(NOTCH_BOTTOM), r(NOTCH_LEFT):r(NOTCH_RIGHT)] = 1.0
    return m


def _footprint(affine_inv: np.ndarray, size: int, width: int, height: int):
    """Integer bounding box (x0, y0, x1, y1) in the frame of the crop square warped back, clipped."""
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    c = apply_affine(affine_inv, corners)
    x0, y0 = max(0, int(math.floor(c[:, 0].min())) - 1), max(0, int(math.floor(c[:, 1].min())) - 1)
    x1, y1 = min(width, int(math.ceil(c[:, 0].max())) + 2), min(height, int(math.ceil(c[:, 1].max())) + 2)
    return x0, y0, x1, y1


def soft_paste_mask(affine, size: int, frame_hw: tuple[int, int], region=None):
    """The paste weights: ``((x0, y0, x1, y1), weights (y1-y0, x1-x0) float32 in [0, 1])`` or
    ``None`` when the crop does not land in the frame. ``region`` (size, size) crop-space weights
    (1 = take from the crop), default the whole crop. LatentSync's recipe: warp, erode 2 px,
    edge w = sqrt(area) // 20, erode by 2w, Gaussian blur 2w + 1; the result is clamped to the
    eroded area so nothing outside it changes."""
    import cv2

    height, width = frame_hw
    a = np.asarray(affine, np.float64)
    x0, y0, x1, y1 = _footprint(invert_affine(a), size, width, height)
    if x1 <= x0 or y1 <= y0:
        return None
    sub = a.copy()
    sub[:, 2] += sub[:, :2] @ np.array([x0, y0], np.float64)      # sub-window pixel -> crop
    reg = np.ones((size, size), np.float32) if region is None else np.asarray(region, np.float32)
    if reg.shape != (size, size):
        raise ValueError(f"region must be ({size}, {size}), got {reg.shape}")
    inv = cv2.warpAffine(reg, sub, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inv = cv2.erode(inv, np.ones((2, 2), np.uint8))
    support = inv > 0
    if not support.any():
        return None
    w_edge = int(math.sqrt(float(inv.sum()))) // 20
    if w_edge > 0:
        soft = cv2.erode(inv, np.ones((2 * w_edge, 2 * w_edge), np.uint8))
        soft = cv2.GaussianBlur(soft, (2 * w_edge + 1, 2 * w_edge + 1), 0)
    else:
        soft = inv
    soft = np.clip(soft, 0.0, 1.0) * support
    return (x0, y0, x1, y1), soft.astype(np.float32)


def paste_back(frame: np.ndarray, crop: np.ndarray, affine, *, region=None) -> np.ndarray:
    """A copy of ``frame`` with ``crop`` (size, size, 3) inverse-warped in through the soft
    mask of :func:`soft_paste_mask`; every pixel whose weight is 0 is bit-exact."""
    import cv2

    frame = np.asarray(frame)
    crop = np.ascontiguousarray(crop)
    size = crop.shape[0]
    if crop.ndim != 3 or crop.shape[1] != size or crop.shape[2] != 3:
        raise ValueError(f"crop must be (size, size, 3), got {crop.shape}")
    out = frame.copy()
    got = soft_paste_mask(affine, size, frame.shape[:2], region)
    if got is None:
        return out
    (x0, y0, x1, y1), soft = got
    sub = np.asarray(affine, np.float64).copy()
    sub[:, 2] += sub[:, :2] @ np.array([x0, y0], np.float64)
    warped = cv2.warpAffine(crop, sub, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    win = out[y0:y1, x0:x1]
    s = soft[:, :, None]
    blended = np.clip(np.rint(s * warped + (1.0 - s) * win.astype(np.float32)), 0, 255).astype(np.uint8)
    touched = soft > 0
    win[touched] = blended[touched]
    return out
