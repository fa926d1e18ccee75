"""``trainer.strategy=ddp trainer.devices=2`` on CPU (gloo): two processes train one tiny CLAP.

Lightning's DDP launcher re-runs the launching script for rank 1, so the run lives in a small
script file executed in a subprocess (not inside the pytest process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def _corpus(root):
    rng = np.random.default_rng(0)
    rows = []
    for label, f in (("hum", 150.0), ("whistle", 2500.0), ("beep", 800.0), ("buzz", 400.0)):
        for k in range(4):
            t = np.arange(int(SR * rng.uniform(0.6, 1.0))) / SR
            path = root / f"{label}_{k}.wav"
            sf.write(path, (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32), SR)
            rows.append({"id": f"{label}{k}", "audio": str(path), "duration": t.size / SR, "sr": SR,
                         "label": label, "captions": [f"a {label}"]})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl"


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    manifest = _corpus(tmp_path)
    out = tmp_path / "run"
    script = tmp_path / "run_ddp.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, torch
        torch.set_num_threads(1)
        from avsuite.recipes import clap
        cfg = clap.load(None, ["data.manifest={manifest}", "data.batch_size=4", "data.max_seconds=1.0",
                               "model.text=small_tiny", "model.freeze_text=false", "model.embed_dim=32",
                               "model.max_seconds=1.0", "trainer.max_steps=4", "trainer.accelerator=cpu",
                               "trainer.devices=2", "trainer.strategy=ddp", "trainer.progress_bar=false",
                               "trainer.log_every_n_steps=1"])
        metrics = clap.train(cfg, "{out}")
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        with open(os.path.join("{tmp_path}", f"rank{{rank}}.json"), "w") as fh:
            json.dump({{"steps": metrics["steps"], "world": int(torch.distributed.get_world_size())
                       if torch.distributed.is_initialized() else 1}}, fh)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["steps"] == 4 for r in ranks)
    assert all(r["world"] == 2 for r in ranks)
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "metrics.json").is_file()
