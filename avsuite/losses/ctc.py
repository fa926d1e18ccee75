"""CTC and the siamese CTC + optimal-transport pre-training objective (Le et al., ICML 2023).

``L = w_ctc * L_ctc + w_ot * L_ot`` where ``L_ctc`` is CTC on the speech encoder's frame
posteriors and ``L_ot`` the (debiased) Sinkhorn divergence between speech encoder outputs and
text encoder outputs (:mod:`avsuite.losses.ot`). ``w_ot = 0`` is exactly plain CTC pre-training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from avsuite.losses.ot import ot_loss


def ctc_loss(log_probs: Tensor, in_lengths: Tensor, targets: Tensor, target_lengths: Tensor,
             blank: int = 0) -> dict[str, Tensor]:
    """CTC averaged over the batch (each item divided by its target length, as torch's "mean").

    ``log_probs (B, T, V)`` log-softmax outputs, ``in_lengths (B,)``, ``targets (B, S)`` padded ids,
    ``target_lengths (B,)``. Items whose target cannot fit in their frames (infinite CTC loss)
    contribute zero (``zero_infinity``) and are counted in ``"ctc_infeasible"``; the loss is never NaN.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got {tuple(log_probs.shape)}")
    if bool((target_lengths <= 0).any()):
        raise ValueError("CTC targets must be non-empty (found an item with target length 0)")
    if bool((in_lengths <= 0).any()):
        raise ValueError("CTC inputs must have at least one frame (found an item with 0 frames)")
    per_item = F.ctc_loss(log_probs.transpose(0, 1).float(), targets, in_lengths, target_lengths,
                          blank=blank, reduction="none", zero_infinity=True)
    infeasible = (per_item == 0) & (ctc_min_frames(targets, target_lengths) > in_lengths)
    loss = (per_item / target_lengths.clamp(min=1).to(per_item.dtype)).mean()
    if not torch.isfinite(loss):
        raise FloatingPointError("CTC loss is not finite: check the inputs for NaN/inf features")
    return {"loss": loss, "ctc": loss, "ctc_infeasible": infeasible.sum().to(loss.dtype)}


def ctc_min_frames(targets: Tensor, target_lengths: Tensor) -> Tensor:
    """``(B,)`` fewest frames CTC needs: the label count plus one blank between each repeated pair."""
    if targets.shape[1] < 2:
        return target_lengths.clone()
    pos = torch.arange(1, targets.shape[1], device=targets.device)[None, :]
    repeats = ((targets[:, 1:] == targets[:, :-1]) & (pos < target_lengths[:, None])).sum(1)
    return target_lengths + repeats


def ctc_ot_loss(log_probs: Tensor, in_lengths: Tensor, targets: Tensor, target_lengths: Tensor,
                speech: Tensor, speech_mask: Tensor, text: Tensor, text_mask: Tensor, *,
                w_ctc: float = 1.0, w_ot: float = 0.1, blank: int = 0, measure_ot: bool = True,
                **ot_kw) -> dict[str, Tensor]:
    """``w_ctc * CTC + w_ot * OT``; returns ``{"loss", "ctc", "ot", "ctc_infeasible"}``.

    ``speech (B, N, D)`` / ``speech_mask (B, N)`` are the encoder outputs the OT term aligns with
    ``text (B, M, D)`` / ``text_mask (B, M)``; ``ot_kw`` go to :func:`avsuite.losses.ot.ot_loss`.
    With ``w_ot == 0`` the total is exactly the CTC loss; the OT term is then only measured
    (without gradient, for logging) when ``measure_ot`` and reported as NaN-free 0 otherwise.
    """
    ctc = ctc_loss(log_probs, in_lengths, targets, target_lengths, blank)
    if w_ot == 0.0:
        ot = torch.zeros((), device=log_probs.device)
        if measure_ot:
            with torch.no_grad():
                ot = ot_loss(speech, speech_mask, text, text_mask, **ot_kw)["ot"]
        total = w_ctc * ctc["ctc"]
    else:
        ot = ot_loss(speech, speech_mask, text, text_mask, **ot_kw)["ot"]
        total = w_ctc * ctc["ctc"] + w_ot * ot
    return {"loss": total, "ctc": ctc["ctc"], "ot": ot.detach(), "ctc_infeasible": ctc["ctc_infeasible"]}
