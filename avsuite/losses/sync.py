"""SyncNet loss (Wav2Lip ``cosine_loss``, LatentSync ``util.cosine_loss``): BCE on the cosine.

Both encoders end with a ReLU and L2-normalise, so the embeddings are non-negative unit vectors
and their cosine lies in [0, 1]; it is used directly as P(in sync). ``label`` 1 = the audio window
belongs to these frames, 0 = it does not. Accuracy follows LatentSync's eval_syncnet_acc:
``(cos > 0.5) == label``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sync_cosine(v: Tensor, a: Tensor) -> Tensor:
    """``(B, D), (B, D)`` unit embeddings -> ``(B,)`` cosine, clamped to [0, 1] (float32)."""
    return F.cosine_similarity(v.float(), a.float(), dim=1).clamp(0.0, 1.0)


def sync_loss(v: Tensor, a: Tensor, label: Tensor) -> dict[str, Tensor]:
    """-> ``{"loss": BCE(cos, label), "sync_bce", "sync_acc", "cos_pos", "cos_neg"}`` (means over
    the batch; ``cos_pos``/``cos_neg`` are NaN when the batch has no positive/negative). The BCE runs
    in float32 outside autocast (it is not autocast-safe), with log clamped at -100 as torch's BCELoss."""
    y = label.float().reshape(-1)
    with torch.autocast(device_type=v.device.type, enabled=False):
        cos = sync_cosine(v, a)
        bce = F.binary_cross_entropy(cos, y)
    with torch.no_grad():
        acc = ((cos > 0.5).float() == y).float().mean()
        pos, neg = y > 0.5, y <= 0.5
        cos_pos = cos[pos].mean() if pos.any() else cos.new_tensor(float("nan"))
        cos_neg = cos[neg].mean() if neg.any() else cos.new_tensor(float("nan"))
    return {"loss": bce, "sync_bce": bce.detach(), "sync_acc": acc, "cos_pos": cos_pos, "cos_neg": cos_neg}


def sync_accuracy(cos: Tensor, label: Tensor, threshold: float = 0.5) -> float:
    """Fraction of ``(cos > threshold) == label`` over ``(N,)`` tensors."""
    return float(((cos > threshold).float() == label.float().reshape(-1)).float().mean())
