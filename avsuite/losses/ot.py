"""Batched, masked, log-domain entropic optimal transport (Sinkhorn) in plain torch.

Point clouds ``x (B, N, D)`` and ``y (B, M, D)`` with boolean masks ``x_mask (B, N)`` / ``y_mask (B, M)``
(True = real point) carry uniform weights over their valid points (``1/n_b`` each, 0 on padding).
The ground cost is ``C_ij = |x_i - y_j|^p / p`` (GeomLoss' convention; ``p=2`` gives ``|x-y|^2 / 2``).

Every batch item is solved at once (no per-example Python loop): potentials ``f (B, N)``, ``g (B, M)``
are updated with ``logsumexp`` over masked log-weights, so padding never enters a sum. Like
GeomLoss, the solver anneals ``eps`` from the squared diameter of the clouds down to ``blur^p``
(``eps``-scaling) and then runs ``n_iters`` extra iterations at the target ``eps`` (stopping early
when the potentials move less than ``tol``). Gradients use the envelope theorem: iterations run
without autograd and one final, differentiable update gives the gradient of the optimum.

Values (per item, ``(B,)``):

- ``"primal"``: ``<P, C>``, the transport cost of the entropic plan (what ``ot.sinkhorn2`` returns);
- ``"dual"``: ``<a, f> + <b, g>``, the entropic OT value ``OT_eps`` (GeomLoss' ``debias=False``);
- :func:`sinkhorn_divergence`: ``OT_eps(a,b) - OT_eps(a,a)/2 - OT_eps(b,b)/2`` (GeomLoss' debiased
  ``SamplesLoss("sinkhorn")``), >= 0 and 0 when the clouds coincide.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

NEG_INF = float("-inf")


def _check(x: Tensor, y: Tensor, x_mask: Tensor | None, y_mask: Tensor | None) -> tuple[Tensor, Tensor]:
    if x.dim() != 3 or y.dim() != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(f"expected x (B, N, D) and y (B, M, D), got {tuple(x.shape)} and {tuple(y.shape)}")
    x_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if x_mask is None else x_mask.bool()
    y_mask = torch.ones(y.shape[:2], dtype=torch.bool, device=y.device) if y_mask is None else y_mask.bool()
    if x_mask.shape != x.shape[:2] or y_mask.shape != y.shape[:2]:
        raise ValueError(f"masks must be (B, N) and (B, M), got {tuple(x_mask.shape)} and {tuple(y_mask.shape)}")
    empty = (x_mask.sum(1) == 0) | (y_mask.sum(1) == 0)
    if bool(empty.any()):
        rows = torch.nonzero(empty).flatten().tolist()
        raise ValueError(f"OT needs at least one valid point on each side; empty item(s) at batch index {rows}")
    return x_mask, y_mask


def cost_matrix(x: Tensor, y: Tensor, p: int = 2) -> Tensor:
    """``(B, N, M)`` cost ``|x_i - y_j|^p / p``."""
    if p == 2:
        sq = (x * x).sum(-1)[:, :, None] + (y * y).sum(-1)[:, None, :] - 2.0 * x @ y.transpose(1, 2)
        return sq.clamp(min=0.0) / 2.0
    return torch.cdist(x, y, p=2).pow(p) / p


def log_weights(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(B, N)`` log of uniform weights over valid points; ``-inf`` on padding."""
    n = mask.sum(1, keepdim=True).to(dtype)
    return torch.where(mask, -torch.log(n), torch.full_like(n, NEG_INF).expand_as(mask))


def _softmin(eps: float, cost: Tensor, log_w: Tensor, pot: Tensor) -> Tensor:
    """``-eps * logsumexp_j(log_w_j + (pot_j - C_ij) / eps)`` -> ``(B, N)`` for ``cost (B, N, M)``."""
    return -eps * torch.logsumexp(log_w[:, None, :] + (pot[:, None, :] - cost) / eps, dim=2)


