"""Contrastive losses against direct per-anchor formulas; KD against its definition."""

import math

import pytest
import torch
import torch.nn.functional as F

from avsuite.losses.coconut import coconut_loss, multimodal_loss, nspt_loss
from avsuite.losses.distill import kd_loss
from avsuite.losses.supcon import sup_contrastive, supcon_loss


def _n(x):
    return F.normalize(x.double(), dim=1)


def _ref_supcon(z, y, tau):
    """Khosla et al. eq. 2, written as loops."""
    z = _n(z)
    losses = []
    for i in range(len(y)):
        others = [a for a in range(len(y)) if a != i]
        pos = [p for p in others if y[p] == y[i]]
        if not pos:
            continue
        denom = sum(math.exp(float(z[i] @ z[a]) / tau) for a in others)
        losses.append(-sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denom) for p in pos) / len(pos))
    return sum(losses) / len(losses)


def _ref_nspt(s, t, y, reh, tau):
    """Anchors: rehearsal students. Positives: same-class rehearsal teachers. Negatives: other-class students."""
    s, t = _n(s), _n(t)
    R = [i for i in range(len(y)) if reh[i]]
    losses = []
    for i in R:
        pos = [p for p in R if y[p] == y[i]]
        neg = [n for n in range(len(y)) if y[n] != y[i]]
        denom = sum(math.exp(float(s[i] @ t[p]) / tau) for p in pos) + sum(math.exp(float(s[i] @ s[n]) / tau) for n in neg)
        losses.append(-sum(math.log(math.exp(float(s[i] @ t[p]) / tau) / denom) for p in pos) / len(pos))
    return sum(losses) / len(losses)


def _ref_mm(a, e, y, tau):
    a, e = _n(a), _n(e)

    def one_way(x, c):
        out = []
        for i in range(len(y)):
            pos = [p for p in range(len(y)) if y[p] == y[i]]
            denom = sum(math.exp(float(x[i] @ c[m]) / tau) for m in range(len(y)))
            out.append(-sum(math.log(math.exp(float(x[i] @ c[p]) / tau) / denom) for p in pos) / len(pos))
        return sum(out) / len(out)
    return 0.5 * (one_way(a, e) + one_way(e, a))


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 1, 0, 2, 1, 0, 2, 3])
    s, t = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    reh = torch.tensor([False, False, False, True, True, False, True, True])
    return s, t, y, reh


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_supcon_matches_formula(batch, tau):
    s, _, y, _ = batch
    out = supcon_loss(s, y, temperature=tau)
    assert set(out) == {"loss", "supcon"}
    assert float(out["loss"]) == pytest.approx(_ref_supcon(s, y.tolist(), tau), rel=1e-5)


@pytest.mark.parametrize("tau", [0.1, 0.3])
def test_nspt_matches_formula(batch, tau):
    s, t, y, reh = batch
    got = nspt_loss(s, t, y, reh, temperature=tau)
    assert float(got) == pytest.approx(_ref_nspt(s, t, y.tolist(), reh.tolist(), tau), rel=1e-5)


def test_nspt_gradient_flows_to_student_only(batch):
    s, t, y, reh = batch
    s, t = s.clone().requires_grad_(), t.clone().requires_grad_()
    nspt_loss(s, t, y, reh).backward()
    assert t.grad is None or float(t.grad.abs().sum()) == 0.0
    assert float(s.grad[reh].abs().sum()) > 0


def test_nspt_is_low_when_student_matches_teacher_classes():
    # students == teachers, classes well separated -> small loss; shuffled teachers -> larger
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    centers = torch.eye(3, 6) * 10
    z = centers[y] + 0.01 * torch.randn(6, 6)
    reh = torch.ones(6, dtype=torch.bool)
    good = nspt_loss(z, z, y, reh)
    bad = nspt_loss(z, z[torch.tensor([2, 3, 4, 5, 0, 1])], y, reh)
    assert float(good) < 0.05 * float(bad) + 0.8


def test_multimodal_matches_formula(batch):
    s, t, y, _ = batch
    got = multimodal_loss(s, t, y, temperature=0.2)
    assert float(got) == pytest.approx(_ref_mm(s, t, y.tolist(), 0.2), rel=1e-5)


def test_coconut_combines_parts(batch):
    s, t, y, reh = batch
    a, e = torch.randn(8, 6), torch.randn(8, 6)
    out = coconut_loss(s, t, y, reh, a, e, temperature=0.1, w_nspt=0.7, w_mm=0.3)
    assert set(out) == {"loss", "nspt", "mm"}
    new = ~reh
    assert float(out["mm"]) == pytest.approx(_ref_mm(a[new], e[new], y[new].tolist(), 0.1), rel=1e-5)
    assert float(out["nspt"]) == pytest.approx(_ref_nspt(s, t, y.tolist(), reh.tolist(), 0.1), rel=1e-5)
    assert float(out["loss"]) == pytest.approx(0.7 * float(out["nspt"]) + 0.3 * float(out["mm"]), rel=1e-6)
    no_teacher = coconut_loss(s, None, y, reh, a, e)
    assert float(no_teacher["nspt"]) == 0.0


def test_no_positives_gives_zero_not_nan():
    z = torch.randn(3, 4, requires_grad=True)
    loss = supcon_loss(z, torch.tensor([0, 1, 2]))["loss"]
    assert float(loss.detach()) == 0.0 and not torch.isnan(loss)
    loss.backward()
    with pytest.raises(ValueError, match="temperature"):
        sup_contrastive(z, torch.tensor([0, 1, 2]), z, torch.tensor([0, 1, 2]), temperature=0)
    with pytest.raises(ValueError, match="embeddings"):
        supcon_loss(torch.randn(3, 4), torch.tensor([0, 1]))


def test_kd_matches_definition():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(5, 7, generator=g), torch.randn(5, 4, generator=g)
    T = 2.0
    got = kd_loss(s, t, temperature=T, num_old=4)["kd"]
    p = F.softmax(t / T, 1)
    q = F.log_softmax(s[:, :4] / T, 1)
    ref = (p * (p.log() - q)).sum(1).mean() * T * T
    assert float(got) == pytest.approx(float(ref), rel=1e-5)
    assert float(kd_loss(t, t, num_old=4)["kd"]) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="num_old"):
        kd_loss(s, t, num_old=9)
