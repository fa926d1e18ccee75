"""The video stage of the one reader: AV manifest rows -> SyncNet examples (positives + negatives).

    reader = Reader(manifest, cfg, train=True, collate=collate_sync, load=SyncLoad())
    batch = next(iter(reader))         # SyncBatch: frames (B, 3T, H/2, W), mel (B, 1, 80, S), label (B,)

Rows: ``{"id", "audio", "video", "duration", "sr", "fps", "n_frames", ["face_box": [x0, y0, x1, y1]]}``
(AV corpus; ``face_box`` in pixels, else ``cfg.crop_box`` as fractions of the frame). Same Reader,
same plan / shuffle / rank sharding / state as every recipe: only the load function is new.

Per item (row i, generator seeded by (seed, epoch, batch, slot), so a resumed run reads the same):

- a window start s (uniform over the windows whose frames and mel exist); frames s..s+T-1 are
  decoded (:func:`decode_video`), cropped to the face box, resized to ``face_size x face_width``
  (bilinear, antialiased, rounded to uint8) and cut to their lower half;
- label 1 with probability ``positive_prob``: the mel window of the same clip at ``int(80 s / fps)``;
- label 0 otherwise: with probability ``other_clip_prob`` the audio of ANOTHER clip (random window),
  else the same clip's audio at a start s' with ``|s' - s| >= min_shift`` frames (``hard_min_shift``
  from epoch ``hard_from_epoch`` on: the curriculum "easy negatives first").

The mel is the Wav2Lip mel of the whole clip (:mod:`avsuite.audio.wav2lip_mel`), sliced as Wav2Lip does.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avsuite.audio.wav2lip_mel import mel_start, wav2lip_mel
from avsuite.data.batches import _Movable
from avsuite.data.pipeline import DataConfig, ItemContext, SkipRow

KINDS = ("pos", "other", "shift")

@dataclass(frozen=True, kw_only=True)
class AVDataConfig(DataConfig):
    """DataConfig + what every video recipe crops: windows of frames, the face (or mouth) box, mel columns."""
    #: video frames per window (5: Wav2Lip's SyncNet, 16: LatentSync)
    n_frames: int = 5
    #: mel frames per window (SyncNet: 16 for 5 frames at 25 fps, 52 for 16) or per frame (generator tokens)
    mel_steps: int = 16
    #: the face crop is resized to face_size x face_size (a SyncNet may ask another face_width)
    face_size: int = 64
    #: face box as fractions (x0, y0, x1, y1) of the frame, for rows without a "face_box"
    crop_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    #: (side, dy) in mouth half-widths: crop a square around the row's ``mouth`` [cx, cy, half_width]
    #: instead (side * hw pixels, centred dy * hw below the mouth centre: :func:`mouth_box`); rows
    #: without ``mouth`` are skipped (``no_mouth``)
    mouth_crop: tuple[float, float] | None = None
    drop_last: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_frames < 1 or self.mel_steps < 1 or self.face_size < 2:
            raise ValueError("n_frames and mel_steps must be >= 1 and face_size >= 2")
        x0, y0, x1, y1 = self.crop_box
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"crop_box must be fractions x0 < x1, y0 < y1 in [0, 1], got {list(self.crop_box)}")
        if self.mouth_crop is not None and not self.mouth_crop[0] > 0:
            raise ValueError(f"mouth_crop side must be > 0, got {list(self.mouth_crop)}")


@dataclass(frozen=True, kw_only=True)
class SyncDataConfig(AVDataConfig):
    """AVDataConfig + the SyncNet window and negative sampling."""
    #: the SyncNet input is face_size (H) x face_width (W); the model sees its lower half
    face_width: int = 64
    positive_prob: float = 0.5
    #: fraction of the negatives that take another clip's audio (the rest: the same clip, shifted)
    other_clip_prob: float = 0.5
    #: shifted negatives: |s' - s| >= min_shift frames ...
    min_shift: int = 5
    #: ... and >= hard_min_shift from epoch hard_from_epoch on (null: never)
    hard_min_shift: int = 2
    hard_from_epoch: int | None = None
    #: train on part k of n disjoint parts of the training clips (every n-th clip from the k-th): two
    #: experts on disjoint data, e.g. the generator's loss on [0, 2] and its evaluator on [1, 2]
    train_part: tuple[int, int] = (0, 1)
    #: keep each clip's mel and face crops (all frames, ~12 KB per 64 px frame) in memory after its
    #: first read; the examples are the same as without (one decode per clip instead of per window)
    memory_cache: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.face_width < 1:
            raise ValueError("face_width must be >= 1")
        for key in ("positive_prob", "other_clip_prob"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"{key} must be in [0, 1], got {getattr(self, key)}")
        if self.min_shift < 1 or self.hard_min_shift < 1:
            raise ValueError("min_shift and hard_min_shift must be >= 1")
        k, n = self.train_part
        if not 0 <= k < n:
            raise ValueError(f"train_part must be [k, n] with 0 <= k < n, got {list(self.train_part)}")


#: fewer samples than this give no Wav2Lip mel frame (window 800, centred)
MIN_MEL_SAMPLES = 401


def decode_speech(ctx: ItemContext, i: int, gen: torch.Generator) -> Tensor | None:
    """Row ``i``'s whole waveform (no crop) for a Wav2Lip mel; None after counting when it is
    unreadable or shorter than :data:`MIN_MEL_SAMPLES` (``too_short``)."""
    wave = ctx.decode(i, gen, crop_seconds=None)
    if wave is None:
        return None
    if wave.numel() < MIN_MEL_SAMPLES:
        ctx.skip("too_short", f"{ctx.row(i)['id']}: {wave.numel()} audio samples")
        return None
    return wave


# ----------------------------------------------------------------------------- frames
def decode_video(ctx: ItemContext, i: int, start: int, count: int) -> np.ndarray | None:
    """Frames ``start .. start+count-1`` of row ``i``'s video, ``(count, H, W, 3)`` uint8 RGB (read_video
    switches PyAV to FFmpeg's own log callback: safe in loader threads);
    None after counting (``unreadable``) when the file cannot be read (raises when strict)."""
    from avsuite.video.io import VideoDecodeError, read_video

    row = ctx.row(i)
    if not row.get("video"):
        ctx.skip("no_video", f"{row['id']}: the row has no 'video'")
        return None
    try:
        frames, _ = read_video(row["video"], start=start, count=count)
    except VideoDecodeError as exc:
        if ctx.cfg.strict:
            raise
        ctx.stats.add("unreadable", f"{row['id']}: {exc.reason}")
        return None
    return frames


def box_pixels(row: dict[str, Any], shape: tuple[int, int], crop_box: tuple[float, ...]) -> tuple[int, int, int, int]:
    """The row's ``face_box`` (pixels) or ``crop_box`` (fractions) as integer ``(x0, y0, x1, y1)``."""
    h, w = shape
    if row.get("face_box"):
        x0, y0, x1, y1 = (float(v) for v in row["face_box"])
    else:
        x0, y0, x1, y1 = crop_box[0] * w, crop_box[1] * h, crop_box[2] * w, crop_box[3] * h
    x0, y0 = max(0, int(round(x0))), max(0, int(round(y0)))
    x1, y1 = min(w, max(x0 + 1, int(round(x1)))), min(h, max(y0 + 1, int(round(y1))))
    return x0, y0, x1, y1


