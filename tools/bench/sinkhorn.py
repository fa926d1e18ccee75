"""Benchmark: our batched, masked, log-domain Sinkhorn vs GeomLoss (the CTC+OT paper's OT code) and
POT looped over the batch, in one run, at the sizes the ctc_ot recipe really uses and at the paper's.

Inputs: variable-length speech-like (N frames) and text-like (M tokens) unit-norm clouds with the
positional coordinate, as the CTC+OT loss sees them (``pos_weight=1``), padded and masked.

- vs GeomLoss: the debiased Sinkhorn divergence, forward + backward (``SamplesLoss("sinkhorn", p=2,
  blur, scaling=0.5, backend="tensorized")`` with zero weights on padding and OUR diameter, so both
  walk the same eps ladder) against ``sinkhorn_divergence(n_iters=0)``, float32 and float64. Values
  and gradients are compared (relative differences reported); peak memory is measured per side in
  a fresh process (VmHWM growth over the run).
- vs POT: the entropic transport cost ``<P, C>`` at ``eps = blur^2`` converged to 1e-9 (``ot.sinkhorn2``,
  log-domain, one call per item on the valid points) against ``entropic_ot(value="primal")`` (one
  batched call, over-relaxed), float64.

Sizes: ``recipe`` = configs/ctc_ot/tiny.yaml on Asterisk (batch 16, <= ~100 encoder frames at 25 Hz
after the 4x subsampler, <= ~60 characters, d_model 144 + 1); ``paper`` = the base config on
MuST-C-like utterances (batch 32, 300 frames = 12 s, 80 subword tokens, d_model 512 + 1).

    python tools/bench/sinkhorn.py [--quick] [--threads N] [--compiled]

Ends by printing ONE JSON line of named figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from avsuite.losses.ot import _diameter, add_position, cost_matrix, entropic_ot, sinkhorn_divergence

SIZES = {"quick": (8, 60, 30, 64), "recipe": (16, 100, 60, 144), "paper": (32, 300, 80, 512)}
BLUR = 0.1


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
    """Median seconds per call over ``repeats`` calls after a warm-up (a median: one scheduler
    hiccup moved the mean of 3 calls of a 30-ms problem by +-30 %)."""
    out = fn()                                   # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def ours_fn(x, y, xm, ym, dtype, compiled: bool = False):
    def run():
        xx, yy = x.detach().to(dtype).clone().requires_grad_(True), y.detach().to(dtype).clone().requires_grad_(True)
        v = sinkhorn_divergence(xx, yy, xm, ym, blur=BLUR, scaling=0.5, n_iters=0, compiled=compiled)
        v.sum().backward()
        return v.detach(), xx.grad, yy.grad
    return run


def geomloss_fn(x, y, xm, ym, dtype, diameter: float):
    from geomloss import SamplesLoss

    loss = SamplesLoss("sinkhorn", p=2, blur=BLUR, scaling=0.5, debias=True, backend="tensorized", diameter=diameter)
    a = xm.to(dtype) / xm.sum(1, keepdim=True)
    b = ym.to(dtype) / ym.sum(1, keepdim=True)

    def run():
        xx, yy = x.detach().to(dtype).clone().requires_grad_(True), y.detach().to(dtype).clone().requires_grad_(True)
        v = loss(a, xx, b, yy)
        v.sum().backward()
        return v.detach(), xx.grad, yy.grad
    return run


def pot_loop(x, y, xm, ym, iters: int = 20000, thr: float = 1e-9) -> list[float]:
    import ot

    vals = []
    for i in range(x.shape[0]):
        xi, yi = x[i][xm[i]].double(), y[i][ym[i]].double()
        c = cost_matrix(xi[None], yi[None])[0].numpy()
        a, b = np.full(len(xi), 1 / len(xi)), np.full(len(yi), 1 / len(yi))
        vals.append(float(ot.sinkhorn2(a, b, c, BLUR ** 2, method="sinkhorn_log", numItermax=iters, stopThr=thr)))
    return vals


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-300))


def _vm_hwm_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))


def worker(side: str, size: str, dtype_name: str, reps: int) -> None:
    """In a fresh process: time ``side`` and report its peak-RSS growth (MB) over the timed runs."""
    b, n, m, d = SIZES[size]
    dtype = getattr(torch, dtype_name)
    x, y, xm, ym = make_inputs(b, n, m, d)
    if side == "geomloss":
        fn = geomloss_fn(x, y, xm, ym, dtype, _diameter(x, y, xm, ym))
    else:
        fn = ours_fn(x, y, xm, ym, dtype, compiled=side == "ours_compiled")
        if side == "ours_compiled":
            fn()                                        # compile outside the timed runs (once per process)
    base = _vm_hwm_kb()
    t, _ = timed(fn, reps)
    print(json.dumps({"ms": 1e3 * t, "peak_mb": (_vm_hwm_kb() - base) / 1024}))


def in_fresh_process(side: str, size: str, dtype: str, reps: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", side, size, dtype, str(reps), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small batch, few repeats (< 1 min)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--compiled", action="store_true", help="also time the torch.compile'd transforms (compiles ~1 min)")
    ap.add_argument("--worker", nargs=4, metavar=("SIDE", "SIZE", "DTYPE", "REPS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        worker(*args.worker[:3], int(args.worker[3]))
        return
    sizes = ["quick"] if args.quick else ["recipe", "paper"]
    reps = {"quick": 2, "recipe": 25, "paper": 5}     # ~1 s of calls per side at the recipe size
    res: dict = {"blur": BLUR, "threads": args.threads, "load_avg_1min": os.getloadavg()[0]}
    ratios = []
    for size in sizes:
        b, n, m, d = SIZES[size]
        x, y, xm, ym = make_inputs(b, n, m, d)
        res[f"{size}_shape"] = f"B={b} N={n} M={m} D={d + 1}"
        for dtype in ("float32", "float64"):
            key = f"{size}_{dtype}"
            ours = in_fresh_process("ours", size, dtype, reps[size], args.threads)
            geo = in_fresh_process("geomloss", size, dtype, reps[size], args.threads)
            comp = in_fresh_process("ours_compiled", size, dtype, reps[size], args.threads) if args.compiled else None
            (v1, gx1, gy1) = ours_fn(x, y, xm, ym, getattr(torch, dtype))()
            (v2, gx2, gy2) = geomloss_fn(x, y, xm, ym, getattr(torch, dtype), _diameter(x, y, xm, ym))()
            res.update({f"{key}_ours_ms": ours["ms"], f"{key}_geomloss_ms": geo["ms"],
                        f"{key}_ratio_vs_geomloss": geo["ms"] / ours["ms"],
                        f"{key}_ours_peak_mb": ours["peak_mb"], f"{key}_geomloss_peak_mb": geo["peak_mb"],
                        f"{key}_value_rel_diff": float(((v1 - v2).abs() / v2.abs()).max()),
                        f"{key}_grad_rel_diff": max(_rel(gx1, gx2), _rel(gy1, gy2))})
            ratios.append(geo["ms"] / ours["ms"])
            if comp:
                res.update({f"{key}_ours_compiled_ms": comp["ms"], f"{key}_compiled_ratio_vs_geomloss": geo["ms"] / comp["ms"],
                            f"{key}_ours_compiled_peak_mb": comp["peak_mb"]})
        if size in ("quick", "recipe"):
            xd, yd = x.double(), y.double()
            t_ours, val = timed(lambda: entropic_ot(xd, yd, xm, ym, blur=BLUR, value="primal", n_iters=5000, tol=1e-9), 1)
            start = time.perf_counter()                 # POT has no warm-up to amortise: one timed pass
            pot = np.array(pot_loop(x, y, xm, ym))
            t_pot = time.perf_counter() - start
            res.update({f"{size}_primal_ours_ms": 1e3 * t_ours, f"{size}_pot_loop_ms": 1e3 * t_pot,
                        f"{size}_ratio_vs_pot": t_pot / t_ours,
                        f"{size}_primal_rel_diff_vs_pot": float(np.max(np.abs(val.numpy() - pot) / np.abs(pot)))})
    res["min_ratio_vs_geomloss"] = min(ratios)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
