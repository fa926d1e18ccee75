"""CWCL: Continuously Weighted Contrastive Loss (Srinivasa et al., 2023).

Standard InfoNCE treats pair ``(i, j != i)`` as fully negative. CWCL weights every pair by how
similar the two samples are in a FROZEN pre-trained tower (e.g. the text tower's text-text cosine),
so near-duplicates ("a dog barks" / "a dog barking") are not pushed apart. With ``l_ij = s <a_i, t_j>``
(``s`` exp'd logit scale), ``N`` the global batch and weights ``w_ij in [0, 1]``::

    a2t  = 1/N sum_i  -( sum_j w_ij log softmax_j(l_i.) ) / sum_j w_ij
    t2a  = 1/N sum_i  -( sum_j w_ij log softmax_j(l_.i) ) / sum_j w_ij     (softmax over audios)
    cwcl = (a2t + t2a) / 2

Weights from the frozen features ``f`` (``(B, Df)``; cosines ``c_ij``)::

    weight_map="affine":  w_ij = (1 + c_ij) / 2        (the paper's mapping to [0, 1])
    weight_map="relu":    w_ij = max(c_ij, 0)
    and w_ii = 1 always.

The same (symmetric) ``w`` serves both directions. With ``w = identity`` CWCL is exactly InfoNCE
(:func:`~avsuite.losses.contrastive.clap_loss`). Weights carry no gradient. Instead of
``frozen`` one may pass ``weights`` directly: ``(B, N)`` — this rank's rows against the GLOBAL batch
columns (``(B, B)`` when not distributed), non-negative, with a positive sum in every row.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from avsuite.losses.contrastive import (
    GatherContext,
    GradReduction,
    _as_scale,
    _compute_dtype,
    check_pair,
    finish,
    gather_context,
)

WeightMap = Literal["affine", "relu"]


def similarity_weights(f: Tensor, f_all: Tensor, offset: int = 0, weight_map: WeightMap = "affine") -> Tensor:
    """``(B, Df)`` local frozen features vs ``(N, Df)`` global -> ``(B, N)`` weights in [0, 1]."""
    c = F.normalize(f.detach(), dim=-1) @ F.normalize(f_all.detach(), dim=-1).T
    if weight_map == "affine":
        w = (1.0 + c) / 2.0
    elif weight_map == "relu":
        w = c.clamp_min(0.0)
    else:
        raise ValueError(f"weight_map must be 'affine' or 'relu', got {weight_map!r}")
    rows = torch.arange(f.shape[0], device=f.device)
    w = w.clamp(0.0, 1.0)
    w[rows, rows + offset] = 1.0
    return w


def _weighted_rows(logits: Tensor, w: Tensor) -> Tensor:
    logp = torch.log_softmax(logits, dim=1)
    return (-(w * logp).sum(dim=1) / w.sum(dim=1)).sum()


def cwcl_parts(
    a: Tensor, t: Tensor, a_all: Tensor, t_all: Tensor, s: Tensor, w: Tensor, ctx: GatherContext
) -> dict[str, Tensor]:
    """Sum-decomposable parts for this rank's rows; ``w: (B, N)``."""
    a2t = _weighted_rows(s * a @ t_all.T, w) / ctx.n
    t2a = _weighted_rows(s * t @ a_all.T, w) / ctx.n
    return {"cwcl": (a2t + t2a) / 2, "cwcl_a2t": a2t, "cwcl_t2a": t2a}


def check_weights(w: Tensor, b: int, n: int) -> Tensor:
    """Validate a ``(B, N)`` weight matrix (non-negative, finite, positive row sums)."""
    if tuple(w.shape) != (b, n):
        raise ValueError(f"cwcl weights must be (B, N) = ({b}, {n}) (local rows x global batch), got {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError("cwcl weights must be finite and non-negative")
    if bool((w.sum(dim=1) <= 0).any()):
        raise ValueError("cwcl weights: every row needs a positive sum (put weight on the positive pair)")
    return w.detach()


def cwcl_loss(
    audio: Tensor, text: Tensor, logit_scale: Tensor | float, *,
    frozen: Tensor | None = None, weights: Tensor | None = None, weight_map: WeightMap = "affine",
    gather: bool = True, grad_reduction: GradReduction = "mean",
) -> dict[str, Tensor]:
    """CWCL. ``audio, text: (B, D)``; exactly one of ``frozen: (B, Df)`` (frozen-tower features of
    the same samples, e.g. the frozen text tower's embeddings of the captions) or ``weights: (B, N)``.
    Returns ``{"loss", "cwcl", "cwcl_a2t", "cwcl_t2a"}``."""
    check_pair(audio, text, "cwcl_loss")
    if (frozen is None) == (weights is None):
        raise ValueError("cwcl_loss needs exactly one of frozen=(B, Df) features or weights=(B, N)")
    dt = _compute_dtype(audio, text)
    audio, text = audio.to(dt), text.to(dt)
    ctx = gather_context(audio.shape[0], gather=gather, grad_reduction=grad_reduction)
    if frozen is not None:
        if frozen.dim() != 2 or frozen.shape[0] != audio.shape[0]:
            raise ValueError(f"cwcl_loss: frozen must be (B, Df) with B={audio.shape[0]}, got {tuple(frozen.shape)}")
        f = frozen.detach().to(dt)
        w = similarity_weights(f, ctx.gather(f).detach(), ctx.offset, weight_map)
    else:
        w = check_weights(weights.to(device=audio.device, dtype=dt), audio.shape[0], ctx.n)
    s = _as_scale(logit_scale, audio)
    parts = cwcl_parts(audio, text, ctx.gather(audio), ctx.gather(text), s, w, ctx)
    return finish({"loss": parts["cwcl"], **parts}, ctx)
