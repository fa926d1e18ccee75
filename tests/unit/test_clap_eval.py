"""Clap evaluation plumbing: ESC-50 / UrbanSound8K / folder importers, splits, templates."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.eval.benchmarks import BenchmarkError, load_eval_rows
from avsuite.eval.retrieval import unique_captions
from avsuite.eval.zeroshot import class_embeddings, label_text, zeroshot_eval
from avsuite.recipes.clap_data import class_disjoint_split


def _wav(path, seconds=0.2):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * 8000), np.float32) + 0.1, 8000)


def test_esc50_layout(tmp_path):
    root = tmp_path / "ESC-50-master"
    (root / "meta").mkdir(parents=True)
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for i, (cat, target) in enumerate([("dog", 0), ("rain", 10), ("dog", 0)]):
        name = f"{i + 1}-100{i}-A-{target}.wav"
        _wav(root / "audio" / name)
        lines.append(f"{name},{i + 1},{target},{cat},True,100{i},A")
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    rows = load_eval_rows(root)
    assert [r["label"] for r in rows] == ["dog", "rain", "dog"]
    assert all(r["audio"].startswith(str(root / "audio")) for r in rows)
    assert rows[1]["split"] == "fold2"
    assert rows[0]["captions"] == ["the sound of dog"]


def test_urbansound8k_layout(tmp_path):
    root = tmp_path / "UrbanSound8K"
    (root / "metadata").mkdir(parents=True)
    _wav(root / "audio" / "fold3" / "100-0-0-0.wav")
    _wav(root / "audio" / "fold1" / "101-3-0-0.wav")
    (root / "metadata" / "UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "100-0-0-0.wav,100,0.0,0.2,1,3,0,air_conditioner\n"
        "101-3-0-0.wav,101,0.0,0.2,1,1,3,dog_bark\n")
    rows = load_eval_rows(root)
    assert [r["label"] for r in rows] == ["air_conditioner", "dog_bark"]
    assert rows[0]["audio"] == str(root / "audio" / "fold3" / "100-0-0-0.wav")
    assert label_text("dog_bark") == "dog bark"


def test_class_folders_and_bad_paths(tmp_path):
    _wav(tmp_path / "data" / "cat" / "a.wav")
    _wav(tmp_path / "data" / "cow" / "sub" / "b.flac")
    (tmp_path / "data" / "cow" / "notes.txt").write_text("x")
    rows = load_eval_rows(tmp_path / "data")
    assert sorted((r["label"], r["id"]) for r in rows) == [("cat", "cat/a"), ("cow", "cow/sub/b")]
    with pytest.raises(BenchmarkError, match="not found"):
        load_eval_rows(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchmarkError, match="class-per-folder"):
        load_eval_rows(tmp_path / "empty")


def test_class_disjoint_split():
    rows = [{"id": f"{lab}{k}", "label": lab} for lab in "abcdefgh" for k in range(3)] + [{"id": "z0", "label": "z"}]
    train, test = class_disjoint_split(rows, 0.25, seed=0)
    tr, te = {r["label"] for r in train}, {r["label"] for r in test}
    assert not tr & te and len(te) == 2 and "z" in tr       # single-clip labels always train
    assert len(train) + len(test) == len(rows)
    assert class_disjoint_split(rows, 0.25, seed=0) == (train, test)


def test_unique_captions_drop_shared_ones():
    keep, caps = unique_captions([["a dog", "x"], ["a dog"], ["rain", "rain"], []])
    assert keep == [0, 2] and caps == [["x"], ["rain"]]


class _FakeText:
    """encode_text that maps each distinct word to a fixed direction (for exact ensemble checks)."""

    def encode_text(self, texts):
        out = []
        for t in texts:
            v = torch.zeros(4)
            v[0 if "dog" in t else 1] = 1.0
            v[2 if t.startswith("the") else 3] = 0.5
            out.append(v / v.norm())
        return torch.stack(out)


def test_template_ensemble_and_zeroshot_numbers():
    fake = _FakeText()
    emb = class_embeddings(fake, ["dog", "rain"], ["{}", "the {}"])
    expect = torch.nn.functional.normalize(fake.encode_text(["dog"]) + fake.encode_text(["the dog"]), dim=-1)
    assert torch.allclose(emb[0], expect[0])
    audio = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [1.0, 0, 0, 0]])
    metrics, cm, classes = zeroshot_eval(fake, audio, ["dog", "rain", "rain"], templates=["{}", "the {}"])
    assert classes == ["dog", "rain"]
    assert metrics["zeroshot_top1"] == pytest.approx(2 / 3)          # the third clip is misclassified
    assert metrics["zeroshot_chance"] == 0.5
    assert cm.tolist() == [[1, 0], [1, 1]]
    with pytest.raises(ValueError, match="must contain"):
        class_embeddings(fake, ["dog"], ["no slot"])
