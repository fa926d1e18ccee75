"""Zero-shot / retrieval inference: per-file results or clear errors for bad input, never a traceback."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.checkpoint import save_model_dir
from avsuite.inference.retrieve import rank_clips, run_retrieve
from avsuite.inference.zeroshot import MAX_SECONDS, classify_files, parse_labels, run_zeroshot
from avsuite.models.clap import ClapModel, ClapModelConfig, tiny_frontend
from avsuite.models.registry import load_model

SR = 16000
LABELS = ["dog", "rain", "trumpet"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = ClapModel(ClapModelConfig(audio="cnn14_tiny", text="small_tiny", freeze_text=False, embed_dim=32,
                                      max_seconds=2.0), tiny_frontend()).eval()
    d = tmp_path_factory.mktemp("clap") / "model"
    save_model_dir(d, model.state_dict(), model.export_config())
    return d


def _tone(seconds: float, sr: int = SR, f: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    files = {}

    def wav(name, data, sr=SR, subtype="PCM_16"):
        files[name] = d / f"{name}.wav"
        sf.write(files[name], data, sr, subtype=subtype)

    wav("good", _tone(1.0))
    wav("silent", np.zeros(SR, np.float32))
    wav("short", _tone(0.05))
    wav("stereo", np.stack([_tone(1.0), _tone(1.0, f=880)], axis=1))
    wav("pcm8", _tone(1.0), subtype="PCM_U8")
    wav("pcm24", _tone(1.0, sr=44100), sr=44100, subtype="PCM_24")
    wav("float", _tone(1.0, sr=8000), sr=8000, subtype="FLOAT")
    wav("long", np.zeros(int((MAX_SECONDS + 5) * 1000), np.int16), sr=1000)
    files["corrupt"] = d / "corrupt.wav"
    files["corrupt"].write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(256)) * 3)
    files["text"] = d / "notes.txt"
    files["text"].write_text("this is not audio\n" * 50)
    files["empty"] = d / "empty.ogg"
    files["empty"].write_bytes(b"")
    files["missing"] = d / "missing.wav"
    return files


def test_every_bad_input_gets_one_clear_line(model_dir, bad_files):
    order = ["good", "silent", "short", "stereo", "pcm8", "corrupt", "pcm24", "float", "long", "text",
             "empty", "missing"]
    buf = io.StringIO()
    status = run_zeroshot(model_dir, ",".join(LABELS), [bad_files[k] for k in order], as_json=True, top_k=3,
                          stream=buf, batch_size=4)
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [x["file"] for x in lines] == [str(bad_files[k]) for k in order]
    by = dict(zip(order, lines))
    for ok in ("good", "stereo", "pcm8", "pcm24", "float"):
        assert "error" not in by[ok], by[ok]
        assert sorted(by[ok]["labels"]) == sorted(LABELS)
        assert by[ok]["scores"] == sorted(by[ok]["scores"], reverse=True)
        assert abs(sum(by[ok]["scores"]) - 1.0) < 1e-4          # softmax over all 3 labels
    expect = {"silent": ("silent",), "short": ("too short",), "long": ("too long",), "corrupt": ("corrupt",),
              "text": ("not an audio", "unsupported"), "empty": ("empty",), "missing": ("not found",)}
    for key, words in expect.items():
        assert any(w in by[key]["error"] for w in words), (key, by[key])
    assert status == 1


def test_batched_equals_one_by_one(model_dir, bad_files):
    model = load_model(model_dir)
    files = [bad_files[k] for k in ("good", "stereo", "pcm24", "float")]
    together = classify_files(model, LABELS, files, batch_size=4)
    alone = [classify_files(model, LABELS, [f], batch_size=1)[0] for f in files]
    for a, b in zip(together, alone):
        assert a["labels"] == b["labels"]
        assert np.allclose(a["scores"], b["scores"], atol=1e-4)


def test_plain_text_output_and_top_k(model_dir, bad_files):
    buf = io.StringIO()
    assert run_zeroshot(model_dir, LABELS, [bad_files["good"]], top_k=1, stream=buf) == 0
    line = buf.getvalue().strip()
    assert line.startswith(f"{bad_files['good']}: ") and line.count("(") == 1


def test_label_errors():
    assert parse_labels(" dog, rain ,dog,, ") == ["dog", "rain"]
    with pytest.raises(ValueError, match="at least two"):
        parse_labels("dog")


def test_retrieve_text_and_audio_queries(model_dir, bad_files, tmp_path):
    rows = [{"id": k, "audio": str(bad_files[k]), "label": k, "captions": [f"clip {k}"]}
            for k in ("good", "stereo", "pcm24", "corrupt")]
    model = load_model(model_dir)
    hits, skipped = rank_clips(model, rows, "a trumpet", top_k=10)
    assert skipped == 1 and len(hits) == 3
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    hits, _ = rank_clips(model, rows, str(bad_files["good"]), top_k=1)
    assert hits[0]["id"] == "good" and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)   # itself
    with pytest.raises(ValueError, match="silent"):
        rank_clips(model, rows, str(bad_files["silent"]))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({**r, "duration": 1.0, "sr": SR}) + "\n" for r in rows))
    buf = io.StringIO()
    assert run_retrieve(model_dir, manifest, "rain", top_k=2, as_json=True, stream=buf) == 0
    out = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert out[0] == {"skipped": 1} and len(out) == 3


def test_an_index_embeds_once_and_ranks_like_rows(model_dir, bad_files, monkeypatch):
    import avsuite.eval.zeroshot as ez
    from avsuite.inference.retrieve import index_clips

    rows = [{"id": k, "audio": str(bad_files[k]), "label": k, "captions": [f"clip {k}"]}
            for k in ("good", "stereo", "pcm24", "corrupt")]
    model = load_model(model_dir)
    real, calls = ez.embed_rows, []
    monkeypatch.setattr(ez, "embed_rows", lambda *a, **k: calls.append(1) or real(*a, **k))
    index = index_clips(model, rows)
    assert index.skipped == 1 and [r["id"] for r in index.rows] == ["good", "stereo", "pcm24"]
    for query in ("a trumpet", "rain", str(bad_files["good"])):
        expected = rank_clips(model, rows, query, top_k=3)           # embeds the rows again
        assert rank_clips(model, index, query, top_k=3) == expected  # same hits from the index
    assert len(calls) == 1 + 3                                       # the index itself never re-embeds
    with pytest.raises(ValueError, match="no decodable clips"):
        index_clips(model, rows[3:])
