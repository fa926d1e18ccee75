"""CTC and CTC+OT losses: w_ot=0 is plain CTC, infeasible targets never give NaN, clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avsuite.losses.ctc import ctc_loss, ctc_min_frames, ctc_ot_loss
from avsuite.losses.ot import ot_loss


def _inputs(seed=0, b=3, t=20, v=8, s=6, d=4):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g, requires_grad=True)
    in_len = torch.tensor([t, t - 5, t - 9])
    targets = torch.randint(1, v, (b, s), generator=g)
    tgt_len = torch.tensor([s, s - 2, 3])
    speech = torch.randn(b, t, d, generator=g, requires_grad=True)
    text = torch.randn(b, s, d, generator=g, requires_grad=True)
    sm = torch.arange(t)[None] < in_len[:, None]
    tm = torch.arange(s)[None] < tgt_len[:, None]
    return logits, in_len, targets, tgt_len, speech, sm, text, tm


def test_ctc_matches_torch_mean_reduction():
    logits, in_len, targets, tgt_len, *_ = _inputs()
    lp = logits.log_softmax(-1)
    ours = ctc_loss(lp, in_len, targets, tgt_len)["ctc"]
    ref = F.ctc_loss(lp.transpose(0, 1), targets, in_len, tgt_len, reduction="mean")
    assert torch.allclose(ours, ref, atol=1e-6)


def test_w_ot_zero_equals_plain_ctc_in_value_and_gradient():
    logits, in_len, targets, tgt_len, speech, sm, text, tm = _inputs()
    lp = logits.log_softmax(-1)
    both = ctc_ot_loss(lp, in_len, targets, tgt_len, speech, sm, text, tm, w_ot=0.0)
    plain = ctc_loss(lp, in_len, targets, tgt_len)
    assert torch.equal(both["loss"], plain["loss"])
    g_both = torch.autograd.grad(both["loss"], logits, retain_graph=True)[0]
    g_plain = torch.autograd.grad(plain["loss"], logits)[0]
    assert torch.equal(g_both, g_plain)
    # no gradient reaches the OT features at w_ot=0 (checked with autograd.grad: .grad stays None)
    g_feats = torch.autograd.grad(both["loss"], [speech, text], allow_unused=True, retain_graph=True)
    assert all(g is None or not g.abs().any() for g in g_feats)
    assert float(both["ot"]) > 0          # still measured for logging
    with_ot = ctc_ot_loss(lp, in_len, targets, tgt_len, speech, sm, text, tm, w_ot=0.5)
    g_sp, g_tx = torch.autograd.grad(with_ot["loss"], [speech, text])
    assert g_sp.abs().sum() > 0 and g_tx.abs().sum() > 0      # the same check does see OT gradients


def test_total_is_weighted_sum():
    logits, in_len, targets, tgt_len, speech, sm, text, tm = _inputs(seed=1)
    lp = logits.log_softmax(-1)
    out = ctc_ot_loss(lp, in_len, targets, tgt_len, speech, sm, text, tm, w_ctc=0.7, w_ot=0.3, pos_weight=1.0)
    ot = ot_loss(speech, sm, text, tm, pos_weight=1.0)["ot"]
    assert torch.allclose(out["loss"], 0.7 * out["ctc"] + 0.3 * ot, atol=1e-6)
    out["loss"].backward()
    assert speech.grad.abs().sum() > 0 and text.grad.abs().sum() > 0


def test_infeasible_target_is_zeroed_counted_and_never_nan():
    logits = torch.randn(2, 4, 6)
    lp = logits.log_softmax(-1)
    targets = torch.tensor([[1, 2, 3, 4, 5, 1], [1, 2, 0, 0, 0, 0]])
    out = ctc_loss(lp, torch.tensor([4, 4]), targets, torch.tensor([6, 2]))
    assert torch.isfinite(out["loss"])
    assert float(out["ctc_infeasible"]) == 1.0


def test_min_frames_counts_repeats():
    targets = torch.tensor([[1, 1, 2, 2, 2], [3, 4, 3, 0, 0]])
    assert ctc_min_frames(targets, torch.tensor([5, 3])).tolist() == [8, 3]


def test_empty_targets_and_inputs_raise_clear_errors():
    lp = torch.randn(1, 5, 4).log_softmax(-1)
    with pytest.raises(ValueError, match="non-empty"):
        ctc_loss(lp, torch.tensor([5]), torch.zeros(1, 1, dtype=torch.long), torch.tensor([0]))
    with pytest.raises(ValueError, match="at least one frame"):
        ctc_loss(lp, torch.tensor([0]), torch.ones(1, 1, dtype=torch.long), torch.tensor([1]))