def eps_schedule(diameter: float, blur: float, p: int, scaling: float) -> list[float]:
    """Geometric ``eps`` ladder from ``diameter^p`` down to ``blur^p`` (ratio ``scaling^p``)."""
    if not 0.0 < scaling < 1.0:
        raise ValueError(f"scaling must be in (0, 1), got {scaling}")
    hi, lo = p * math.log(max(diameter, blur)), p * math.log(blur)
    step = p * math.log(scaling)
    n = int(math.floor((lo - hi) / step)) if hi > lo else 0
    return [math.exp(hi + k * step) for k in range(n + 1)] + [blur ** p]


def sinkhorn_potentials(cost: Tensor, log_a: Tensor, log_b: Tensor, eps_list: list[float],
                        n_iters: int = 50, tol: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Log-domain Sinkhorn on ``cost (B, N, M)``; returns potentials ``f (B, N)``, ``g (B, M)`` (no grad)."""
    with torch.no_grad():
        c = cost.detach()
        ct = c.transpose(1, 2)
        f = torch.zeros_like(log_a)
        g = torch.zeros_like(log_b)
        for eps in eps_list[:-1]:                          # annealing, warm-started
            f = _softmin(eps, c, log_b, g)
            g = _softmin(eps, ct, log_a, f)
        eps = eps_list[-1]
        for it in range(n_iters):
            f_new = _softmin(eps, c, log_b, g)
            g = _softmin(eps, ct, log_a, f_new)
            if it % 10 == 9:
                moved = (f_new - f).masked_fill(torch.isinf(log_a), 0.0).abs().max()
                f = f_new
                if float(moved) < tol:                     # potentials are in cost units
                    break
            f = f_new
    return f, g


def entropic_ot(x: Tensor, y: Tensor, x_mask: Tensor | None = None, y_mask: Tensor | None = None, *,
                p: int = 2, blur: float = 0.05, scaling: float = 0.5, n_iters: int = 50, tol: float = 1e-6,
                value: Literal["dual", "primal"] = "dual", diameter: float | None = None) -> Tensor:
    """Entropic OT between masked point clouds ``x (B, N, D)``, ``y (B, M, D)`` -> ``(B,)``.

    ``eps = blur^p``. ``value="dual"`` is ``OT_eps`` (differentiable via the envelope theorem);
    ``value="primal"`` is ``<P, C>`` of the entropic plan ``P`` (POT's ``sinkhorn2`` value).
    """
    x_mask, y_mask = _check(x, y, x_mask, y_mask)
    cost = cost_matrix(x, y, p)
    log_a, log_b = log_weights(x_mask, cost.dtype), log_weights(y_mask, cost.dtype)
    if diameter is None:
        diameter = _diameter(x, y, x_mask, y_mask)
    eps_list = eps_schedule(diameter, blur, p, scaling)
    f, g = sinkhorn_potentials(cost, log_a, log_b, eps_list, n_iters, tol)
    eps = eps_list[-1]
    # envelope theorem: d OT_eps / d C = P. One differentiable f-update (g frozen) carries exactly
    # that gradient; g is refreshed without gradient (both carrying it would count P twice).
    f = _softmin(eps, cost, log_b, g.detach())
    g = _softmin(eps, cost.detach().transpose(1, 2), log_a, f.detach())
    a, b = log_a.exp(), log_b.exp()
    if value == "dual":
        return (a * f.masked_fill(~x_mask, 0.0)).sum(1) + (b * g.masked_fill(~y_mask, 0.0)).sum(1)
    if value == "primal":
        log_p = log_a[:, :, None] + log_b[:, None, :] + (f[:, :, None] + g[:, None, :] - cost) / eps
        return (log_p.exp() * cost).sum((1, 2))
    raise ValueError(f"value must be 'dual' or 'primal', got {value!r}")


def sinkhorn_divergence(x: Tensor, y: Tensor, x_mask: Tensor | None = None, y_mask: Tensor | None = None, *,
                        p: int = 2, blur: float = 0.05, scaling: float = 0.5, n_iters: int = 50,
                        tol: float = 1e-6, debias: bool = True) -> Tensor:
    """``(B,)`` debiased Sinkhorn divergence ``OT(x,y) - OT(x,x)/2 - OT(y,y)/2`` (or ``OT(x,y)``).

    The three problems are solved as ONE batch of ``3B`` (padded to a common length and masked),
    so debiasing costs one solver call, not three.
    """
    x_mask, y_mask = _check(x, y, x_mask, y_mask)
    diameter = _diameter(x, y, x_mask, y_mask)
    kw = dict(p=p, blur=blur, scaling=scaling, n_iters=n_iters, tol=tol, value="dual", diameter=diameter)
    if not debias:
        return entropic_ot(x, y, x_mask, y_mask, **kw)
    b, length = x.shape[0], max(x.shape[1], y.shape[1])
    xp, xmp = _pad_to(x, x_mask, length)
    yp, ymp = _pad_to(y, y_mask, length)
    left, left_m = torch.cat([xp, xp, yp]), torch.cat([xmp, xmp, ymp])
    right, right_m = torch.cat([yp, xp, yp]), torch.cat([ymp, xmp, ymp])
    vals = entropic_ot(left, right, left_m, right_m, **kw)
    return vals[:b] - 0.5 * (vals[b:2 * b] + vals[2 * b:])


def _pad_to(x: Tensor, mask: Tensor, length: int) -> tuple[Tensor, Tensor]:
    extra = length - x.shape[1]
    if extra == 0:
        return x, mask
    return (torch.cat([x, x.new_zeros(x.shape[0], extra, x.shape[2])], 1),
            torch.cat([mask, mask.new_zeros(mask.shape[0], extra)], 1))


def _diameter(x: Tensor, y: Tensor, x_mask: Tensor, y_mask: Tensor) -> float:
    """Largest bounding-box diagonal over the batch (valid points only), as GeomLoss estimates it."""
    with torch.no_grad():
        pts = torch.cat([x, y], 1)
        mask = torch.cat([x_mask, y_mask], 1)[..., None]
        hi = pts.masked_fill(~mask, NEG_INF).amax(1)
        lo = pts.masked_fill(~mask, float("inf")).amin(1)
        return float((hi - lo).norm(dim=-1).max().clamp(min=1e-6))


def add_position(x: Tensor, mask: Tensor, weight: float) -> Tensor:
    """Append the positional coordinate ``weight * i / (n-1)`` (0 on padding): ``(B, N, D) -> (B, N, D+1)``.

    Positions are normalised by each item's own valid length, so speech frames and text tokens
    at the same relative place in the utterance get the same coordinate.
    """
    n = mask.sum(1, keepdim=True).to(x.dtype)
    pos = torch.arange(x.shape[1], device=x.device, dtype=x.dtype)[None, :] / (n - 1).clamp(min=1.0)
    pos = (pos * weight).masked_fill(~mask.bool(), 0.0)
    return torch.cat([x, pos[..., None]], dim=-1)


def ot_loss(speech: Tensor, speech_mask: Tensor, text: Tensor, text_mask: Tensor, *, p: int = 2,
            blur: float = 0.05, scaling: float = 0.5, n_iters: int = 10, debias: bool = True,
            pos_weight: float = 0.0) -> dict[str, Tensor]:
    """OT alignment loss between speech ``(B, N, D)`` and text ``(B, M, D)`` encodings.

    Returns ``{"loss": mean over the batch, "ot": same}``.
    """
    if pos_weight > 0:
        speech = add_position(speech, speech_mask, pos_weight)
        text = add_position(text, text_mask, pos_weight)
    per_item = sinkhorn_divergence(speech, text, speech_mask, text_mask, p=p, blur=blur, scaling=scaling,
                                   n_iters=n_iters, debias=debias)
    loss = per_item.mean()
    return {"loss": loss, "ot": loss}
