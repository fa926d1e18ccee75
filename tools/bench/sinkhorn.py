"""Benchmark: our batched, masked, log-domain Sinkhorn vs POT looped over the batch (and GeomLoss).

Same inputs, same run: a batch of variable-length speech-like (N frames) and text-like (M tokens)
unit-norm clouds with the positional coordinate, as the CTC+OT loss sees them.

- vs POT: the entropic transport cost ``<P, C>`` at ``eps = blur^2`` (``ot.sinkhorn2``, log-domain,
  one call per item on the valid points) against ours (``entropic_ot(value="primal")``, one batched call).
- vs GeomLoss (if installed): the debiased Sinkhorn divergence (``SamplesLoss("sinkhorn", p=2,
  blur, scaling=0.5)``, batched with zero weights on padding) against ``sinkhorn_divergence``,
  forward + backward.

    python tools/bench/sinkhorn.py [--quick]

Ends by printing ONE JSON line of named figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from avsuite.losses.ot import add_position, cost_matrix, entropic_ot, sinkhorn_divergence


def make_inputs(b: int, n: int, m: int, d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n_len = torch.randint(n // 2, n + 1, (b,), generator=g)
    m_len = torch.randint(m // 2, m + 1, (b,), generator=g)
    xm = torch.arange(n)[None] < n_len[:, None]
    ym = torch.arange(m)[None] < m_len[:, None]
    x = torch.nn.functional.normalize(torch.randn(b, n, d, generator=g), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(b, m, d, generator=g), dim=-1)
    return add_position(x, xm, 1.0), add_position(y, ym, 1.0), xm, ym


def timed(fn, repeats: int) -> tuple[float, object]:
    out = fn()                                   # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return (time.perf_counter() - t) / repeats, out


def pot_loop(x, y, xm, ym, blur: float, iters: int, thr: float) -> list[float]:
    import ot

    vals = []
    for i in range(x.shape[0]):
        xi, yi = x[i][xm[i]].double(), y[i][ym[i]].double()
        c = cost_matrix(xi[None], yi[None])[0].numpy()
        a, b = np.full(len(xi), 1 / len(xi)), np.full(len(yi), 1 / len(yi))
        vals.append(float(ot.sinkhorn2(a, b, c, blur ** 2, method="sinkhorn_log", numItermax=iters, stopThr=thr)))
    return vals


def geomloss_fn(x, y, xm, ym, blur: float):
    from geomloss import SamplesLoss

    loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=0.5, debias=True, backend="tensorized")
    a = xm.double() / xm.sum(1, keepdim=True)
    b = ym.double() / ym.sum(1, keepdim=True)

    def run():
        xx = x.detach().double().requires_grad_(True)
        v = loss(a, xx, b, y.double())
        v.sum().backward()
        return v.detach()
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small batch, few repeats (< 1 min)")
    args = ap.parse_args()
    b, n, m, d, reps = (8, 60, 30, 64, 2) if args.quick else (32, 150, 60, 144, 5)
    blur = 0.1
    torch.manual_seed(0)
    x, y, xm, ym = make_inputs(b, n, m, d)
    xd, yd = x.double(), y.double()
    res = {"batch": b, "n": n, "m": m, "dim": d + 1, "blur": blur, "threads": torch.get_num_threads()}

    t_ours, ours = timed(lambda: entropic_ot(xd, yd, xm, ym, blur=blur, value="primal", n_iters=2000, tol=1e-9), reps)
    t_pot, pot = timed(lambda: pot_loop(x, y, xm, ym, blur, 20000, 1e-9), reps)
    res.update(ours_ms=1e3 * t_ours, pot_loop_ms=1e3 * t_pot, ratio_vs_pot=t_pot / t_ours,
               max_abs_diff_vs_pot=float(np.max(np.abs(ours.numpy() - np.array(pot)))),
               max_rel_diff_vs_pot=float(np.max(np.abs(ours.numpy() - np.array(pot)) / np.abs(np.array(pot)))))

    def ours_div():
        xx = xd.detach().clone().requires_grad_(True)
        v = sinkhorn_divergence(xx, yd, xm, ym, blur=blur, scaling=0.5, n_iters=0)
        v.sum().backward()
        return v.detach()

    t_div, div = timed(ours_div, reps)
    res["ours_divergence_fwd_bwd_ms"] = 1e3 * t_div
    try:
        t_geo, geo = timed(geomloss_fn(x, y, xm, ym, blur), reps)
        res.update(geomloss_fwd_bwd_ms=1e3 * t_geo, ratio_vs_geomloss=t_geo / t_div,
                   max_abs_diff_vs_geomloss=float((div - geo).abs().max()),
                   max_rel_diff_vs_geomloss=float(((div - geo).abs() / geo.abs()).max()))
    except ImportError:
        res["geomloss"] = "not installed"
    print(json.dumps(res))


if __name__ == "__main__":
    main()
