"""``trainer.strategy=ddp trainer.devices=2`` on CPU (gloo): two processes train one tiny CLAP.

- the ranks' batches are disjoint and, step by step, their union is the single-process batch of
  ``batch_size * 2`` (so their union over the epoch is the epoch);
- the DDP gradient (all-reduced) equals the single-process gradient on the global batch: the
  contrastive loss gathers features across ranks with gradient. The model runs in eval mode inside
  the step (BatchNorm on running statistics, no dropout / SpecAugment / random crop) and every clip
  is cropped to the same 0.5 s (no padding): per-rank batch statistics, RNG streams and padding are
  the differences a data-parallel step may legitimately have.

Lightning's DDP launcher re-runs the launching script for rank 1, so the runs live in a small
script file executed in a subprocess (not inside the pytest process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

SR = 16000
LABELS = {"hum": 150.0, "whistle": 2500.0, "beep": 800.0, "buzz": 400.0, "drone": 90.0, "chime": 1800.0,
          "tone": 600.0, "squeak": 3500.0}

SCRIPT = """
    import os, sys, torch
    torch.set_num_threads(1)
    import lightning as L
    from avsuite.recipes import clap

    devices, batch_size, out, record = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

    class Probe(L.Callback):
        def __init__(self):
            self.ids, self.grads = [], []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            pl_module.model.eval()
            self.ids.append(list(batch.ids))

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.grads.append({{n: p.grad.detach().clone() for n, p in pl_module.model.named_parameters()
                               if p.grad is not None}})

    overrides = ["data.manifest={manifest}", f"data.batch_size={{batch_size}}", "data.crop_seconds=0.5",
                 "model.text=small_tiny", "model.freeze_text=false", "model.embed_dim=32", "model.max_seconds=0.5",
                 "trainer.max_steps=2", "trainer.accelerator=cpu", f"trainer.devices={{devices}}",
                 "trainer.strategy=" + ("ddp" if devices > 1 else "auto"), "trainer.progress_bar=false",
                 "trainer.log_every_n_steps=1"]
    probe = Probe()
    metrics = clap.train(clap.load(None, overrides), out, callbacks=[probe])
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    torch.save({{"ids": probe.ids, "grads": probe.grads, "steps": metrics["steps"], "world": world}},
               os.path.join(record, f"rank{{rank}}.pt"))
"""


def _corpus(root):
    rng = np.random.default_rng(0)
    rows = []
    for label, f in LABELS.items():
        for k in range(2):
            t = np.arange(int(SR * rng.uniform(0.6, 1.0))) / SR
            path = root / f"{label}_{k}.wav"
            sf.write(path, (0.5 * np.sin(2 * np.pi * f * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32), SR)
            rows.append({"id": f"{label}{k}", "audio": str(path), "duration": t.size / SR, "sr": SR,
                         "label": label, "captions": [f"a {label}", f"the {label} sound"]})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl", [r["id"] for r in rows]


def _run(script, devices, batch_size, out, record):
    record.mkdir()
    proc = subprocess.run([sys.executable, str(script), str(devices), str(batch_size), str(out), str(record)],
                          capture_output=True, text=True, timeout=600, cwd=script.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [torch.load(record / f"rank{r}.pt", weights_only=False) for r in range(devices)]


@pytest.mark.slow
def test_ddp_two_cpu_processes_shard_the_epoch_and_match_the_global_batch(tmp_path):
    manifest, ids = _corpus(tmp_path)
    script = tmp_path / "run_clap.py"
    script.write_text(textwrap.dedent(SCRIPT.format(manifest=manifest)))
    r0, r1 = _run(script, 2, 4, tmp_path / "ddp", tmp_path / "rec_ddp")
    (single,) = _run(script, 1, 8, tmp_path / "single", tmp_path / "rec_single")
    assert r0["world"] == r1["world"] == 2 and r0["steps"] == r1["steps"] == single["steps"] == 2
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()
    # data: disjoint per step, union = the single-process global batch; 2 steps = the whole epoch
    for a, b, g in zip(r0["ids"], r1["ids"], single["ids"]):
        assert len(a) == len(b) == 4 and not set(a) & set(b) and sorted(a + b) == sorted(g)
    assert sorted(i for step in r0["ids"] + r1["ids"] for i in step) == sorted(ids)
    # the first step's all-reduced gradient equals the single-process gradient on the global batch
    ddp, ref = r0["grads"][0], single["grads"][0]
    assert ddp.keys() == ref.keys() and len(ref) > 10
    for name in ref:
        torch.testing.assert_close(ddp[name], ref[name], rtol=1e-4, atol=1e-6, msg=name)
    for name in ref:                                  # both ranks hold the same (averaged) gradient
        torch.testing.assert_close(r1["grads"][0][name], ddp[name], rtol=0, atol=1e-7)
