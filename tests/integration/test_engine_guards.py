"""The engine's guards (recipes/common.build_trainer): SIGTERM / SIGINT stop at a step boundary with a
resumable last.ckpt and exit 143 / 130; a non-finite loss stops before its checkpoint is written and
nothing non-finite is exported; stale temp files of a killed write are removed on start."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import lightning as L
import pytest
import torch

from avsuite.errors import NonFiniteLoss
from avsuite.recipes.common import OptimConfig, TrainerConfig, adamw_with_schedule, build_trainer, export_model

SCRIPT = textwrap.dedent("""
    import sys, time, torch, lightning as L
    from avsuite.errors import TrainingInterrupted
    from avsuite.recipes.common import TrainerConfig, build_trainer

    class Slow(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)
        def training_step(self, batch, idx):
            time.sleep(0.05)
            if idx == 5:
                open(sys.argv[1] + "/started", "w").close()
            return self.lin(batch[0]).pow(2).mean()
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)
        def train_dataloader(self):
            data = torch.utils.data.TensorDataset(torch.randn(20_000, 4))
            return torch.utils.data.DataLoader(data, batch_size=2)

    cfg = TrainerConfig(max_steps=100_000, accelerator="cpu", checkpoint_every_n_steps=1000, progress_bar=False)
    try:
        build_trainer(cfg, sys.argv[1], enable_validation=False).fit(Slow(), ckpt_path=sys.argv[2] or None)
    except TrainingInterrupted as exc:
        print(exc.step, file=sys.stderr)
        sys.exit(exc.exit_code)
""")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_writes_a_resumable_checkpoint_and_exits_128_plus_signum(tmp_path, sig, code):
    (tmp_path / ".last.ckpt.dead.tmp").write_bytes(b"x" * 1000)        # left by an earlier kill -9
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path), ""], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.1)                                                # training has started
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    step = int(err.strip().splitlines()[-1])
    assert 0 < step < 1000                                             # stopped long before max_steps
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == step
    assert not list(tmp_path.glob(".*.tmp"))                           # the stale temp file is gone


class Exploding(L.LightningModule):
    def __init__(self, bad_step: int):
        super().__init__()
        self.lin, self.bad_step = torch.nn.Linear(4, 1), bad_step

    def training_step(self, batch, idx):
        loss = self.lin(batch[0]).pow(2).mean()
        return loss * float("nan") if self.global_step == self.bad_step else loss

    def configure_optimizers(self):
        return adamw_with_schedule(self, OptimConfig(lr=1e-2), 100)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(100, 4)), batch_size=2)


def test_non_finite_loss_stops_before_its_checkpoint(tmp_path):
    cfg = TrainerConfig(max_steps=20, accelerator="cpu", checkpoint_every_n_steps=1, progress_bar=False)
    model = Exploding(bad_step=3)
    with pytest.raises(NonFiniteLoss, match="loss is nan at step"):
        build_trainer(cfg, tmp_path, enable_validation=False).fit(model)
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3                                    # the last good step
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    with pytest.raises(NonFiniteLoss, match="non-finite weights"):
        export_model(tmp_path, {"w": torch.tensor([1.0, float("inf")])}, {"kind": "x"})
    assert not (tmp_path / "model").exists()


def test_weight_decay_groups_skip_norms_biases_and_logit_scale():
    from avsuite.recipes.common import param_groups

    m = torch.nn.Module()
    m.lin, m.norm = torch.nn.Linear(4, 4), torch.nn.LayerNorm(4)
    m.logit_scale = torch.nn.Parameter(torch.zeros(()))
    decay, no_decay = param_groups(m, 0.1)
    assert decay["weight_decay"] == 0.1 and [p.shape for p in decay["params"]] == [(4, 4)]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 4  # bias, norm w+b, logit scale


def test_last_ckpt_holds_the_final_step(tmp_path):
    cfg = TrainerConfig(max_steps=7, accelerator="cpu", checkpoint_every_n_steps=5, progress_bar=False)
    build_trainer(cfg, tmp_path, enable_validation=False).fit(Exploding(bad_step=-1))
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 7
