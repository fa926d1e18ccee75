"""CompA composition-aware hard negatives and the modular (multi-positive) contrastive loss.

Both are one loss: every audio ``i`` has ``P`` positive captions ``pos_text[i, p]`` (valid where
``pos_mask[i, p]``) and ``K`` hard-negative captions of ITS OWN ``neg_text[i, k]`` (valid where
``neg_mask[i, k]``; e.g. order-swapped "Y followed by X" or operator-swapped "X with Y").
With ``s`` the exp'd logit scale, ``N`` the global batch, ``M`` the number of valid positives over
the global batch, ``C`` the set of all valid positive captions of all clips::

    l_i(c)  = s * <a_i, c>
    Z_i     = sum_{c in C} exp(l_i(c)) + sum_{k valid} exp(s * <a_i, neg_text[i, k]>)
    a2t     = 1/N sum_i  -1/|P_i| sum_{p in P_i} ( l_i(pos_text[i, p]) - log Z_i )
    t2a     = 1/M sum_{(i, p) valid} -log( exp(s <pos_text[i,p], a_i>) / sum_j exp(s <pos_text[i,p], a_j>) )
    loss    = (a2t + t2a) / 2

So audio->text logits run over [all positives of the batch] + [only its own K negatives]; hard
negatives never enter text->audio (they have no audio). Invalid entries are removed with
``masked_fill(-inf)`` (NOT CompA's multiplicative mask, which turns a masked negative logit into
``0`` — a large positive relative to real negative logits) and their features are zeroed first, so
padding (even NaN padding) can't change the loss or its gradients. Every audio must keep at least
one valid positive, so no softmax row is ever all ``-inf``.

- :func:`compa_loss` — ``P = 1`` (``pos_text`` may be ``(B, D)``); with ``K = 0`` or every negative
  masked it equals :func:`~avsuite.losses.contrastive.clap_loss`.
- :func:`modular_loss` — ``P >= 1`` positives per mixed audio (CompA's modular contrastive
  training), optionally with hard negatives; with ``P = 1`` it equals :func:`compa_loss`.
- :func:`text_hard_parts` — a text-only term on the same hard negatives: each composed caption
  ``text[i]`` must be nearer a PARAPHRASE of itself ``para[i]`` ("x then y" for "y after x") than its
  own hard negatives ("y followed by x")::

      text_hard = 1/V sum_{i valid} -log( exp(s <t_i, p_i>) / (exp(s <t_i, p_i>) + sum_k exp(s <t_i, n_ik>)) )

  It needs no audio: the audio terms can only separate swapped captions once the two audios
  differ, and they start almost equal (a saddle); this term separates the captions first.

Distributed gathering works as in :mod:`avsuite.losses.contrastive` (audio and positives are
gathered; negatives stay local because only their own audio sees them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from avsuite.losses.contrastive import (
    GatherContext,
    GradReduction,
    _as_scale,
    _compute_dtype,
    finish,
    gather_context,
)


def check_compa_inputs(
    audio: Tensor, pos_text: Tensor, pos_mask: Tensor | None, neg_text: Tensor | None, neg_mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Validate and normalise shapes -> ``(pos (B,P,D), pos_mask (B,P), neg (B,K,D), neg_mask (B,K))``."""
    if audio.dim() != 2 or audio.shape[0] == 0:
        raise ValueError(f"audio must be a non-empty (B, D), got {tuple(audio.shape)}")
    b, d = audio.shape
    pos = pos_text[:, None] if pos_text.dim() == 2 else pos_text
    if pos.dim() != 3 or pos.shape[0] != b or pos.shape[2] != d:
        raise ValueError(f"pos_text must be (B, D) or (B, P, D) with B={b}, D={d}; got {tuple(pos_text.shape)}")
    pm = torch.ones(pos.shape[:2], dtype=torch.bool, device=pos.device) if pos_mask is None else pos_mask
    if pm.dim() == 1 and pos_text.dim() == 2:
        pm = pm[:, None]
    if tuple(pm.shape) != tuple(pos.shape[:2]):
        raise ValueError(f"pos_mask must be (B, P) = {tuple(pos.shape[:2])}, got {tuple(pm.shape)}")
    pm = pm.to(device=pos.device, dtype=torch.bool)
    if not bool(pm.any(dim=1).all()):
        bad = torch.nonzero(~pm.any(dim=1))[:5, 0].tolist()
        raise ValueError(f"every audio needs at least one valid positive caption; rows {bad} have none")
    if neg_text is None:
        if neg_mask is not None:
            raise ValueError("neg_mask given without neg_text")
        neg = pos.new_zeros((b, 0, d))
    else:
        neg = neg_text
    if neg.dim() != 3 or neg.shape[0] != b or neg.shape[2] != d:
        raise ValueError(f"neg_text must be (B, K, D) with B={b}, D={d}; got {tuple(neg.shape)}")
    nm = torch.ones(neg.shape[:2], dtype=torch.bool, device=neg.device) if neg_mask is None else neg_mask
    if tuple(nm.shape) != tuple(neg.shape[:2]):
        raise ValueError(f"neg_mask must be (B, K) = {tuple(neg.shape[:2])}, got {tuple(nm.shape)}")
    return pos, pm, neg, nm.to(device=neg.device, dtype=torch.bool)


