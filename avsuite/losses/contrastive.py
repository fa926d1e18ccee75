"""CLAP InfoNCE, decoupled contrastive (DCL) and alignment/uniformity losses, with cross-rank gather.

All losses take L2-normalised features (the models normalise; ``align_uniform_loss`` normalises
itself) and ``logit_scale`` as a tensor that is ALREADY exponentiated (``s = exp(log_scale)``), and
return ``{"loss": total, "<name>": part, ...}``. Nothing here sees a batch object.

Notation: ``a_i``, ``t_i`` audio/text features of pair ``i``; ``N`` the GLOBAL batch (all ranks);
``l_ij = s * <a_i, t_j>``.

- ``clap_loss``  (LAION-CLAP / open_clip symmetric InfoNCE)::

      a2t = -1/N sum_i log( exp(l_ii) / sum_j exp(l_ij) )
      t2a = -1/N sum_i log( exp(l_ii) / sum_j exp(l_ji) )
      clap = (a2t + t2a) / 2

- ``dcl_loss`` (Yeh et al. 2022, decoupled contrastive: the positive leaves the denominator)::

      dcl_a2t = 1/N sum_i ( -l_ii + log sum_{j != i} exp(l_ij) ),   dcl = (dcl_a2t + dcl_t2a) / 2

- ``align_uniform_loss`` (Wang & Isola 2020) on normalised features ``x = a/|a|``, ``y = t/|t|``::

      align   = 1/N sum_i |x_i - y_i|^alpha
      uniform = ( U(x) + U(y) ) / 2,  U(x) = log( 1/(N(N-1)) sum_{i != j} exp(-t |x_i - x_j|^2) )
      align_uniform = align + lam * uniform

Distributed training (``gather=True`` and ``torch.distributed`` initialised): each rank passes its
LOCAL features; they are all-gathered WITH gradient (:func:`gather_features`), and each rank
computes the rows of its local samples against the gathered columns (labels offset by the rank's
position), exactly as open_clip's ``local_loss``. The returned VALUE of every entry equals the
single-process loss over the full global batch on every rank. The gradient is arranged so that the
gradients of all ranks combined as ``grad_reduction`` says equal the single-process gradient of
the global loss exactly:

- ``grad_reduction="mean"`` (default; what DDP/FSDP do: all-reduce then divide by world size),
- ``grad_reduction="sum"`` (if your strategy sums gradients across ranks).

Local batch sizes may differ between ranks. Not distributed (or ``gather=False``) it is the plain
local loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

GradReduction = Literal["mean", "sum"]


def _world() -> tuple[int, int]:
    """``(world_size, rank)``; ``(1, 0)`` when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class _AllGather(torch.autograd.Function):
    """Concatenate ``(B_r, ...)`` from every rank in rank order; backward sums the global gradient
    over ranks and returns this rank's rows (the adjoint of all-gather)."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: list[int], rank: int) -> Tensor:  # type: ignore[override]
        ctx.sizes, ctx.rank = sizes, rank
        longest = max(sizes)
        padded = x.new_zeros((longest, *x.shape[1:]))
        padded[: x.shape[0]] = x
        bufs = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(bufs, padded.contiguous())
        return torch.cat([b[:n] for b, n in zip(bufs, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


@dataclass(frozen=True)
class GatherContext:
    """Where this rank's rows sit in the global batch: ``offset`` of its first row, global ``n``."""

    world_size: int
    rank: int
    sizes: tuple[int, ...]
    reduction: GradReduction = "mean"

    @property
    def offset(self) -> int:
        return sum(self.sizes[: self.rank])

    @property
    def n(self) -> int:
        return sum(self.sizes)

    def gather(self, x: Tensor) -> Tensor:
        """``(B_local, ...)`` -> ``(N, ...)`` with gradient; identity when not distributed."""
        if self.world_size == 1:
            return x
        if x.shape[0] != self.sizes[self.rank]:
            raise ValueError(f"gather: expected {self.sizes[self.rank]} rows on rank {self.rank}, got {x.shape[0]}")
        return _AllGather.apply(x, list(self.sizes), self.rank)


def gather_context(local_batch: int, *, gather: bool = True, grad_reduction: GradReduction = "mean") -> GatherContext:
    """Exchange local batch sizes (one tiny all-gather) and return the :class:`GatherContext`."""
    if grad_reduction not in ("mean", "sum"):
        raise ValueError(f"grad_reduction must be 'mean' or 'sum', got {grad_reduction!r}")
    world, rank = _world()
    if not gather or world == 1:
        return GatherContext(1, 0, (local_batch,), grad_reduction)
    backend = dist.get_backend()
    dev = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    mine = torch.tensor([local_batch], dtype=torch.long, device=dev)
    sizes = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(sizes, mine)
    return GatherContext(world, rank, tuple(int(s.item()) for s in sizes), grad_reduction)


