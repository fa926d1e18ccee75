"""LSE-D / LSE-C / AV offset: syncnet_python's ``calc_pdist`` + ``evaluate``, for ANY SyncNet.

    im_feat, cc_feat = clip_features(model, faces, wave, fps)    # (N, D) each, one row per window
    m = lse(im_feat, cc_feat)                                    # {"lse_d", "lse_c", "av_offset", ...}
    pairs = offset_check(model, faces, wave, fps)                # [(k, offset read with audio k ahead)]

Algorithm (syncnet_python SyncNetInstance.evaluate, vshift 15): pad the audio features with
``vshift`` zero rows on both ends; for every video window v, the euclidean distances
(``pairwise_distance``, eps 1e-6) between ``im_feat[v]`` and ``cc_feat[v - vshift .. v + vshift]``
(2 vshift + 1 offsets); ``mdist`` = their mean over v per offset; ``LSE-D = min(mdist)``,
``LSE-C = median(mdist) - min(mdist)``, ``offset = vshift - argmin(mdist)``.

Sign: offset ``k`` means ``cc_feat[v] ~ im_feat[v + k]``, i.e. the audio window at v carries what
the mouth shows k frames later (the audio is k frames AHEAD of the video); 0 = in sync.

Numbers from a self-trained SyncNet are not comparable to published LSE values, which come from
syncnet_v2 (not available offline); they compare runs graded by the same evaluator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avsuite.audio.wav2lip_mel import mel_start, wav2lip_mel
from avsuite.data.av import frames_to_input

VSHIFT = 15


def calc_pdist(im_feat: Tensor, cc_feat: Tensor, vshift: int = VSHIFT) -> Tensor:
    """``(N, D), (N, D)`` -> ``dists (N, 2 vshift + 1)``: ``dists[v, j] = ||im[v] - ccpad[v + j] + 1e-6||``."""
    if im_feat.shape != cc_feat.shape or im_feat.ndim != 2:
        raise ValueError(f"need two (N, D) feature arrays of one shape, got {tuple(im_feat.shape)} "
                         f"and {tuple(cc_feat.shape)}")
    win = 2 * vshift + 1
    padded = F.pad(cc_feat, (0, 0, vshift, vshift))
    windows = padded.unfold(0, win, 1).transpose(1, 2)                   # (N, win, D)
    return F.pairwise_distance(im_feat[:, None, :].expand_as(windows).reshape(-1, im_feat.shape[1]),
                               windows.reshape(-1, im_feat.shape[1])).reshape(len(im_feat), win)


def lse(im_feat: Tensor, cc_feat: Tensor, vshift: int = VSHIFT) -> dict[str, Any]:
    """-> ``{"lse_d", "lse_c", "av_offset", "n_windows"}`` (floats) and ``"mdist"`` ``(2 vshift + 1,)``
    numpy, ``"frame_conf"`` ``(N,)`` numpy (median(mdist) - distance at the best offset, per window)."""
    if len(im_feat) == 0:
        raise ValueError("no windows: the clip is shorter than one SyncNet window")
    dists = calc_pdist(im_feat.float(), cc_feat.float(), vshift)
    mdist = dists.mean(dim=0)
    minval, minidx = torch.min(mdist, 0)
    med = torch.median(mdist)
    return {"lse_d": float(minval), "lse_c": float(med - minval), "av_offset": float(vshift - int(minidx)),
            "n_windows": float(len(im_feat)), "mdist": mdist.numpy(), "frame_conf": (med - dists[:, minidx]).numpy()}


def window_starts(n_frames: int, n_samples: int, fps: float, window: int, sample_rate: int = 16000) -> range:
    """First frame of every window (syncnet_python: ``range(min_len - window)`` with
    ``min_len = min(n_frames, floor(n_samples / (sample_rate / fps)))``)."""
    min_len = min(n_frames, int(n_samples // (sample_rate / fps)))
    return range(max(0, min_len - window))


@torch.no_grad()
def clip_features(model: Any, faces: np.ndarray | Tensor, wave: np.ndarray | Tensor, fps: float, *,
                  batch_size: int = 32) -> tuple[Tensor, Tensor]:
    """Embed every window of a clip with a SyncNet (:class:`avsuite.models.syncnet.SyncNet` or any
    module with ``cfg`` and ``encode_frames`` / ``encode_mel``).

    ``faces``: ``(T, H, W, 3)`` uint8 RGB crops at the model's face size; ``wave``: ``(S,)`` 16 kHz.
    -> ``(im_feat (N, D), cc_feat (N, D))`` on CPU, window v = frames v..v+n_frames-1 and the mel
    window starting at ``int(80 v / fps)``."""
    cfg = model.cfg
    faces = torch.as_tensor(np.asarray(faces))
    wave = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    if tuple(faces.shape[1:3]) != (cfg.face_size, cfg.face_width):
        raise ValueError(f"faces are {tuple(faces.shape[1:3])}; the model expects {(cfg.face_size, cfg.face_width)}")
    device = next(model.parameters()).device
    mel = wav2lip_mel(wave)                                        # (80, F)
    starts = [v for v in window_starts(len(faces), len(wave), fps, cfg.n_frames)
              if mel_start(v, fps) + cfg.mel_steps <= mel.shape[-1]]
    im, cc = [], []
    for k in range(0, len(starts), batch_size):
        chunk = starts[k:k + batch_size]
        x = frames_to_input(torch.stack([faces[v:v + cfg.n_frames] for v in chunk]), cfg.pixel_range)
        m = torch.stack([mel[:, mel_start(v, fps):mel_start(v, fps) + cfg.mel_steps] for v in chunk])[:, None]
        im.append(model.encode_frames(x.to(device)).float().cpu())
        cc.append(model.encode_mel(m.to(device)).float().cpu())
    if not im:
        return torch.zeros(0, 1), torch.zeros(0, 1)
    return torch.cat(im), torch.cat(cc)


def clip_lse(model: Any, faces: np.ndarray | Tensor, wave: np.ndarray | Tensor, fps: float,
             vshift: int = VSHIFT) -> dict[str, Any]:
    """:func:`clip_features` then :func:`lse`."""
    return lse(*clip_features(model, faces, wave, fps), vshift=vshift)


def shift_audio(wave: np.ndarray | Tensor, k: int, fps: float, sample_rate: int = 16000) -> Tensor:
    """The audio ``k`` frames AHEAD of the video (``k < 0``: behind), same length, zeros where it runs
    out: ``out[t] = wave[t + k * sample_rate / fps]``. LSE's offset of a synced clip with this audio is ``k``."""
    wave = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    n = int(round(k * sample_rate / fps))
    out = torch.zeros_like(wave)
    if n >= 0:
        out[:len(wave) - n] = wave[n:]
    else:
        out[-n:] = wave[:len(wave) + n]
    return out


