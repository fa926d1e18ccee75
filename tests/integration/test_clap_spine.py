"""The clap recipe on the one data layer, end to end with the real CLI and config files:

- kill -9 mid-epoch, then ``--resume``: the final model equals an uninterrupted run bit for bit
  (plain CLAP and CompA compositions; SpecAugment, dropout and the model's crop draw from the
  global RNG saved in last.ckpt), and the loss history (loss_curve.png, train_loss) survives;
- ``configs/clap/base.yaml`` streams: its data section reads batches of a 200 000-row manifest
  with bounded memory (no model is built): reading more batches does not grow RSS, and the total
  (row index, plan, the batches that base.yaml's 8 parallel calls + prefetch keep in flight) is a
  small fraction of what preloading the clips would take.
"""

from __future__ import annotations

import gc
import json
import random
from pathlib import Path

import numpy as np
import pytest

from tests.integration.kill_resume import kill_and_resume, same_weights
from tests.integration.test_clap_train import make_corpus

ROOT = Path(__file__).resolve().parents[2]


def _args(manifest: Path, *extra: str) -> list[str]:
    return ["train", "clap", "--config", str(ROOT / "configs/clap/tiny.yaml"), f"data.manifest={manifest}",
            "data.batch_size=4", "data.crop_seconds=1.0", "model.text=small_tiny", "model.freeze_text=false",
            "model.text_projection=mlp", "model.embed_dim=32", "model.max_seconds=0.8", "trainer.max_steps=14",
            "trainer.checkpoint_every_n_steps=1", "trainer.progress_bar=false", "trainer.log_every_n_steps=1",
            "optim.warmup_steps=2", "max_minutes=null", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["clap", "compa"])
def test_kill_resume_equals_uninterrupted(tmp_path, mode):
    manifest = make_corpus(tmp_path / "corpus", 3, seed=0, name="kr")    # 18 clips: 4 batches per epoch
    extra = ["compose.mode=compa", "compose.prob=0.5", "loss.compa=1.0", "loss.clap=0.0"] if mode == "compa" else []
    kill_step = random.Random().randint(2, 7)                             # any step must do
    killed, full, step = kill_and_resume(_args(manifest, *extra), tmp_path, kill_step)
    assert step >= kill_step
    assert same_weights(killed, full), f"{mode}: resumed from step {step} differs from the uninterrupted run"
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (killed, full))
    assert a["steps"] == b["steps"] == 14
    assert a["train_loss"] == b["train_loss"]              # the loss history came back from last.ckpt
    assert (killed / "loss_curve.png").is_file()


@pytest.mark.slow
def test_base_config_streams_with_bounded_memory(tmp_path, real_clips):
    import psutil
    import soundfile as sf

    from avsuite.recipes import clap, clap_data

    files = real_clips[:4]
    durs = [sf.info(f).duration for f in files]
    n = 200_000
    manifest = tmp_path / "big.jsonl"
    with open(manifest, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"r{i}", "audio": files[i % 4], "duration": durs[i % 4],
                                 "captions": [f"clip number {i}"]}) + "\n")
    cfg = clap.load(ROOT / "configs/clap/base.yaml", [f"data.manifest={manifest}"])
    assert cfg.data.batch_size == 64 and cfg.data.sample_rate == 48000
    gc.collect()
    proc = psutil.Process()
    before = proc.memory_info().rss
    reader = clap_data.datamodule(cfg.data, cfg.compose).train_reader()
    assert len(reader) == n // 64
    it = iter(reader)
    shapes = [(b.audio.shape[0], int(b.lengths.max())) for b in (next(it) for _ in range(4))]
    warm = proc.memory_info().rss                     # index + plan + batches in flight (8 parallel + 2)
    shapes += [(b.audio.shape[0], int(b.lengths.max())) for b in (next(it) for _ in range(36))]
    steady = proc.memory_info().rss - warm
    grown = proc.memory_info().rss - before
    assert all(size == 64 for size, _ in shapes)
    assert max(t for _, t in shapes) <= round(max(durs) * 48000) + 1
    preload = sum(durs[i % 4] for i in range(n)) * 48000 * 4            # bytes to hold every clip (~30 GB)
    held = 36 * 64 * np.mean(durs) * 48000 * 4             # what keeping those 36 batches would take (~350 MB)
    assert steady < held / 3, f"RSS grew by {steady / 1e6:.0f} MB over 36 more batches: not streaming"
    assert grown < 400e6, f"RSS grew by {grown / 1e6:.0f} MB"
    assert grown < preload / 50, (grown, preload)
    del it


def test_resume_with_another_architecture_is_one_clear_error(tmp_path):
    """Issue 11: ``--resume`` with a config that builds a different model used to end in a
    state-dict traceback from inside Lightning; now it is one error line and exit 2."""
    import subprocess
    import sys

    manifest = make_corpus(tmp_path / "corpus", 2, seed=0, name="arch")
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "avsuite.cli"]
    first = subprocess.run(cli + _args(manifest, "trainer.max_steps=2", "--out", str(out)), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run(cli + _args(manifest, "trainer.max_steps=4", "model.embed_dim=48", "--out", str(out),
                                       "--resume"), capture_output=True, text=True)
    assert again.returncode == 2, again.stderr[-2000:]
    lines = [ln for ln in again.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("avsuite: error: --resume:") and "different model" in lines[-1], again.stderr[-2000:]
    assert "Traceback" not in again.stderr
    same = subprocess.run(cli + _args(manifest, "trainer.max_steps=4", "--out", str(out), "--resume"),
                          capture_output=True, text=True)
    assert same.returncode == 0, same.stderr[-2000:]                   # the right config still resumes