def gather_features(x: Tensor) -> Tensor:
    """All-gather ``(B_local, ...)`` from every rank WITH gradient -> ``(N, ...)`` in rank order.

    A no-op (returns ``x``) when torch.distributed is not initialised. Backward all-reduces the
    incoming gradient and returns this rank's slice, so gradients from every rank's loss reach the
    rank that produced the features.
    """
    return gather_context(x.shape[0]).gather(x)


def finish(parts: dict[str, Tensor], ctx: GatherContext) -> dict[str, Tensor]:
    """Turn per-rank PARTS into global losses.

    Each part must be sum-decomposable: the global value is the sum of the parts over ranks, and so
    is the global gradient. Returns tensors whose value is the global value on every rank and whose
    gradient, combined over ranks by ``ctx.reduction``, is the global gradient. One all-reduce.
    """
    if ctx.world_size == 1:
        return parts
    names = list(parts)
    values = torch.stack([parts[k].detach().reshape(()).to(torch.float64) for k in names])
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    scale = float(ctx.world_size) if ctx.reduction == "mean" else 1.0
    out = {}
    for k, v in zip(names, values):
        p = parts[k]
        out[k] = v.to(p.dtype) + scale * (p - p.detach())
    return out


# --------------------------------------------------------------------------- validation helpers


def _as_scale(logit_scale: Tensor | float, like: Tensor) -> Tensor:
    s = logit_scale if isinstance(logit_scale, Tensor) else torch.tensor(float(logit_scale))
    if s.numel() != 1:
        raise ValueError(f"logit_scale must be a scalar tensor (already exp'd), got shape {tuple(s.shape)}")
    return s.reshape(()).to(device=like.device, dtype=like.dtype)


def _compute_dtype(*xs: Tensor) -> torch.dtype:
    dt = torch.float32
    for x in xs:
        dt = torch.promote_types(dt, x.dtype)
    return dt


def check_pair(audio: Tensor, text: Tensor, name: str = "loss") -> None:
    """Raise ``ValueError`` unless ``audio`` and ``text`` are ``(B, D)`` with equal ``B``, ``D``."""
    if audio.dim() != 2 or text.dim() != 2:
        raise ValueError(f"{name}: audio and text must be (B, D), got {tuple(audio.shape)} and {tuple(text.shape)}")
    if audio.shape != text.shape:
        raise ValueError(f"{name}: audio {tuple(audio.shape)} and text {tuple(text.shape)} must have the same shape")
    if audio.shape[0] == 0:
        raise ValueError(f"{name}: empty batch")


# --------------------------------------------------------------------------- cores (local rows)


def clap_parts(a: Tensor, t: Tensor, a_all: Tensor, t_all: Tensor, s: Tensor, ctx: GatherContext) -> dict[str, Tensor]:
    """Sum-decomposable parts of the CLAP loss for this rank's rows ``a, t: (B, D)`` vs ``(N, D)``."""
    target = torch.arange(a.shape[0], device=a.device) + ctx.offset
    a2t = F.cross_entropy(s * a @ t_all.T, target, reduction="sum") / ctx.n
    t2a = F.cross_entropy(s * t @ a_all.T, target, reduction="sum") / ctx.n
    return {"clap": (a2t + t2a) / 2, "clap_a2t": a2t, "clap_t2a": t2a}


def _dcl_rows(logits: Tensor, target: Tensor) -> Tensor:
    pos = logits.gather(1, target[:, None])[:, 0]
    neg = logits.scatter(1, target[:, None], float("-inf"))
    return (torch.logsumexp(neg, dim=1) - pos).sum()


def dcl_parts(a: Tensor, t: Tensor, a_all: Tensor, t_all: Tensor, s: Tensor, ctx: GatherContext) -> dict[str, Tensor]:
    """Parts of the decoupled contrastive loss (positive removed from the denominator)."""
    if ctx.n < 2:
        raise ValueError("dcl_loss needs a global batch of at least 2 (it has no negatives otherwise)")
    target = torch.arange(a.shape[0], device=a.device) + ctx.offset
    a2t = _dcl_rows(s * a @ t_all.T, target) / ctx.n
    t2a = _dcl_rows(s * t @ a_all.T, target) / ctx.n
    return {"dcl": (a2t + t2a) / 2, "dcl_a2t": a2t, "dcl_t2a": t2a}


