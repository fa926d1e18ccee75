"""COCONUT losses (Cappellazzo et al., "Continual Contrastive Spoken Language Understanding").

- :func:`nspt_loss` ("negative-student, positive-teacher"): supervised contrastive loss on the
  rehearsal examples of a batch. Anchor = current (student) embedding of a rehearsal example;
  positives = the previous-task (teacher) embeddings of the rehearsal examples of the same class
  (its own teacher view included); negatives = the student embeddings of every batch example of
  another class. Same-class student embeddings are left out. It keeps old classes' geometry
  anchored to the teacher while new and old classes are pushed apart by the current model.
- :func:`multimodal_loss`: supervised audio<->text contrastive loss on the new-task examples
  (positives: texts / audios of the same intent), averaged over both directions.
- :func:`coconut_loss` sums them with weights and returns every part.
"""

from __future__ import annotations

import torch
from torch import Tensor

from avsuite.losses.supcon import sup_contrastive


def nspt_loss(student: Tensor, teacher: Tensor, labels: Tensor, rehearsal: Tensor, *,
              temperature: float = 0.1) -> Tensor:
    """``student (B, D)``, ``teacher (B, D)`` (no grad), ``labels (B,)``, ``rehearsal (B,)`` bool -> scalar."""
    if not (student.shape == teacher.shape and student.shape[0] == labels.shape[0] == rehearsal.shape[0]):
        raise ValueError(f"nspt_loss: shapes differ: student {tuple(student.shape)}, teacher "
                         f"{tuple(teacher.shape)}, labels {tuple(labels.shape)}, rehearsal {tuple(rehearsal.shape)}")
    rehearsal = rehearsal.bool()
    anchors, a_lab = student[rehearsal], labels[rehearsal]
    t_pos = teacher[rehearsal].detach()
    contrast = torch.cat([t_pos, student], dim=0)
    c_lab = torch.cat([a_lab, labels], dim=0)
    # teachers count only as positives (other-class teachers are left out); students only as
    # negatives (same-class students are left out)
    other_teacher = a_lab[:, None] != a_lab[None, :]
    same_student = a_lab[:, None] == labels[None, :]
    exclude = torch.cat([other_teacher, same_student], dim=1)
    return sup_contrastive(anchors, a_lab, contrast, c_lab, temperature=temperature, exclude=exclude)


def multimodal_loss(audio: Tensor, text: Tensor, labels: Tensor, *, temperature: float = 0.1) -> Tensor:
    """Supervised contrastive audio->text and text->audio, mean of both. ``audio, text (N, D)``."""
    if audio.shape != text.shape:
        raise ValueError(f"multimodal_loss: audio {tuple(audio.shape)} and text {tuple(text.shape)} differ")
    a2t = sup_contrastive(audio, labels, text, labels, temperature=temperature)
    t2a = sup_contrastive(text, labels, audio, labels, temperature=temperature)
    return 0.5 * (a2t + t2a)


def coconut_loss(student: Tensor, teacher: Tensor | None, labels: Tensor, rehearsal: Tensor,
                 audio: Tensor | None = None, text: Tensor | None = None, *, temperature: float = 0.1,
                 w_nspt: float = 1.0, w_mm: float = 1.0) -> dict[str, Tensor]:
    """``{"loss", "nspt", "mm"}``. NSPT needs a teacher (skipped at task 0); MM uses the
    non-rehearsal rows of ``audio``/``text`` (skipped when ``text`` is None)."""
    zero = student.sum() * 0.0
    nspt = zero
    if teacher is not None and w_nspt > 0 and bool(rehearsal.any()):
        nspt = nspt_loss(student, teacher, labels, rehearsal, temperature=temperature)
    mm = zero
    if text is not None and audio is not None and w_mm > 0:
        new = ~rehearsal.bool()
        if bool(new.any()):
            mm = multimodal_loss(audio[new], text[new], labels[new], temperature=temperature)
    return {"loss": w_nspt * nspt + w_mm * mm, "nspt": nspt, "mm": mm}
