"""ctc_ot on the one data layer and engine: exact resume after kill -9, and rank sharding under DDP.

- A real ``avsuite train ctc_ot`` run (dropout + SpecAugment on, so the global RNG matters) is
  SIGKILLed at a random step mid-epoch and resumed with ``--resume``: every tensor of its
  ``model.safetensors`` equals the uninterrupted run's, bit for bit.
- 2 CPU processes (gloo) read the recipe's training stream with their rank: their batches are
  disjoint, their union is the single-process epoch with ``batch_size * 2``, and a DDP step's
  gradients equal the single-process gradients on the global batch. Checked with the CTC loss
  (``loss.w_ot=0``): the OT term is not separable over items (its Sinkhorn eps ladder starts at
  the whole batch's diameter, as GeomLoss), so with ``w_ot > 0`` the two differ by design.
- ``trainer.strategy=ddp trainer.devices=2`` through the CLI trains and exports a model.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.integration.kill_resume import kill_and_resume

pytestmark = pytest.mark.slow

WORDS = ["yes", "no", "one", "two", "press", "star", "pound"]


def _tone_speech(text: str) -> np.ndarray:
    """One 60 ms tone per character (a character-specific pitch)."""
    t = np.arange(960) / 16000
    return np.concatenate([0.3 * np.sin(2 * np.pi * (200 + 15 * (ord(c) % 64)) * t) for c in text]).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    import soundfile as sf

    root = tmp_path_factory.mktemp("spine")
    rng = np.random.default_rng(3)
    rows = []
    for i in range(26):
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))
        wave = _tone_speech(text)
        sf.write(root / f"{i}.wav", wave, 16000)
        rows.append({"id": f"u{i:02d}", "audio": f"{i}.wav", "text": text, "duration": wave.size / 16000,
                     "split": "train" if i < 22 else "valid"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl"


def _overrides(manifest: Path, *extra: str) -> list[str]:
    return [f"data.manifest={manifest}", "data.batch_size=4", "model.arch=transformer", "model.dropout=0.1",
            "task.spec_augment=true", "trainer.accelerator=cpu", "trainer.progress_bar=false",
            "trainer.log_every_n_steps=1", "optim.warmup_steps=2", *extra]


def _bitwise_equal_weights(a: Path, b: Path) -> bool:
    """Same tensor names and the same bytes in every tensor. (Not the file bytes: safetensors writes
    its metadata map in a per-process random order.)"""
    from safetensors.torch import load_file

    x, y = (load_file(str(d / "model" / "model.safetensors")) for d in (a, b))
    return x.keys() == y.keys() and all(x[k].numpy().tobytes() == y[k].numpy().tobytes() for k in x)


def test_kill_9_mid_epoch_then_resume_equals_uninterrupted(corpus, tmp_path):
    # 22 train rows / 4 = 6 batches per epoch: 14 steps cross two epoch boundaries
    kill_step = random.randint(2, 9)
    args = ["train", "ctc_ot", *_overrides(corpus, "trainer.max_steps=14", "trainer.checkpoint_every_n_steps=1",
                                           "trainer.val_every_n_steps=5")]
    killed, full, step = kill_and_resume(args, tmp_path, kill_step=kill_step)
    assert step >= kill_step and step < 14, step
    assert _bitwise_equal_weights(killed, full), f"killed at step {step} (kill_step {kill_step}): weights differ"
    assert json.loads((killed / "metrics.json").read_text())["steps"] == 14


# ----------------------------------------------------------------------------- 2 processes
def _setup(manifest: str, batch_size: int):
    """The recipe's own pieces: config, rows, tokenizers, model (seeded), loader."""
    from avsuite.config import load_config
    from avsuite.recipes import ctc_ot
    from avsuite.recipes.ctc_ot_data import split_rows

    cfg = load_config(ctc_ot.Config, None, [f"data.manifest={manifest}", f"data.batch_size={batch_size}",
                                            "model.arch=transformer", "model.dropout=0.0", "task.spec_augment=false",
                                            "task.tokenizer=char", "loss.w_ot=0"])
    rows, idx = split_rows(manifest, "train")
    src, tgt = ctc_ot._tokenizers(cfg, rows, idx, None)
    torch.manual_seed(0)
    model, _ = ctc_ot._build(cfg, src, tgt, None)
    return cfg, rows, idx, model, ctc_ot.speech_loader(cfg, src, tgt)


def _epoch_and_grads(manifest: str, batch_size: int, rank: int, world: int) -> dict:
    """This rank's epoch-0 batch ids and the parameter gradients of its first batch (DDP when world > 1)."""
    from avsuite.recipes import ctc_ot

    cfg, rows, idx, model, loader = _setup(manifest, batch_size)
    reader = ctc_ot.train_reader(cfg, rows, idx, loader, rank=rank, world_size=world)
    batches = list(reader)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    module = ctc_ot.CTCOTModule(net, cfg)
    module.losses(batches[0], train=True)["loss"].backward()
    return {"ids": [b["ids"] for b in batches],
            "grads": {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}}


def _worker(rank: int, world: int, port: int, manifest: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.save(_epoch_and_grads(manifest, 4, rank, world), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_shard_the_epoch_and_a_ddp_step_equals_the_global_batch(corpus, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, _free_port(), str(corpus), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = _epoch_and_grads(str(corpus), 8, 0, 1)

    seen = [[i for b in r["ids"] for i in b] for r in ranks]
    assert not set(seen[0]) & set(seen[1]) and len(set(seen[0])) == len(seen[0])
    assert sorted(seen[0] + seen[1]) == sorted(i for b in single["ids"] for i in b)
    assert len(ranks[0]["ids"]) == len(ranks[1]["ids"]) == len(single["ids"])
    for step, glob in enumerate(single["ids"]):       # step k of each rank = its slice of global batch k
        assert sorted(ranks[0]["ids"][step] + ranks[1]["ids"][step]) == sorted(glob)

    want = single["grads"]
    assert set(want) == set(ranks[0]["grads"]) and len(want) > 10 and not any(k.startswith("text.") for k in want)
    for name, g in want.items():
        torch.testing.assert_close(ranks[0]["grads"][name], ranks[1]["grads"][name], rtol=0, atol=0)
        err = float((ranks[0]["grads"][name] - g).norm())   # float32 round-off only (padding differs)
        assert err <= 1e-4 * float(g.norm()) + 1e-7, (name, err, float(g.norm()))


def test_cli_ddp_two_cpu_processes_train_and_export(corpus, tmp_path):
    cli = Path(sys.executable).parent / "avsuite"
    out = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, str(cli), "train", "ctc_ot",
                           *_overrides(corpus, "trainer.max_steps=3", "trainer.strategy=ddp", "trainer.devices=2",
                                       "trainer.val_every_n_steps=3"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and (out / "model" / "model.safetensors").is_file()
    # 3 steps = one epoch of global batches of 8, 8, 6 rows; rank 0 (the writer) loaded its half: 4 + 4 + 3
    assert metrics["n_train"] == 11