def mouth_box(mouth: Any, shape: tuple[int, int], spec: tuple[float, float]) -> tuple[int, int, int, int]:
    """``mouth`` [cx, cy, half_width] (pixels), frame ``(H, W)``, ``spec`` (side, dy) in half-widths ->
    the integer square ``(x0, y0, x1, y1)`` centred at (cx, cy + dy hw), shifted (not cut) to lie in
    the frame (cut only when it is larger than the frame). Also the lip-sync generator's crop."""
    cx, cy, hw = (float(v) for v in mouth)
    side = max(1, int(round(spec[0] * hw)))
    h, w = shape
    x0 = min(max(0, int(round(cx - side / 2))), max(0, w - side))
    y0 = min(max(0, int(round(cy + spec[1] * hw - side / 2))), max(0, h - side))
    return x0, y0, min(w, x0 + side), min(h, y0 + side)


def clip_box(row: dict[str, Any], shape: tuple[int, int], cfg: AVDataConfig) -> tuple[int, int, int, int] | None:
    """The crop of a row: :func:`mouth_box` with ``cfg.mouth_crop`` (None when the row has no
    ``mouth``), else :func:`box_pixels` (``face_box`` or ``cfg.crop_box``)."""
    if cfg.mouth_crop is not None:
        return mouth_box(row["mouth"], shape, cfg.mouth_crop) if row.get("mouth") else None
    return box_pixels(row, shape, cfg.crop_box)


