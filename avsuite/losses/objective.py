"""``ContrastiveObjective``: named, weighted loss terms summed into one ``"loss"``.

Recipes build one config and call :func:`compute_objective`; adding a term never changes callers::

    obj = ContrastiveObjective(clap=1.0, compa=0.5, cwcl=0.0)
    out = compute_objective(obj, audio, text, logit_scale, neg_text=neg, neg_mask=mask)
    out["loss"].backward(); log({k: v.item() for k, v in out.items()})

``loss = clap*clap + compa*compa + modular*modular + cwcl*cwcl + dcl*dcl + align_uniform*align_uniform
+ text_hard*text_hard``
over the terms with a non-zero weight; every computed term and its parts (``clap_a2t``, ...) are in
the returned dict (unweighted). Features are gathered across ranks ONCE and shared by every term;
the distributed semantics are those of :mod:`avsuite.losses.contrastive`.

Term inputs: ``compa`` uses ``neg_text (B,K,D)``/``neg_mask`` (none -> equals clap); ``modular``
needs ``pos_text (B,P,D)``/``pos_mask`` (and uses the negatives too); ``cwcl`` needs ``frozen
(B,Df)`` features of a frozen tower or ``cwcl_weights (B,N)``; ``text_hard`` (text only: a caption vs
its paraphrase and its hard negatives) needs ``para_text (B,D)``/``para_mask (B,)`` and the negatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from avsuite.losses.compa import check_compa_inputs, compa_parts, text_hard_parts
from avsuite.losses.contrastive import (
    _as_scale,
    _compute_dtype,
    align_uniform_parts,
    check_pair,
    clap_parts,
    dcl_parts,
    finish,
    gather_context,
)
from avsuite.losses.cwcl import check_weights, cwcl_parts, similarity_weights

TERMS = ("clap", "compa", "modular", "cwcl", "dcl", "align_uniform", "text_hard")


@dataclass(frozen=True, kw_only=True)
class ContrastiveObjective:
    """Weights per term (0 = off) and term options. YAML-friendly (values only)."""

    clap: float = 1.0
    compa: float = 0.0
    modular: float = 0.0
    cwcl: float = 0.0
    dcl: float = 0.0
    align_uniform: float = 0.0
    text_hard: float = 0.0
    #: text_hard's negatives: every hard negative, or only ``swap_mask``'s (order / attribute swaps)
    text_hard_negatives: Literal["all", "swaps"] = "all"
    cwcl_weight_map: Literal["affine", "relu"] = "affine"
    align_alpha: float = 2.0
    uniform_t: float = 2.0
    uniform_lam: float = 1.0
    gather: bool = True
    grad_reduction: Literal["mean", "sum"] = "mean"

    def __post_init__(self) -> None:
        for name in TERMS:
            w = getattr(self, name)
            if not isinstance(w, (int, float)) or w < 0:
                raise ValueError(f"ContrastiveObjective.{name} must be a number >= 0, got {w!r}")
        if not any(getattr(self, n) > 0 for n in TERMS):
            raise ValueError(f"ContrastiveObjective: all term weights are 0; set at least one of {TERMS}")
        if self.grad_reduction not in ("mean", "sum"):
            raise ValueError(f"grad_reduction must be 'mean' or 'sum', got {self.grad_reduction!r}")
        if self.text_hard_negatives not in ("all", "swaps"):
            raise ValueError(f"text_hard_negatives must be 'all' or 'swaps', got {self.text_hard_negatives!r}")
        if self.cwcl_weight_map not in ("affine", "relu"):
            raise ValueError(f"cwcl_weight_map must be 'affine' or 'relu', got {self.cwcl_weight_map!r}")

    def active(self) -> list[str]:
        return [n for n in TERMS if getattr(self, n) > 0]


def _term_parts(name, cfg, a, t, a_all, t_all, s, ctx, extra):
    if name == "clap":
        return clap_parts(a, t, a_all, t_all, s, ctx)
    if name == "dcl":
        return dcl_parts(a, t, a_all, t_all, s, ctx)
    if name == "align_uniform":
        return align_uniform_parts(
            a, t, a_all, t_all, ctx, alpha=cfg.align_alpha, t_uniform=cfg.uniform_t, lam=cfg.uniform_lam
        )
    if name == "cwcl":
        return cwcl_parts(a, t, a_all, t_all, s, extra["cwcl_w"], ctx)
    if name == "text_hard":
        return text_hard_parts(t, *extra["para"], *extra["text_hard_neg"], s, ctx)
    pos, pm, pos_all, pm_all = extra[name]
    neg, nm = extra["neg"]
    return compa_parts(a, pos, pm, neg, nm, a_all, pos_all, pm_all, s, ctx, name)


def _prepare_extra(cfg, audio, t_all, ctx, dt, pos_text, pos_mask, neg_text, neg_mask, frozen, cwcl_weights,
                   para_text=None, para_mask=None, swap_mask=None):
    extra = {}
    if cfg.compa > 0 or cfg.modular > 0 or cfg.text_hard > 0:
        _, _, neg, nm = check_compa_inputs(audio, audio, None, neg_text, neg_mask)
        extra["neg"] = (neg.to(dt), nm)
    if cfg.text_hard > 0:
        b = audio.shape[0]
        if para_text is None or para_text.shape != (b, audio.shape[1]):
            raise ValueError(f"ContrastiveObjective.text_hard > 0 needs para_text (B, D) = {tuple(audio.shape)}, "
                             f"got {None if para_text is None else tuple(para_text.shape)}")
        pm = torch.ones(b, dtype=torch.bool, device=audio.device) if para_mask is None else para_mask.to(torch.bool)
        if pm.shape != (b,):
            raise ValueError(f"para_mask must be (B,) = ({b},), got {tuple(pm.shape)}")
        extra["para"] = (para_text.to(dt), pm)
        neg, nm = extra["neg"]
        if cfg.text_hard_negatives == "swaps":
            if swap_mask is None or tuple(swap_mask.shape) != tuple(nm.shape):
                raise ValueError(f"text_hard_negatives: swaps needs swap_mask (B, K) = {tuple(nm.shape)}, got "
                                 f"{None if swap_mask is None else tuple(swap_mask.shape)}")
            nm = nm & swap_mask.to(device=nm.device, dtype=torch.bool)
        extra["text_hard_neg"] = (neg, nm)
    if cfg.compa > 0:  # one positive per audio: the paired caption
        b = audio.shape[0]
        ones = lambda n: torch.ones((n, 1), dtype=torch.bool, device=audio.device)  # noqa: E731
        rows = slice(ctx.offset, ctx.offset + b)
        extra["compa"] = (t_all[rows][:, None], ones(b), t_all[:, None], ones(ctx.n))
    if cfg.modular > 0:
        if pos_text is None:
            raise ValueError("ContrastiveObjective.modular > 0 needs pos_text (B, P, D) (and pos_mask)")
        pos, pm, _, _ = check_compa_inputs(audio, pos_text, pos_mask, None, None)
        pos = pos.to(dt)
        pm_all = ctx.gather(pm.to(dt)).detach() > 0.5 if ctx.world_size > 1 else pm
        extra["modular"] = (pos, pm, ctx.gather(pos), pm_all)
    if cfg.cwcl > 0:
        if (frozen is None) == (cwcl_weights is None):
            raise ValueError("ContrastiveObjective.cwcl > 0 needs exactly one of frozen=(B, Df) or cwcl_weights=(B, N)")
        if frozen is not None:
            if frozen.dim() != 2 or frozen.shape[0] != audio.shape[0]:
                raise ValueError(f"frozen must be (B, Df) with B={audio.shape[0]}, got {tuple(frozen.shape)}")
            f = frozen.detach().to(dt)
            extra["cwcl_w"] = similarity_weights(f, ctx.gather(f).detach(), ctx.offset, cfg.cwcl_weight_map)
        else:
            extra["cwcl_w"] = check_weights(cwcl_weights.to(device=audio.device, dtype=dt), audio.shape[0], ctx.n)
    return extra


def compute_objective(
    cfg: ContrastiveObjective, audio: Tensor, text: Tensor, logit_scale: Tensor | float, *,
    pos_text: Tensor | None = None, pos_mask: Tensor | None = None,
    neg_text: Tensor | None = None, neg_mask: Tensor | None = None,
    frozen: Tensor | None = None, cwcl_weights: Tensor | None = None,
    para_text: Tensor | None = None, para_mask: Tensor | None = None, swap_mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """Weighted sum of the active terms. ``audio, text: (B, D)`` (one positive caption per audio;
    ``pos_text (B, P, D)`` only for ``modular``). Returns ``{"loss", <term>, <term parts>...}``."""
    check_pair(audio, text, "compute_objective")
    dt = _compute_dtype(audio, text)
    audio, text = audio.to(dt), text.to(dt)
    ctx = gather_context(audio.shape[0], gather=cfg.gather, grad_reduction=cfg.grad_reduction)
    s = _as_scale(logit_scale, audio)
    a_all, t_all = ctx.gather(audio), ctx.gather(text)
    extra = _prepare_extra(cfg, audio, t_all, ctx, dt, pos_text, pos_mask, neg_text, neg_mask, frozen, cwcl_weights,
                           para_text, para_mask, swap_mask)
    parts: dict[str, Tensor] = {}
    total = None
    for name in cfg.active():
        term = _term_parts(name, cfg, audio, text, a_all, t_all, s, ctx, extra)
        parts.update(term)
        weighted = getattr(cfg, name) * term[name]
        total = weighted if total is None else total + weighted
    return finish({"loss": total, **parts}, ctx)


__all__ = ["ContrastiveObjective", "compute_objective", "TERMS"]