def compa_parts(
    a: Tensor, pos: Tensor, pmask: Tensor, neg: Tensor, nmask: Tensor,
    a_all: Tensor, pos_all: Tensor, pmask_all: Tensor, s: Tensor, ctx: GatherContext,
    name: str = "compa",
) -> dict[str, Tensor]:
    """Sum-decomposable parts for this rank's rows. Shapes: ``a (B,D)``, ``pos (B,P,D)``,
    ``pmask (B,P)``, ``neg (B,K,D)``, ``nmask (B,K)``, ``a_all (N,D)``, ``pos_all (N,P,D)``,
    ``pmask_all (N,P)``."""
    b, p, d = pos.shape
    n = a_all.shape[0]
    ninf = float("-inf")
    # zero padded features so garbage (even NaN) in masked slots can't leak into values or grads
    pos = pos.masked_fill(~pmask[..., None], 0.0)
    pos_all = pos_all.masked_fill(~pmask_all[..., None], 0.0)
    neg = neg.masked_fill(~nmask[..., None], 0.0)
    # audio -> text: all valid positives of the batch + this audio's own valid negatives
    l_pos = (s * a @ pos_all.reshape(n * p, d).T).masked_fill(~pmask_all.reshape(1, n * p), ninf)
    l_neg = (s * torch.einsum("bd,bkd->bk", a, neg)).masked_fill(~nmask, ninf)
    log_z = torch.logsumexp(torch.cat([l_pos, l_neg], dim=1), dim=1)  # (B,)
    rows = torch.arange(b, device=a.device)
    own = l_pos.reshape(b, n, p)[rows, rows + ctx.offset]  # (B, P)
    logp = torch.where(pmask, own - log_z[:, None], torch.zeros_like(own))
    a2t = (-logp.sum(dim=1) / pmask.sum(dim=1)).sum() / ctx.n
    # text -> audio: every valid positive caption is a query over all audios
    l_t2a = s * pos.reshape(b * p, d) @ a_all.T  # (B*P, N)
    target = (rows + ctx.offset).repeat_interleave(p)
    ce = F.cross_entropy(l_t2a, target, reduction="none")
    m = pmask_all.sum().to(ce.dtype)
    t2a = torch.where(pmask.reshape(-1), ce, torch.zeros_like(ce)).sum() / m
    return {name: (a2t + t2a) / 2, f"{name}_a2t": a2t, f"{name}_t2a": t2a}