def crop_faces(frames: np.ndarray | Tensor, box: tuple[int, int, int, int], size: tuple[int, int]) -> Tensor:
    """``(T, H, W, 3)`` uint8 -> ``(T, size_h, size_w, 3)`` uint8: the box, bilinear + antialias, rounded."""
    x0, y0, x1, y1 = box
    x = torch.as_tensor(np.asarray(frames))[:, y0:y1, x0:x1].permute(0, 3, 1, 2).float()
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def read_clips(rows: Any, cfg: AVDataConfig, box: Callable[..., tuple[int, int, int, int] | None],
               size: tuple[int, int], limit: int | None = None
               ) -> Iterator[tuple[dict[str, Any], Tensor, Tensor, float]]:
    """``(row, faces (T, H, W, 3) uint8 crops of ``box(row, (H, W), cfg)`` at ``size``, wave (S,) float32
    at ``cfg.sample_rate``, fps)`` of the readable rows among the first ``limit`` (all when None); rows
    whose video or audio cannot be read, without a box, or with audio shorter than one mel window
    (:data:`MIN_MEL_SAMPLES`) are passed over. The whole-clip reader of the evaluations and caches."""
    from avsuite.audio.io import AudioDecodeError, load_audio
    from avsuite.video.io import VideoDecodeError, read_video

    for i in range(len(rows) if limit is None else min(limit, len(rows))):
        row = rows[i]
        try:
            frames, fps = read_video(row["video"])
            wave, _ = load_audio(row["audio"], cfg.sample_rate)
        except (VideoDecodeError, AudioDecodeError, OSError, ValueError):
            continue
        b = box(row, frames.shape[1:3], cfg)
        if b is None or wave.numel() < MIN_MEL_SAMPLES:
            continue
        yield (row, crop_faces(frames, b, size), torch.as_tensor(np.asarray(wave, dtype=np.float32)),
               float(row.get("fps") or fps or 25.0))