def _uniform_part(x: Tensor, x_all: Tensor, t: float, ctx: GatherContext) -> Tensor:
    """Part of ``log mean_{i != j} exp(-t |x_i - x_j|^2)`` over the global batch."""
    d2 = (2.0 - 2.0 * x @ x_all.T).clamp_min(0.0)
    rows = torch.arange(x.shape[0], device=x.device)
    k = torch.exp(-t * d2)
    k = k.index_put((rows, rows + ctx.offset), torch.zeros((), dtype=k.dtype, device=k.device))
    local = k.sum()
    pairs = ctx.n * (ctx.n - 1)
    if ctx.world_size == 1:
        return torch.log(local / pairs)
    total = local.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    value = torch.log(total / pairs)
    surrogate = local / total  # gradients summed over ranks = d log(total)
    return value / ctx.world_size + (surrogate - surrogate.detach())


def align_uniform_parts(
    a: Tensor, t: Tensor, a_all: Tensor, t_all: Tensor, ctx: GatherContext,
    *, alpha: float = 2.0, t_uniform: float = 2.0, lam: float = 1.0,
) -> dict[str, Tensor]:
    """Parts of alignment + uniformity (features are normalised here)."""
    if ctx.n < 2:
        raise ValueError("align_uniform_loss needs a global batch of at least 2 (uniformity is over pairs)")
    x, y, x_all, y_all = (F.normalize(v, dim=-1) for v in (a, t, a_all, t_all))
    align = (x - y).norm(dim=1).pow(alpha).sum() / ctx.n
    uniform = (_uniform_part(x, x_all, t_uniform, ctx) + _uniform_part(y, y_all, t_uniform, ctx)) / 2
    return {"align_uniform": align + lam * uniform, "align": align, "uniform": uniform}


# --------------------------------------------------------------------------- public losses


def _prepare(audio: Tensor, text: Tensor, logit_scale, gather: bool, grad_reduction: GradReduction, name: str):
    check_pair(audio, text, name)
    dt = _compute_dtype(audio, text)
    audio, text = audio.to(dt), text.to(dt)
    ctx = gather_context(audio.shape[0], gather=gather, grad_reduction=grad_reduction)
    s = _as_scale(logit_scale, audio) if logit_scale is not None else None
    return audio, text, s, ctx


def _with_total(parts: dict[str, Tensor], name: str) -> dict[str, Tensor]:
    return {"loss": parts[name], **parts}


def clap_loss(
    audio: Tensor, text: Tensor, logit_scale: Tensor | float, *,
    gather: bool = True, grad_reduction: GradReduction = "mean",
) -> dict[str, Tensor]:
    """Symmetric InfoNCE. ``audio, text: (B, D)`` normalised; ``logit_scale`` exp'd scalar.

    Returns ``{"loss", "clap", "clap_a2t", "clap_t2a"}`` (``loss == clap``).
    """
    audio, text, s, ctx = _prepare(audio, text, logit_scale, gather, grad_reduction, "clap_loss")
    parts = clap_parts(audio, text, ctx.gather(audio), ctx.gather(text), s, ctx)
    return finish(_with_total(parts, "clap"), ctx)


def dcl_loss(
    audio: Tensor, text: Tensor, logit_scale: Tensor | float, *,
    gather: bool = True, grad_reduction: GradReduction = "mean",
) -> dict[str, Tensor]:
    """Decoupled contrastive loss. Returns ``{"loss", "dcl", "dcl_a2t", "dcl_t2a"}``."""
    audio, text, s, ctx = _prepare(audio, text, logit_scale, gather, grad_reduction, "dcl_loss")
    parts = dcl_parts(audio, text, ctx.gather(audio), ctx.gather(text), s, ctx)
    return finish(_with_total(parts, "dcl"), ctx)


def align_uniform_loss(
    audio: Tensor, text: Tensor, *, alpha: float = 2.0, t: float = 2.0, lam: float = 1.0,
    gather: bool = True, grad_reduction: GradReduction = "mean",
) -> dict[str, Tensor]:
    """Wang & Isola alignment + uniformity. Returns ``{"loss", "align_uniform", "align", "uniform"}``."""
    audio, text, _, ctx = _prepare(audio, text, None, gather, grad_reduction, "align_uniform_loss")
    parts = align_uniform_parts(
        audio, text, ctx.gather(audio), ctx.gather(text), ctx, alpha=alpha, t_uniform=t, lam=lam
    )
    return finish(_with_total(parts, "align_uniform"), ctx)
