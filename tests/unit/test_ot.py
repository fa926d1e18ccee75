"""Our batched log-domain Sinkhorn against POT, padding invariance, batched == per-item, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avsuite.losses.ot import (add_position, cost_matrix, entropic_ot, eps_schedule, ot_loss,
                               sinkhorn_divergence)

ot = pytest.importorskip("ot")
#: stated tolerance vs POT (float64, converged): relative 1e-6
RTOL = 1e-6


def _clouds(b=3, n=11, m=6, d=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=g, dtype=dtype)
    y = torch.randn(b, m, d, generator=g, dtype=dtype) + 0.3
    xm = torch.ones(b, n, dtype=torch.bool)
    ym = torch.ones(b, m, dtype=torch.bool)
    xm[1, 7:] = False
    ym[2, 3:] = False
    return x, y, xm, ym


def _pot(x, y, reg=None):
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    c = cost_matrix(torch.as_tensor(x)[None], torch.as_tensor(y)[None])[0].numpy()
    if reg is None:
        return ot.emd2(a, b, c)
    return ot.sinkhorn2(a, b, c, reg, method="sinkhorn_log", numItermax=200000, stopThr=1e-14)


@pytest.mark.parametrize("blur", [1.0, 0.5, 0.3])
def test_primal_matches_pot_sinkhorn2(blur):
    x, y, xm, ym = _clouds()
    ours = entropic_ot(x, y, xm, ym, blur=blur, value="primal", n_iters=5000, tol=1e-13)
    for i in range(x.shape[0]):
        ref = _pot(x[i][xm[i]].numpy(), y[i][ym[i]].numpy(), reg=blur ** 2)
        assert float(ours[i]) == pytest.approx(float(ref), rel=RTOL)


def test_small_blur_approaches_exact_emd():
    x, y, xm, ym = _clouds(seed=1)
    ours = entropic_ot(x, y, xm, ym, blur=0.1, value="primal", n_iters=5000, tol=1e-12)
    for i in range(x.shape[0]):
        exact = _pot(x[i][xm[i]].numpy(), y[i][ym[i]].numpy())
        assert float(ours[i]) >= float(exact) - 1e-9          # entropic plan is feasible: cost >= optimum
        assert float(ours[i]) == pytest.approx(float(exact), rel=1e-3)


def test_padding_values_do_not_change_the_loss():
    x, y, xm, ym = _clouds()
    base = sinkhorn_divergence(x, y, xm, ym, blur=0.3, n_iters=500, tol=1e-12)
    x2, y2 = x.clone(), y.clone()
    x2[~xm] = 1e3
    y2[~ym] = -7.0
    assert torch.allclose(sinkhorn_divergence(x2, y2, xm, ym, blur=0.3, n_iters=500, tol=1e-12), base, atol=1e-9)
    # extra padding columns change nothing either
    x3 = torch.cat([x, torch.randn(3, 4, x.shape[2], dtype=x.dtype)], 1)
    xm3 = torch.cat([xm, torch.zeros(3, 4, dtype=torch.bool)], 1)
    assert torch.allclose(sinkhorn_divergence(x3, y, xm3, ym, blur=0.3, n_iters=500, tol=1e-12), base, atol=1e-9)


def test_batched_equals_per_item():
    x, y, xm, ym = _clouds(b=4, seed=2)
    xm[3, 2:] = False
    kw = dict(blur=0.2, n_iters=1000, tol=1e-12)
    batched = sinkhorn_divergence(x, y, xm, ym, **kw)
    for i in range(4):
        single = sinkhorn_divergence(x[i:i + 1, xm[i]], y[i:i + 1, ym[i]], **kw)
        assert float(batched[i]) == pytest.approx(float(single[0]), rel=1e-7, abs=1e-10)


def test_debiased_divergence_is_zero_on_identical_clouds_and_positive_otherwise():
    x, y, xm, ym = _clouds()
    assert torch.allclose(sinkhorn_divergence(x, x, xm, xm, blur=0.1), torch.zeros(3, dtype=x.dtype), atol=1e-8)
    assert bool((sinkhorn_divergence(x, y, xm, ym, blur=0.1) > 0).all())


def test_envelope_gradient_matches_finite_differences():
    x, y, xm, ym = _clouds(b=3, n=5, m=4, d=3, seed=3)
    x.requires_grad_(True)
    kw = dict(blur=0.5, n_iters=3000, tol=1e-13, value="dual")
    entropic_ot(x, y, xm, ym, **kw).sum().backward()
    h = 1e-6
    for idx in [(0, 0, 0), (0, 3, 2), (1, 4, 1)]:
        xp, xn = x.detach().clone(), x.detach().clone()
        xp[idx] += h
        xn[idx] -= h
        fd = (entropic_ot(xp, y, xm, ym, **kw).sum() - entropic_ot(xn, y, xm, ym, **kw).sum()) / (2 * h)
        assert float(x.grad[idx]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)


def test_float32_loss_is_finite_with_tiny_blur_and_has_gradients():
    x, y, xm, ym = _clouds(dtype=torch.float32)
    x.requires_grad_(True)
    out = ot_loss(x, xm, y, ym, blur=0.05, pos_weight=1.0)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_position_coordinate_is_normalised_per_item():
    x = torch.zeros(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    pos = add_position(x, mask, weight=2.0)[..., -1]
    assert torch.allclose(pos[0], torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0]))
    assert torch.allclose(pos[1], torch.tensor([0.0, 1.0, 2.0, 0.0, 0.0]))


def test_eps_schedule_ends_at_blur_and_decreases():
    sched = eps_schedule(diameter=10.0, blur=0.05, p=2, scaling=0.5)
    assert sched[-1] == pytest.approx(0.05 ** 2)
    assert sched[0] == pytest.approx(100.0)
    assert all(a >= b * (1 - 1e-12) for a, b in zip(sched, sched[1:]))


def test_empty_item_raises_a_clear_error():
    x, y, xm, ym = _clouds()
    ym[0] = False
    with pytest.raises(ValueError, match="empty item"):
        sinkhorn_divergence(x, y, xm, ym)


def _geomloss(x, y, xm, ym, blur, scaling, diameter):
    geomloss = pytest.importorskip("geomloss")
    loss = geomloss.SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, debias=True, backend="tensorized",
                                diameter=diameter)
    a = xm.to(x.dtype) / xm.sum(1, keepdim=True)
    b = ym.to(y.dtype) / ym.sum(1, keepdim=True)
    xx, yy = x.detach().clone().requires_grad_(True), y.detach().clone().requires_grad_(True)
    v = loss(a, xx, b, yy)
    v.sum().backward()
    return v.detach(), xx.grad, yy.grad


@pytest.mark.parametrize("blur, scaling", [(0.1, 0.5), (0.5, 0.5), (0.05, 0.8)])
def test_divergence_equals_geomloss_values_and_gradients(blur, scaling):
    """GeomLoss (the CTC+OT paper's OT code) is the reference: same eps ladder, same symmetric
    updates, same last extrapolation -> same values and gradients (float64, n_iters=0)."""
    from avsuite.losses.ot import _diameter

    x, y, xm, ym = _clouds(b=4, n=13, m=7, d=4, seed=5)
    x[~xm] = 0.0                                   # GeomLoss sees padded points (zero weight) too
    y[~ym] = 0.0
    diameter = _diameter(x, y, xm, ym)
    ref, gx_ref, gy_ref = _geomloss(x, y, xm, ym, blur, scaling, diameter)
    xx, yy = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    ours = sinkhorn_divergence(xx, yy, xm, ym, blur=blur, scaling=scaling, n_iters=0)
    ours.sum().backward()
    assert torch.allclose(ours.detach(), ref, rtol=1e-9, atol=1e-12)
    assert torch.allclose(xx.grad, gx_ref, rtol=1e-7, atol=1e-10)
    assert torch.allclose(yy.grad, gy_ref, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("p", [2, 1])
def test_divergence_gradient_matches_finite_differences(p):
    """Closed-form envelope gradients (p=2) and the autograd fallback (p=1), for x and y, on a
    converged problem, against central differences."""
    x, y, xm, ym = _clouds(b=3, n=8, m=4, d=3, seed=7)
    kw = dict(p=p, blur=0.7, n_iters=4000, tol=1e-14)
    xx, yy = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    sinkhorn_divergence(xx, yy, xm, ym, **kw).sum().backward()
    h = 1e-6
    for t, grad, idx in [(x, xx.grad, (0, 1, 2)), (x, xx.grad, (1, 4, 0)), (y, yy.grad, (0, 3, 1)), (y, yy.grad, (2, 1, 2))]:
        plus, minus = t.clone(), t.clone()
        plus[idx] += h
        minus[idx] -= h
        args = (plus, y) if t is x else (x, plus)
        args_m = (minus, y) if t is x else (x, minus)
        fd = (sinkhorn_divergence(*args, xm, ym, **kw).sum() - sinkhorn_divergence(*args_m, xm, ym, **kw).sum()) / (2 * h)
        assert float(grad[idx]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7), (p, idx)


@pytest.mark.slow
def test_compiled_transforms_equal_eager():
    """The torch.compile'd fused transforms (opt-in) give the eager values and gradients."""
    import shutil

    if not shutil.which("g++") and not shutil.which("c++"):
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    x, y, xm, ym = _clouds(b=3, n=9, m=5, d=4, seed=11)
    out = []
    for compiled in (False, True):
        xx, yy = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        v = sinkhorn_divergence(xx, yy, xm, ym, blur=0.2, n_iters=30, compiled=compiled)
        v.sum().backward()
        out.append((v.detach(), xx.grad, yy.grad))
    for a, b in zip(*out):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_diameter_of_prefix_masks_equals_the_masked_path():
    from avsuite.losses.ot import _diameter, _prefix_lengths

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(4, 9, 5, generator=g, dtype=torch.float64), torch.randn(4, 7, 5, generator=g, dtype=torch.float64)
    xm = torch.arange(9)[None] < torch.tensor([9, 3, 5, 1])[:, None]
    ym = torch.arange(7)[None] < torch.tensor([2, 7, 4, 6])[:, None]
    x[~xm], y[~ym] = 1e3, -1e3                               # padding values never count
    assert _prefix_lengths(xm) == [9, 3, 5, 1]
    perm_x, perm_y = torch.randperm(9, generator=g), torch.randperm(7, generator=g)
    assert _prefix_lengths(xm[:, perm_x]) is None            # the same points, not a prefix: the masked path
    fast = _diameter(x, y, xm, ym)
    slow = _diameter(x[:, perm_x], y[:, perm_y], xm[:, perm_x], ym[:, perm_y])
    pts = [torch.cat([x[i][xm[i]], y[i][ym[i]]]) for i in range(4)]
    want = max(float((p.amax(0) - p.amin(0)).norm()) for p in pts)
    assert fast == pytest.approx(want, rel=1e-12) and slow == pytest.approx(want, rel=1e-12)
