"""Every loss against a naive float64 reference written with explicit loops (values AND gradients)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avsuite.losses import (
    ContrastiveObjective,
    align_uniform_loss,
    clap_loss,
    compa_loss,
    compute_objective,
    cwcl_loss,
    dcl_loss,
    gather_features,
    modular_loss,
    pack_captions,
    unpack,
)

D = 6


def feats(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, D, generator=g, dtype=torch.float64), dim=-1).requires_grad_(True)


def scale(v=7.0):
    return torch.tensor(v, dtype=torch.float64, requires_grad=True)


def dot(x, y):
    return (x * y).sum()


# ------------------------------------------------------------------ naive references


def ref_clap(a, t, s):
    n = a.shape[0]
    a2t = t2a = 0.0
    for i in range(n):
        a2t = a2t - torch.log(torch.exp(s * dot(a[i], t[i])) / sum(torch.exp(s * dot(a[i], t[j])) for j in range(n)))
        t2a = t2a - torch.log(torch.exp(s * dot(t[i], a[i])) / sum(torch.exp(s * dot(t[i], a[j])) for j in range(n)))
    return (a2t / n + t2a / n) / 2


def ref_dcl(a, t, s):
    n = a.shape[0]
    tot = 0.0
    for x, y in ((a, t), (t, a)):
        for i in range(n):
            neg = sum(torch.exp(s * dot(x[i], y[j])) for j in range(n) if j != i)
            tot = tot + (-s * dot(x[i], y[i]) + torch.log(neg)) / n
    return tot / 2


def ref_align_uniform(a, t, alpha=2.0, tu=2.0, lam=1.0):
    n = a.shape[0]
    x = [a[i] / a[i].norm() for i in range(n)]
    y = [t[i] / t[i].norm() for i in range(n)]
    align = sum((x[i] - y[i]).norm() ** alpha for i in range(n)) / n

    def u(z):
        pairs = [torch.exp(-tu * (z[i] - z[j]).norm() ** 2) for i in range(n) for j in range(i + 1, n)]
        return torch.log(sum(pairs) / len(pairs))

    return align + lam * (u(x) + u(y)) / 2


def ref_modular(a, pos, pmask, neg, nmask, s):
    """pos (B,P,D), neg (B,K,D); lists of valid entries built by hand."""
    n = a.shape[0]
    all_pos = [(i, pos[i, p]) for i in range(n) for p in range(pos.shape[1]) if pmask[i, p]]
    a2t = 0.0
    for i in range(n):
        z = sum(torch.exp(s * dot(a[i], c)) for _, c in all_pos)
        for k in range(neg.shape[1]):
            if nmask[i, k]:
                z = z + torch.exp(s * dot(a[i], neg[i, k]))
        own = [c for j, c in all_pos if j == i]
        a2t = a2t + sum(-torch.log(torch.exp(s * dot(a[i], c)) / z) for c in own) / len(own)
    t2a = 0.0
    for j, c in all_pos:
        t2a = t2a - torch.log(torch.exp(s * dot(c, a[j])) / sum(torch.exp(s * dot(c, a[m])) for m in range(n)))
    return (a2t / n + t2a / len(all_pos)) / 2


def ref_cwcl(a, t, s, w):
    n = a.shape[0]
    tot = 0.0
    for x, y in ((a, t), (t, a)):
        for i in range(n):
            z = sum(torch.exp(s * dot(x[i], y[j])) for j in range(n))
            num = sum(w[i, j] * torch.log(torch.exp(s * dot(x[i], y[j])) / z) for j in range(n))
            tot = tot - num / sum(w[i, j] for j in range(n)) / n
    return tot / 2


def grads(value, inputs):
    return torch.autograd.grad(value, inputs, allow_unused=True, retain_graph=True)


def assert_same(got, want, inputs):
    assert torch.allclose(got, want, atol=1e-10, rtol=1e-10), (got.item(), want.item())
    for g1, g2 in zip(grads(got, inputs), grads(want, inputs)):
        if g2 is None:
            assert g1 is None or torch.all(g1 == 0)
            continue
        assert torch.isfinite(g1).all()
        assert torch.allclose(g1, g2, atol=1e-10, rtol=1e-8)


# ------------------------------------------------------------------ CLAP / DCL / align-uniform


def test_clap_equals_reference_and_cross_entropy():
    a, t, s = feats(5), feats(5, seed=1), scale()
    out = clap_loss(a, t, s)
    assert set(out) == {"loss", "clap", "clap_a2t", "clap_t2a"}
    assert out["loss"] is out["clap"]
    assert_same(out["loss"], ref_clap(a, t, s), (a, t, s))
    logits = s * a @ t.T
    lib = (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.T, torch.arange(5))) / 2
    assert torch.allclose(out["loss"], lib)


def test_clap_accepts_float_scale_and_float32():
    a, t = feats(4), feats(4, seed=1)
    v = clap_loss(a.float(), t.float(), 7.0)["loss"]
    assert v.dtype == torch.float32
    assert abs(v.item() - ref_clap(a, t, torch.tensor(7.0, dtype=torch.float64)).item()) < 1e-5
    hb = clap_loss(a.bfloat16(), t.bfloat16(), 7.0)["loss"]
    assert hb.dtype == torch.float32 and torch.isfinite(hb)


def test_dcl_equals_reference():
    a, t, s = feats(5), feats(5, seed=1), scale()
    out = dcl_loss(a, t, s)
    assert_same(out["loss"], ref_dcl(a, t, s), (a, t, s))


def test_dcl_rejects_batch_of_one():
    with pytest.raises(ValueError, match="at least 2"):
        dcl_loss(feats(1), feats(1, seed=1), scale())


def test_align_uniform_equals_reference_unnormalised_inputs():
    a = (torch.randn(6, D, dtype=torch.float64) * 3).requires_grad_(True)
    t = (torch.randn(6, D, dtype=torch.float64) * 2).requires_grad_(True)
    out = align_uniform_loss(a, t, alpha=2.0, t=2.0, lam=0.5)
    assert_same(out["loss"], ref_align_uniform(a, t, 2.0, 2.0, 0.5), (a, t))
    assert math.isclose(out["loss"].item(), out["align"].item() + 0.5 * out["uniform"].item(), rel_tol=1e-12)


def test_bad_inputs_raise_clear_errors():
    a, t = feats(4), feats(4, seed=1)
    with pytest.raises(ValueError, match="same shape"):
        clap_loss(a, feats(3), scale())
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        clap_loss(a[None], t[None], scale())
    with pytest.raises(ValueError, match="scalar"):
        clap_loss(a, t, torch.ones(2))
    with pytest.raises(ValueError, match="grad_reduction"):
        clap_loss(a, t, scale(), grad_reduction="avg")


def test_gather_features_is_identity_without_distributed():
    x = feats(3)
    assert gather_features(x) is x


# ------------------------------------------------------------------ CompA / modular


def random_mask(b, k, seed, p=0.5):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, k, generator=g) < p


def test_compa_equals_reference_with_random_negative_mask():
    a, t, s = feats(5), feats(5, seed=1), scale()
    neg = feats(5, 3, seed=2)
    nmask = random_mask(5, 3, seed=3)
    nmask[0] = False  # one row with all negatives masked
    out = compa_loss(a, t, s, neg_text=neg, neg_mask=nmask)
    ref = ref_modular(a, t[:, None], torch.ones(5, 1, dtype=torch.bool), neg, nmask, s)
    assert_same(out["loss"], ref, (a, t, neg, s))
    assert set(out) == {"loss", "compa", "compa_a2t", "compa_t2a"}


def test_compa_without_negatives_equals_clap():
    a, t, s = feats(5), feats(5, seed=1), scale()
    clap = clap_loss(a, t, s)["loss"]
    assert_same(compa_loss(a, t, s)["loss"], clap, (a, t, s))
    empty = feats(5, 0, seed=2)
    assert torch.allclose(compa_loss(a, t, s, neg_text=empty)["loss"], clap, atol=1e-12)
    masked = compa_loss(a, t, s, neg_text=feats(5, 4, seed=2), neg_mask=torch.zeros(5, 4, dtype=torch.bool))
    assert_same(masked["loss"], clap_loss(a, t, s)["loss"], (a, t, s))


def test_compa_hard_negatives_only_touch_audio_to_text():
    a, t, s = feats(4), feats(4, seed=1), scale()
    out = compa_loss(a, t, s, neg_text=feats(4, 2, seed=2))
    clap = clap_loss(a, t, s)
    assert torch.allclose(out["compa_t2a"], clap["clap_t2a"], atol=1e-12)
    assert out["compa_a2t"] > clap["clap_a2t"]  # extra denominator terms can only raise it


def test_masked_negative_contents_change_nothing_even_nan():
    a, t, s = feats(4), feats(4, seed=1), scale()
    neg1, neg2 = feats(4, 3, seed=2).detach().clone(), feats(4, 3, seed=2).detach().clone()
    mask = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.bool)
    neg1[~mask] = 1e6
    neg2[~mask] = float("nan")
    outs = []
    for neg in (neg1, neg2):
        neg.requires_grad_(True)
        v = compa_loss(a, t, s, neg_text=neg, neg_mask=mask)["loss"]
        ga, gn = torch.autograd.grad(v, (a, neg))
        assert torch.isfinite(v) and torch.isfinite(ga).all() and torch.isfinite(gn).all()
        assert torch.all(gn[~mask] == 0)
        outs.append((v, ga))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-12)
    assert torch.allclose(outs[0][1], outs[1][1], atol=1e-12)


def test_multiplicative_mask_would_be_wrong():
    """Why -inf: a masked logit of 0 (CompA's multiply-by-mask) still enters the softmax."""
    a, t, s = feats(4), feats(4, seed=1), scale(20.0)
    neg = feats(4, 2, seed=2)
    mask = torch.zeros(4, 2, dtype=torch.bool)
    ours = compa_loss(a, t, s, neg_text=neg, neg_mask=mask)["loss"]
    logits = torch.cat([s * a @ t.T, torch.zeros(4, 2, dtype=torch.float64)], dim=1)  # masked -> 0
    mult_a2t = F.cross_entropy(logits, torch.arange(4))
    assert not torch.allclose(mult_a2t, clap_loss(a, t, s)["clap_a2t"])
    assert torch.allclose(ours, clap_loss(a, t, s)["loss"])


def test_modular_equals_reference_and_reduces_to_compa():
    a, t, s = feats(4), feats(4, seed=1), scale()
    pos = feats(4, 3, seed=4)
    pmask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1]], dtype=torch.bool)
    neg = feats(4, 2, seed=5)
    nmask = random_mask(4, 2, seed=6)
    out = modular_loss(a, pos, s, pos_mask=pmask, neg_text=neg, neg_mask=nmask)
    assert_same(out["loss"], ref_modular(a, pos, pmask, neg, nmask, s), (a, pos, neg, s))
    one = modular_loss(a, t[:, None], s, neg_text=neg, neg_mask=nmask)["loss"]
    assert torch.allclose(one, compa_loss(a, t, s, neg_text=neg, neg_mask=nmask)["loss"], atol=1e-12)


