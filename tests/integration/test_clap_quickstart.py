"""The quickstart driver end to end on a tiny synthetic 'sounds' manifest (the real corpus build is
tested by the corpora tests; the full CPU run is the documented `avsuite quickstart`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

SR = 16000
LABELS = ["low hum", "high whistle", "white noise", "clicks", "beeping", "rising chirp", "buzz", "drone", "siren",
          "bell", "horn", "flute", "organ", "violin", "cello", "drum", "gong", "rain", "wind", "engine"]


@pytest.mark.slow
def test_quickstart_driver_outputs(tmp_path):
    from avsuite.recipes.clap import run_quickstart as run

    rng = np.random.default_rng(0)
    rows = []
    for li, label in enumerate(LABELS):
        for k in range(3):
            t = np.arange(int(SR * 0.8)) / SR
            x = np.sin(2 * np.pi * (100 + 150 * li) * t) + rng.normal(size=t.size) * 0.02 * li
            path = tmp_path / f"{li}_{k}.wav"
            sf.write(path, (0.4 * x / np.abs(x).max()).astype(np.float32), SR)
            rows.append({"id": f"{li}-{k}", "audio": str(path), "duration": 0.8, "sr": SR, "label": label,
                         "captions": [f"the sound of {label}", f"{label} recording number {k}"]})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "qs"
    m = run(out, manifest=manifest, max_minutes=2.0, max_steps=4,
            overrides=["trainer.progress_bar=false", "data.batch_size=8"])
    for name in ("model/model.safetensors", "metrics.json", "confusion.png", "loss_curve.png", "similarity.png",
                 "data/train.jsonl", "data/unseen.jsonl"):
        assert (out / name).is_file(), name
    train_labels = {json.loads(x)["label"] for x in (out / "data/train.jsonl").read_text().splitlines()}
    unseen_labels = {json.loads(x)["label"] for x in (out / "data/unseen.jsonl").read_text().splitlines()}
    assert unseen_labels and not train_labels & unseen_labels          # class-disjoint
    assert m["zeroshot_chance"] == pytest.approx(1 / len(unseen_labels))
    assert m["train_steps"] == 4
    for key in ("zeroshot_top1", "zeroshot_top5", "r1_a2t", "r1_t2a", "order_group_score", "temporal_text_score"):
        assert key in m and 0.0 <= m[key] <= 1.0, key
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(m)