def _run(
    name: str, audio: Tensor, pos_text: Tensor, logit_scale, pos_mask, neg_text, neg_mask,
    gather: bool, grad_reduction: GradReduction,
) -> dict[str, Tensor]:
    pos, pm, neg, nm = check_compa_inputs(audio, pos_text, pos_mask, neg_text, neg_mask)
    dt = _compute_dtype(audio, pos, neg)
    audio, pos, neg = audio.to(dt), pos.to(dt), neg.to(dt)
    ctx = gather_context(audio.shape[0], gather=gather, grad_reduction=grad_reduction)
    s = _as_scale(logit_scale, audio)
    pm_all = ctx.gather(pm.to(dt)).detach() > 0.5 if ctx.world_size > 1 else pm
    parts = compa_parts(audio, pos, pm, neg, nm, ctx.gather(audio), ctx.gather(pos), pm_all, s, ctx, name)
    return finish({"loss": parts[name], **parts}, ctx)


def compa_loss(
    audio: Tensor, text: Tensor, logit_scale: Tensor | float, *,
    neg_text: Tensor | None = None, neg_mask: Tensor | None = None,
    gather: bool = True, grad_reduction: GradReduction = "mean",
) -> dict[str, Tensor]:
    """CLAP + per-audio hard negatives. ``audio, text: (B, D)``, ``neg_text: (B, K, D)``,
    ``neg_mask: (B, K)`` bool (True = real negative). Returns ``{"loss", "compa", "compa_a2t",
    "compa_t2a"}``; equals ``clap_loss`` when ``K = 0`` or all negatives are masked."""
    if text.dim() != 2:
        raise ValueError(f"compa_loss: text must be (B, D), got {tuple(text.shape)}; use modular_loss for (B, P, D)")
    return _run("compa", audio, text, logit_scale, None, neg_text, neg_mask, gather, grad_reduction)


def modular_loss(
    audio: Tensor, pos_text: Tensor, logit_scale: Tensor | float, *,
    pos_mask: Tensor | None = None, neg_text: Tensor | None = None, neg_mask: Tensor | None = None,
    gather: bool = True, grad_reduction: GradReduction = "mean",
) -> dict[str, Tensor]:
    """Multi-positive InfoNCE. ``audio: (B, D)``, ``pos_text: (B, P, D)``, ``pos_mask: (B, P)``
    (every row needs one True), optional ``neg_text (B, K, D)`` / ``neg_mask (B, K)``.
    Returns ``{"loss", "modular", "modular_a2t", "modular_t2a"}``."""
    return _run("modular", audio, pos_text, logit_scale, pos_mask, neg_text, neg_mask, gather, grad_reduction)


def text_hard_parts(text: Tensor, para: Tensor, para_mask: Tensor, neg: Tensor, nmask: Tensor, s: Tensor,
                    ctx: GatherContext, name: str = "text_hard") -> dict[str, Tensor]:
    """This rank's part of the text hard-negative term. ``text, para: (B, D)`` unit-norm, ``para_mask:
    (B,)`` (rows with a paraphrase and >= 1 valid negative count), ``neg: (B, K, D)``, ``nmask: (B, K)``.
    Sum-decomposable over ranks (divided by the GLOBAL number of valid rows); 0 when none is valid."""
    valid = para_mask.to(torch.bool) & nmask.any(dim=1)
    count = ctx.gather(valid.to(text.dtype)[:, None]).sum() if ctx.world_size > 1 else valid.sum().to(text.dtype)
    neg = neg.masked_fill(~nmask[..., None], 0.0)
    para = para.masked_fill(~valid[:, None], 0.0)
    l_pos = s * (text * para).sum(-1)                                               # (B,)
    l_neg = (s * torch.einsum("bd,bkd->bk", text, neg)).masked_fill(~nmask, float("-inf"))
    logits = torch.cat([l_pos[:, None], l_neg], dim=1)
    ce = torch.logsumexp(logits, dim=1) - l_pos
    total = torch.where(valid, ce, torch.zeros_like(ce)).sum() / count.clamp(min=1)
    return {name: total}
