"""2 CPU processes (gloo): gathered losses == single-process losses on the full global batch.

Each rank holds a slice of one global batch (equal and unequal splits). Checked on every rank:
every returned value equals the single-process value; the parameter gradients of a real
``DistributedDataParallel`` model (which AVERAGES gradients over ranks) equal the single-process
gradients (``grad_reduction="mean"``); with ``grad_reduction="sum"`` the per-rank gradients summed
over ranks equal them; input-feature gradients likewise.
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

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
)

N, DIN, D, P, K, DF = 8, 5, 4, 2, 3, 6
ATOL = 1e-6


def global_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    pmask = torch.rand(N, P, generator=g) < 0.6
    pmask[:, 0] = True
    nmask = torch.rand(N, K, generator=g) < 0.6
    nmask[1] = False  # an audio with every negative masked
    return {"xa": r(N, DIN), "xt": r(N, DIN), "xp": r(N, P, DIN), "xn": r(N, K, DIN), "frozen": r(N, DF),
            "pmask": pmask, "nmask": nmask}


class Towers(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.wa = nn.Parameter(torch.randn(DIN, D, generator=g, dtype=torch.float64))
        self.wt = nn.Parameter(torch.randn(DIN, D, generator=g, dtype=torch.float64))
        self.log_scale = nn.Parameter(torch.tensor(2.0, dtype=torch.float64))

    def forward(self, xa, xt, xp, xn):
        return (F.normalize(xa @ self.wa, dim=-1), F.normalize(xt @ self.wt, dim=-1),
                F.normalize(xp @ self.wt, dim=-1), F.normalize(xn @ self.wt, dim=-1), self.log_scale.exp())


CFG = dict(clap=1.0, compa=0.5, modular=0.3, cwcl=0.7, dcl=0.2, align_uniform=0.4)


def all_losses(model, x, reduction):
    """Returns (objective dict, dict of standalone loss values, leaf inputs)."""
    leaves = {k: x[k].clone().requires_grad_(True) for k in ("xa", "xt", "xp", "xn")}
    a, t, p, n, s = model(leaves["xa"], leaves["xt"], leaves["xp"], leaves["xn"])
    cfg = ContrastiveObjective(**CFG, grad_reduction=reduction)
    out = compute_objective(cfg, a, t, s, pos_text=p, pos_mask=x["pmask"], neg_text=n, neg_mask=x["nmask"],
                            frozen=x["frozen"])
    kw = dict(grad_reduction=reduction)
    singles = {
        "clap_loss": clap_loss(a, t, s, **kw)["loss"],
        "compa_loss": compa_loss(a, t, s, neg_text=n, neg_mask=x["nmask"], **kw)["loss"],
        "modular_loss": modular_loss(a, p, s, pos_mask=x["pmask"], **kw)["loss"],
        "cwcl_loss": cwcl_loss(a, t, s, frozen=x["frozen"], **kw)["loss"],
        "dcl_loss": dcl_loss(a, t, s, **kw)["loss"],
        "align_uniform_loss": align_uniform_loss(a, t, **kw)["loss"],
        "gathered_audio": gather_features(a).detach(),
    }
    return out, singles, leaves


def worker(rank: int, world: int, port: int, sizes: list[int], outdir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        x = global_inputs()
        lo = sum(sizes[:rank])
        local = {k: v[lo : lo + sizes[rank]] for k, v in x.items()}
        result = {}
        for reduction in ("mean", "sum"):
            model = Towers()
            wrapped = nn.parallel.DistributedDataParallel(model) if reduction == "mean" else model
            out, singles, leaves = all_losses(wrapped, local, reduction)
            out["loss"].backward()
            result[reduction] = {
                "values": {k: v.detach() for k, v in {**out, **singles}.items()},
                "param_grads": {k: p.grad.clone() for k, p in model.named_parameters()},
                "input_grads": {k: v.grad.clone() for k, v in leaves.items()},
            }
        torch.save(result, f"{outdir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sizes", [[4, 4], [3, 5]], ids=["equal", "unequal"])
def test_gathered_losses_match_single_process(tmp_path, sizes):
    mp.spawn(worker, args=(2, free_port(), sizes, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    x = global_inputs()
    model = Towers()
    out, singles, leaves = all_losses(model, x, "mean")
    out["loss"].backward()
    want_values = {k: v.detach() for k, v in {**out, **singles}.items()}
    want_params = {k: p.grad for k, p in model.named_parameters()}
    want_inputs = {k: v.grad for k, v in leaves.items()}

    for reduction in ("mean", "sum"):
        got = [r[reduction] for r in ranks]
        for k, v in want_values.items():
            for r in range(2):
                assert torch.allclose(got[r]["values"][k], v, atol=ATOL), (reduction, k, r)
        for k, v in want_params.items():
            combined = got[0]["param_grads"][k] + got[1]["param_grads"][k]
            if reduction == "mean":  # DDP already averaged: every rank holds the same, correct grad
                assert torch.allclose(got[0]["param_grads"][k], got[1]["param_grads"][k], atol=1e-12)
                combined = got[0]["param_grads"][k]
            assert torch.allclose(combined, v, atol=ATOL), (reduction, k, combined, v)
        world_scale = 2.0 if reduction == "mean" else 1.0
        for k, v in want_inputs.items():
            cat = torch.cat([got[0]["input_grads"][k], got[1]["input_grads"][k]]) / world_scale
            assert torch.allclose(cat, v, atol=ATOL), (reduction, k)