@torch.no_grad()
def offset_check(model: Any, faces: np.ndarray | Tensor, wave: np.ndarray | Tensor, fps: float,
                 shifts: Any = range(-6, 7), vshift: int = VSHIFT) -> list[tuple[int, float]]:
    """The issue's check on a GROUND-TRUTH clip: for every shift ``k`` the AV offset LSE measures
    with the audio moved ``k`` frames ahead (:func:`shift_audio`) -> ``[(k, measured offset), ...]``.
    A good evaluator reads ``k`` (within a frame). The video features are computed once."""
    cfg = model.cfg
    im, _ = clip_features(model, faces, wave, fps)
    if len(im) == 0:
        raise ValueError("no windows: the clip is shorter than one SyncNet window")
    device = next(model.parameters()).device
    out = []
    for k in shifts:
        mel = wav2lip_mel(shift_audio(wave, int(k), fps))
        starts = range(len(im))
        m = torch.stack([mel[:, mel_start(v, fps):mel_start(v, fps) + cfg.mel_steps] for v in starts])[:, None]
        cc = torch.cat([model.encode_mel(m[i:i + 64].to(device)).float().cpu() for i in range(0, len(m), 64)])
        out.append((int(k), lse(im, cc, vshift)["av_offset"]))
    return out


def offset_summary(pairs: list[tuple[int, float]], tol: float = 1.0) -> dict[str, float]:
    """``[(k, measured), ...]`` over clips -> flat metrics: ``offset_check_within1`` (fraction of pairs
    with ``|measured - k| <= tol``), ``offset_check_exact``, ``offset_check_mae``, ``offset_check_pairs``
    and per k ``offset_check_k{k}`` (fraction within ``tol``; e.g. ``offset_check_k-3``)."""
    if not pairs:
        return {}
    k = np.array([p[0] for p in pairs], dtype=float)
    err = np.abs(np.array([p[1] for p in pairs], dtype=float) - k)
    out = {"offset_check_within1": float(np.mean(err <= tol)), "offset_check_exact": float(np.mean(err == 0)),
           "offset_check_mae": float(err.mean()), "offset_check_pairs": float(len(pairs))}
    for s in sorted(set(k.tolist())):
        out[f"offset_check_k{int(s)}"] = float(np.mean(err[k == s] <= tol))
    return out


def pair_accuracy(im_feat: Tensor, cc_feat: Tensor, min_shift: int = 5, seed: int = 0) -> tuple[int, int]:
    """Two-alternative check on one clip's windows (the learning-free baseline's protocol in
    docs/av_corpus.md): for every window v, is the aligned audio closer than the audio of a window
    v' with ``|v' - v| >= min_shift`` (one v' per v, seeded)? -> ``(right, pairs)``."""
    n = len(im_feat)
    rng = np.random.default_rng(seed)
    right = total = 0
    for v in range(n):
        far = [u for u in range(n) if abs(u - v) >= min_shift]
        if not far:
            continue
        u = far[int(rng.integers(len(far)))]
        d = torch.linalg.vector_norm(im_feat[v][None] - cc_feat[[v, u]], dim=1)
        right += int(d[0] < d[1])
        total += 1
    return right, total
