"""End to end: tiny CLAP trains on a trivially separable synthetic set and beats chance at zero-shot;
``--resume`` continues; evaluate() reads an ESC-50-style folder; CompA/TeminAL stages chain."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.recipes import clap

SR = 16000
#: six synthetic "sound events" that a tiny CNN separates in a few dozen steps
KINDS = ("low hum", "high whistle", "white noise", "rising chirp", "clicks", "beeping")


def synth(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f = rng.uniform(0.95, 1.05)
    if kind == "low hum":
        x = np.sin(2 * np.pi * 120 * f * t)
    elif kind == "high whistle":
        x = np.sin(2 * np.pi * 3000 * f * t)
    elif kind == "white noise":
        x = rng.normal(size=t.size)
    elif kind == "rising chirp":
        x = np.sin(2 * np.pi * (300 + 2500 * t / t[-1]) * t)
    elif kind == "clicks":
        x = np.zeros(t.size)
        x[:: int(SR / 12)] = 1.0
    else:
        x = np.sin(2 * np.pi * 900 * f * t) * (np.sin(2 * np.pi * 4 * t) > 0)
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.3, 0.8)
    return (x + rng.normal(size=t.size) * 0.005).astype(np.float32)


def make_corpus(root, n_per_class: int, seed: int, name: str):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in KINDS:
        for k in range(n_per_class):
            path = root / f"{kind.replace(' ', '_')}_{k}.wav"
            dur = rng.uniform(0.8, 1.6)
            sf.write(path, synth(kind, dur, rng), SR)
            rows.append({"id": f"{name}-{kind}-{k}", "audio": str(path), "duration": dur, "sr": SR, "label": kind,
                         "captions": [f"{kind}", f"the sound of {kind}"]})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def tiny_cfg(train, valid=None, **over) -> clap.Config:
    ov = [f"data.manifest={train}", "data.batch_size=6", "data.crop_seconds=1.5", "model.audio=cnn14_tiny",
          "model.text=small_tiny", "model.freeze_text=false", "model.embed_dim=64", "model.max_seconds=1.5",
          "trainer.max_steps=60", "trainer.accelerator=cpu", "trainer.progress_bar=false",
          "trainer.checkpoint_every_n_steps=20", "optim.lr=1e-3", "optim.warmup_steps=5"]
    if valid:
        ov.append(f"data.valid_manifest={valid}")
    ov += [f"{k}={v}" for k, v in over.items()]
    return clap.load(None, ov)


@pytest.mark.slow
def test_tiny_train_beats_chance_and_resumes(tmp_path):
    torch.set_num_threads(2)
    train = make_corpus(tmp_path / "train", 6, seed=0, name="tr")
    valid = make_corpus(tmp_path / "valid", 3, seed=1, name="va")          # new clips, same classes
    out = tmp_path / "run"
    metrics = clap.train(tiny_cfg(train, valid), out)
    for name in ("config.yaml", "last.ckpt", "metrics.json", "loss_curve.png", "model/model.safetensors",
                 "valid/confusion.png"):
        assert (out / name).is_file(), name
    assert metrics["steps"] == 60
    chance = metrics["valid_zeroshot_chance"]
    assert chance == pytest.approx(1 / 6)
    assert metrics["valid_zeroshot_top1"] >= 0.6 > chance + 0.3, metrics
    assert json.loads((out / "metrics.json").read_text())["valid_zeroshot_top1"] == metrics["valid_zeroshot_top1"]
    # resume continues from last.ckpt to the new max_steps
    more = clap.train(tiny_cfg(train, **{"trainer.max_steps": 70}), out, resume=True)
    assert more["steps"] == 70
    # the exported model dir evaluates on its own (deterministic eval: same numbers)
    ev = clap.evaluate(out / "model", valid, tmp_path / "ev")
    assert ev["zeroshot_top1"] >= 0.6


@pytest.mark.slow
def test_compa_then_teminal_stages_chain(tmp_path):
    torch.set_num_threads(2)
    train = make_corpus(tmp_path / "train", 3, seed=0, name="tr")
    a = clap.train(tiny_cfg(train, **{"compose.mode": "teminal_a", "loss.clap": 0.0, "loss.compa": 1.0,
                                      "trainer.max_steps": 6, "data.crop_seconds": 3.0}), tmp_path / "a")
    b = clap.train(tiny_cfg(train, **{"compose.mode": "teminal_b", "loss.compa": 1.0, "trainer.max_steps": 6,
                                      "data.crop_seconds": 3.0, "init_from": str(tmp_path / "a" / "model")}),
                   tmp_path / "b")
    assert a["steps"] == 6 and b["steps"] == 6
    assert np.isfinite(a["train_loss"]) and np.isfinite(b["train_loss"])
    with pytest.raises(RuntimeError, match="architecture differs"):
        clap.train(tiny_cfg(train, **{"model.embed_dim": 32, "init_from": str(tmp_path / "a" / "model")}),
                   tmp_path / "c")
