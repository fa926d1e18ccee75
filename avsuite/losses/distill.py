"""Knowledge distillation on the old classes' logits (LwF / iCaRL-style)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, *, temperature: float = 2.0,
            num_old: int | None = None) -> dict[str, Tensor]:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))`` over the first ``num_old`` classes.

    ``student_logits (B, C)``, ``teacher_logits (B, C_old)`` (or ``(B, C)``) -> ``{"loss", "kd"}``;
    the mean is over the batch.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    k = num_old if num_old is not None else teacher_logits.shape[1]
    if k < 1 or k > student_logits.shape[1] or k > teacher_logits.shape[1]:
        raise ValueError(f"num_old={k} does not fit logits {tuple(student_logits.shape)} / {tuple(teacher_logits.shape)}")
    if student_logits.shape[0] == 0:
        zero = student_logits.sum() * 0.0
        return {"loss": zero, "kd": zero}
    log_p_s = F.log_softmax(student_logits[:, :k].float() / temperature, dim=1)
    p_t = F.softmax(teacher_logits[:, :k].detach().float() / temperature, dim=1)
    loss = F.kl_div(log_p_s, p_t, reduction="batchmean") * temperature ** 2
    return {"loss": loss, "kd": loss}