def test_modular_rejects_audio_without_positive():
    pmask = torch.tensor([[1, 0], [0, 0]], dtype=torch.bool)
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        modular_loss(feats(2), feats(2, 2, seed=1), scale(), pos_mask=pmask)


def test_compa_shape_errors():
    with pytest.raises(ValueError, match="neg_text"):
        compa_loss(feats(3), feats(3, seed=1), scale(), neg_text=feats(2, 2))
    with pytest.raises(ValueError, match="neg_mask"):
        compa_loss(feats(3), feats(3, seed=1), scale(), neg_text=feats(3, 2), neg_mask=torch.ones(3, 3).bool())


# ------------------------------------------------------------------ CWCL


def test_cwcl_identity_weights_equal_infonce():
    a, t, s = feats(5), feats(5, seed=1), scale()
    out = cwcl_loss(a, t, s, weights=torch.eye(5, dtype=torch.float64))
    assert_same(out["loss"], clap_loss(a, t, s)["loss"], (a, t, s))


def test_cwcl_equals_reference_with_frozen_weights():
    a, t, s = feats(5), feats(5, seed=1), scale()
    frozen = torch.randn(5, 9, dtype=torch.float64)
    w = torch.empty(5, 5, dtype=torch.float64)
    for i in range(5):
        for j in range(5):
            cos = dot(frozen[i], frozen[j]) / (frozen[i].norm() * frozen[j].norm())
            w[i, j] = 1.0 if i == j else (1 + cos) / 2
    out = cwcl_loss(a, t, s, frozen=frozen)
    assert_same(out["loss"], ref_cwcl(a, t, s, w), (a, t, s))
    relu = cwcl_loss(a, t, s, frozen=frozen, weight_map="relu")["loss"]
    w_relu = torch.where(torch.eye(5, dtype=torch.bool), 1.0, (2 * w - 1).clamp_min(0))
    assert torch.allclose(relu, ref_cwcl(a, t, s, w_relu), atol=1e-10)