def frames_to_input(faces: Tensor, pixel_range: str = "unit") -> Tensor:
    """``(B, T, H, W, 3)`` uint8 RGB face crops -> ``(B, 3T, H - H // 2, W)`` float: lower half,
    frames concatenated frame-major along channels (Wav2Lip / LatentSync), in [0, 1] or [-1, 1]."""
    b, t, h, w, c = faces.shape
    x = faces[:, :, h // 2:].permute(0, 1, 4, 2, 3).reshape(b, t * c, h - h // 2, w).float() / 255.0
    return x * 2 - 1 if pixel_range == "signed" else x


# ----------------------------------------------------------------------------- windows
def n_windows(n_frames: int, n_mel: int, fps: float, window: int, mel_steps: int) -> int:
    """Number of valid window starts s: frames s..s+window-1 exist and the mel window fits."""
    n = max(0, n_frames - window + 1)
    while n > 0 and mel_start(n - 1, fps) + mel_steps > n_mel:
        n -= 1
    return n


def _randint(gen: torch.Generator, n: int) -> int:
    return int(torch.randint(n, (), generator=gen))


def _shifted(gen: torch.Generator, s: int, n: int, min_shift: int) -> int | None:
    """A start in [0, n) at least ``min_shift`` frames from ``s`` (None when there is none)."""
    choices = [t for t in range(n) if abs(t - s) >= min_shift]
    return choices[_randint(gen, len(choices))] if choices else None


@dataclass
class _Audio:
    mel: Tensor           # (80, F)
    fps: float
    n_win: int


@dataclass
class SyncLoad:
    """The reader's ``load(ctx, item, gen)`` for SyncNet training / evaluation (see module doc)."""
    #: row indices another-clip negatives may draw from (None: every row)
    pool: list[int] | None = None
    _mels: dict[str, tuple[Tensor, int]] = field(default_factory=dict, repr=False)
    _faces: dict[tuple[Any, ...], Tensor] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _audio(self, ctx: ItemContext, i: int, gen: torch.Generator) -> _Audio | None:
        row, cfg = ctx.row(i), ctx.cfg
        fps, n_frames = float(row.get("fps") or 25.0), row.get("n_frames")
        hit = self._mels.get(row["audio"]) if cfg.memory_cache else None
        if hit is not None:
            if ctx.train:                           # ctx.decode draws its crop position: same stream
                torch.rand((), generator=gen)
            mel, n_samples = hit
        else:
            wave = decode_speech(ctx, i, gen)
            if wave is None:
                return None
            mel, n_samples = wav2lip_mel(wave), wave.numel()
            if cfg.memory_cache:
                with self._lock:
                    self._mels[row["audio"]] = (mel, n_samples)
        if n_frames is None:
            n_frames = int(math.floor(n_samples / cfg.sample_rate * fps))
        n = n_windows(int(n_frames), mel.shape[-1], fps, cfg.n_frames, cfg.mel_steps)
        if n < 1:
            ctx.skip("too_short", f"{row['id']}: shorter than one {cfg.n_frames}-frame window")
            return None
        return _Audio(mel, fps, n)

    def __call__(self, ctx: ItemContext, item: Any, gen: torch.Generator) -> dict[str, Any] | None:
        cfg: SyncDataConfig = ctx.cfg               # type: ignore[assignment]
        i = int(item)
        own = self._audio(ctx, i, gen)
        if own is None:
            return None
        s = _randint(gen, own.n_win)
        u, v = float(torch.rand((), generator=gen)), float(torch.rand((), generator=gen))
        kind = "pos" if u < cfg.positive_prob else ("other" if v < cfg.other_clip_prob else "shift")
        mel, fps_a, start_a = own.mel, own.fps, s
        if kind == "shift":
            hard = cfg.hard_from_epoch is not None and ctx.epoch >= cfg.hard_from_epoch
            t = _shifted(gen, s, own.n_win, cfg.hard_min_shift if hard else cfg.min_shift)
            if t is None:                            # clip too short to shift: take another clip's audio
                kind = "other"
            else:
                start_a = t
        if kind == "other":
            other = self._other(ctx, i, gen)
            if other is None:
                raise SkipRow("no_negative", f"{ctx.row(i)['id']}: no other clip to draw a negative from")
            mel, fps_a, start_a = other.mel, other.fps, _randint(gen, other.n_win)
        row = ctx.row(i)
        faces = self._faces_of(ctx, i, s) if cfg.memory_cache else _window_faces(ctx, i, s)
        if faces is None:
            return None
        m0 = mel_start(start_a, fps_a)
        return {"id": row["id"], "faces": faces, "mel": mel[:, m0:m0 + cfg.mel_steps].clone(),
                "label": 1.0 if kind == "pos" else 0.0, "kind": kind, "start": s, "audio_start": start_a}

    def _faces_of(self, ctx: ItemContext, i: int, s: int) -> Tensor | None:
        """The window's crops from the in-memory clip (the whole video decoded and cropped once)."""
        cfg: SyncDataConfig = ctx.cfg               # type: ignore[assignment]
        row = ctx.row(i)
        key = (row.get("video"), row.get("face_box"))
        clip = self._faces.get(key)
        if clip is None:
            clip = _window_faces(ctx, i, 0, None)
            if clip is None:
                return None
            with self._lock:
                self._faces[key] = clip
        if len(clip) < s + cfg.n_frames:
            ctx.stats.add("unreadable", f"{row['id']}: {len(clip)} frames, the window needs {s + cfg.n_frames}")
            return None
        return clip[s:s + cfg.n_frames]

    def _other(self, ctx: ItemContext, i: int, gen: torch.Generator) -> _Audio | None:
        pool = self.pool if self.pool is not None else range(len(ctx.rows))
        pool = [j for j in pool if j != i]
        for _ in range(4):                          # an unreadable other clip: try another
            if not pool:
                return None
            j = pool[_randint(gen, len(pool))]
            got = self._audio(ctx, j, gen)
            if got is not None:
                return got
        return None


def _window_faces(ctx: ItemContext, i: int, s: int, count: int | None = -1) -> Tensor | None:
    """Frames ``s .. s + count - 1`` of row ``i`` (``count`` -1: ``cfg.n_frames``; None: to the end)
    cropped to the face box and resized: ``(count, face_size, face_width, 3)`` uint8."""
    cfg: SyncDataConfig = ctx.cfg                   # type: ignore[assignment]
    frames = decode_video(ctx, i, s, cfg.n_frames if count == -1 else count)
    if frames is None:
        return None
    box = clip_box(ctx.row(i), frames.shape[1:3], cfg)
    if box is None:
        ctx.skip("no_mouth", f"{ctx.row(i)['id']}: data.mouth_crop needs the row's 'mouth' [cx, cy, half_width]")
        return None
    return crop_faces(frames, box, (cfg.face_size, cfg.face_width))


@dataclass(frozen=True)
class SyncBatch(_Movable):
    """``frames (B, 3T, H/2, W)`` float in [0, 1] (lower halves, frame-major channels),
    ``mel (B, 1, 80, S)``, ``label (B,)`` float (1 = in sync), ``kinds`` ("pos" / "other" / "shift")."""
    frames: Tensor
    mel: Tensor
    label: Tensor
    ids: list[str]
    kinds: list[str] = field(default_factory=list)


def collate_sync(examples: list[dict[str, Any]]) -> SyncBatch:
    faces = torch.stack([e["faces"] for e in examples])                   # (B, T, H, W, 3) uint8
    return SyncBatch(frames=frames_to_input(faces), mel=torch.stack([e["mel"] for e in examples])[:, None],
                     label=torch.tensor([e["label"] for e in examples], dtype=torch.float32),
                     ids=[e["id"] for e in examples], kinds=[e["kind"] for e in examples])


__all__ = ["AVDataConfig", "SyncDataConfig", "decode_speech", "MIN_MEL_SAMPLES", "SyncLoad", "SyncBatch", "collate_sync", "decode_video", "crop_faces", "box_pixels",
           "mouth_box", "clip_box",
           "frames_to_input", "n_windows", "KINDS"]
