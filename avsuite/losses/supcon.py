"""Supervised contrastive loss (Khosla et al., 2020), in a general anchor / contrast-set form.

For anchor ``i`` with similarities ``s_im = a_i . c_m / tau`` to the contrast set, the allowed set
``A(i)`` (pairs not excluded) and the positives ``P(i) = {m in A(i): y_m = y_i}``::

    l_i = - 1/|P(i)| sum_{p in P(i)} [ s_ip - log sum_{m in A(i)} exp(s_im) ]

The loss is the mean of ``l_i`` over anchors with at least one positive (zero if there are none).
Embeddings are L2-normalised here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(x: Tensor, y: Tensor, name: str) -> None:
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: expected embeddings (N, D) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}")


def sup_contrastive(anchors: Tensor, anchor_labels: Tensor, contrast: Tensor, contrast_labels: Tensor, *,
                    temperature: float = 0.1, exclude: Tensor | None = None) -> Tensor:
    """Scalar loss. ``anchors (N, D)``, ``contrast (M, D)``, labels ``(N,)``/``(M,)`` (ints),
    ``exclude (N, M)`` bool marks pairs left out of both numerator and denominator."""
    _check(anchors, anchor_labels, "anchors")
    _check(contrast, contrast_labels, "contrast")
    if anchors.shape[1] != contrast.shape[1]:
        raise ValueError(f"anchor dim {anchors.shape[1]} != contrast dim {contrast.shape[1]}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if anchors.shape[0] == 0 or contrast.shape[0] == 0:
        return anchors.sum() * 0.0 + contrast.sum() * 0.0
    a = F.normalize(anchors.float(), dim=1)
    c = F.normalize(contrast.float(), dim=1)
    logits = a @ c.T / temperature                                          # (N, M)
    allowed = torch.ones_like(logits, dtype=torch.bool) if exclude is None else ~exclude
    pos = (anchor_labels[:, None] == contrast_labels[None, :]) & allowed
    log_denom = torch.logsumexp(logits.masked_fill(~allowed, float("-inf")), dim=1, keepdim=True)
    log_prob = (logits - log_denom).masked_fill(~pos, 0.0)
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    if not bool(has.any()):
        return logits.sum() * 0.0
    per_anchor = -log_prob.sum(dim=1)[has] / n_pos[has]
    return per_anchor.mean()


def supcon_loss(features: Tensor, labels: Tensor, *, temperature: float = 0.1) -> dict[str, Tensor]:
    """Khosla SupCon on one view per example: each example against all others (self excluded).

    ``features (B, D)``, ``labels (B,)`` -> ``{"loss", "supcon"}``.
    """
    eye = torch.eye(features.shape[0], dtype=torch.bool, device=features.device)
    loss = sup_contrastive(features, labels, features, labels, temperature=temperature, exclude=eye)
    return {"loss": loss, "supcon": loss}