def test_cwcl_frozen_features_get_no_gradient_and_bad_weights_raise():
    a, t, s = feats(3), feats(3, seed=1), scale()
    frozen = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    v = cwcl_loss(a, t, s, frozen=frozen)["loss"]
    assert torch.autograd.grad(v, frozen, allow_unused=True)[0] is None
    with pytest.raises(ValueError, match="exactly one"):
        cwcl_loss(a, t, s)
    with pytest.raises(ValueError, match="non-negative"):
        cwcl_loss(a, t, s, weights=-torch.eye(3))
    with pytest.raises(ValueError, match="positive sum"):
        cwcl_loss(a, t, s, weights=torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        cwcl_loss(a, t, s, weights=torch.eye(2))


# ------------------------------------------------------------------ objective + TeminAL packing


def test_objective_is_weighted_sum_of_the_individual_losses():
    a, t, s = feats(5), feats(5, seed=1), scale()
    neg, nmask = feats(5, 2, seed=2), random_mask(5, 2, seed=3)
    pos, frozen = feats(5, 2, seed=4), torch.randn(5, 7, dtype=torch.float64)
    cfg = ContrastiveObjective(clap=1.0, compa=0.5, modular=0.25, cwcl=2.0, dcl=0.1, align_uniform=0.3)
    out = compute_objective(cfg, a, t, s, pos_text=pos, neg_text=neg, neg_mask=nmask, frozen=frozen)
    singles = {
        "clap": clap_loss(a, t, s)["loss"],
        "compa": compa_loss(a, t, s, neg_text=neg, neg_mask=nmask)["loss"],
        "modular": modular_loss(a, pos, s, neg_text=neg, neg_mask=nmask)["loss"],
        "cwcl": cwcl_loss(a, t, s, frozen=frozen)["loss"],
        "dcl": dcl_loss(a, t, s)["loss"],
        "align_uniform": align_uniform_loss(a, t)["loss"],
    }
    want = sum(getattr(cfg, k) * v for k, v in singles.items())
    for k, v in singles.items():
        assert torch.allclose(out[k], v, atol=1e-12), k
    assert_same(out["loss"], want, (a, t, s))


def test_objective_config_errors():
    with pytest.raises(ValueError, match="all term weights are 0"):
        ContrastiveObjective(clap=0.0)
    with pytest.raises(ValueError, match="dcl"):
        ContrastiveObjective(dcl=-1.0)
    a, t = feats(3), feats(3, seed=1)
    with pytest.raises(ValueError, match="pos_text"):
        compute_objective(ContrastiveObjective(modular=1.0), a, t, scale())
    with pytest.raises(ValueError, match="frozen"):
        compute_objective(ContrastiveObjective(cwcl=1.0), a, t, scale())


def test_only_clap_objective_equals_clap():
    a, t, s = feats(4), feats(4, seed=1), scale()
    out = compute_objective(ContrastiveObjective(), a, t, s)
    assert set(out) == {"loss", "clap", "clap_a2t", "clap_t2a"}
    assert_same(out["loss"], clap_loss(a, t, s)["loss"], (a, t, s))


def test_pack_captions_and_unpack():
    pos = [["dog then bell", "dog before bell"], ["rain"]]
    neg = [["bell then dog", "dog before bell", "dog"], []]
    pack = pack_captions(pos, neg)
    assert pack.texts == ["dog then bell", "dog before bell", "rain", "bell then dog", "dog"]
    assert pack.pos_mask.tolist() == [[True, True], [True, False]]
    assert pack.neg_mask.tolist() == [[True, True], [False, False]]  # the false negative was dropped
    feats_u = torch.arange(5, dtype=torch.float64)[:, None].repeat(1, 3)
    p, n = unpack(feats_u, pack)
    assert p.shape == (2, 2, 3) and n.shape == (2, 2, 3)
    assert p[0, 1, 0] == 1 and n[0, 1, 0] == 4 and p[1, 0, 0] == 2
    with pytest.raises(ValueError, match="no positive"):
        pack_captions([[]])


def test_pack_feeds_modular_loss():
    pos = [["a then b"], ["b then a", "b before a"], ["c"]]
    neg = [["b then a"], ["a then b"], []]
    pack = pack_captions(pos, neg)
    u = feats(len(pack.texts), seed=9)
    p, n = unpack(u, pack)
    a, s = feats(3), scale()
    out = modular_loss(a, p, s, pos_mask=pack.pos_mask, neg_text=n, neg_mask=pack.neg_mask)
    assert_same(out["loss"], ref_modular(a, p, pack.pos_mask, n, pack.neg_mask, s), (a, u, s))
