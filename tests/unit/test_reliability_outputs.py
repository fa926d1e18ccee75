"""Issue 11: numbers that leave the library are finite, one line per file stays one line.

A float wav whose samples are huge (1e20: finite, but the power spectrum overflows float32) used to
give ``"scores": [NaN, NaN]`` with exit 0 (and NaN is not JSON). Now the file gets an error line.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.checkpoint import save_model_dir
from avsuite.eval.zeroshot import NONFINITE, embed_rows
from avsuite.inference.retrieve import rank_clips, run_retrieve
from avsuite.inference.zeroshot import classify_files, display_name, format_result, one_line, run_zeroshot
from avsuite.models.clap import ClapModel, ClapModelConfig, tiny_frontend
from avsuite.models.registry import load_model

SR = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = ClapModel(ClapModelConfig(audio="cnn14_tiny", text="small_tiny", freeze_text=False, embed_dim=32,
                                      max_seconds=2.0), tiny_frontend()).eval()
    d = tmp_path_factory.mktemp("clap") / "model"
    save_model_dir(d, model.state_dict(), model.export_config())
    return d


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = {}
    for name, amp in (("good", 0.5), ("huge", 1e20), ("near_max", 3e38)):
        out[name] = d / f"{name}.wav"
        sf.write(out[name], (amp * tone).astype(np.float32), SR, subtype="FLOAT")
    return out


def test_implausible_amplitudes_are_refused_at_decode(model_dir, files):
    res = classify_files(load_model(model_dir), ["dog", "rain"], [files["good"], files["huge"], files["near_max"]])
    assert "scores" in res[0]
    assert [r["error"].split(":")[0] for r in res[1:]] == ["implausible amplitude"] * 2, res


@pytest.fixture
def no_amplitude_limit(monkeypatch):
    """Let the 1e20 files through the decoder to exercise the second line of defence."""
    import avsuite.audio.io as aio

    monkeypatch.setattr(aio, "MAX_FLOAT_PEAK", float("inf"))


def test_huge_float_samples_give_an_error_line_not_nan_scores(model_dir, files, no_amplitude_limit):
    model = load_model(model_dir)
    order = [files["good"], files["huge"], files["near_max"]]
    res = classify_files(model, ["dog", "rain"], order)
    assert [r["file"] for r in res] == [str(f) for f in order]
    assert "scores" in res[0] and all(np.isfinite(res[0]["scores"]))
    for r in res[1:]:
        assert "scores" not in r and NONFINITE in r["error"] and "far above full scale" in r["error"], r

    buf = io.StringIO()
    assert run_zeroshot(model_dir, "dog,rain", order, as_json=True, stream=buf) == 1   # some file failed
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]               # valid JSON, no NaN
    assert len(lines) == 3 and "labels" in lines[0] and "error" in lines[1] and "error" in lines[2]


def test_retrieval_skips_and_counts_a_nonfinite_clip(model_dir, files, no_amplitude_limit):
    model = load_model(model_dir)
    rows = [{"id": "good", "audio": str(files["good"])}, {"id": "huge", "audio": str(files["huge"])}]
    emb, kept, errors = embed_rows(model, rows)
    assert [r["id"] for r in kept] == ["good"] and emb.shape[0] == 1 and torch.isfinite(emb).all()
    assert [e["id"] for e in errors] == ["huge"] and NONFINITE in errors[0]["error"]
    hits, skipped = rank_clips(model, rows, "a dog", 5)
    assert skipped == 1 and [h["id"] for h in hits] == ["good"]
    with pytest.raises(ValueError, match="not finite"):                   # an audio query that overflows
        rank_clips(model, rows, str(files["huge"]), 5)


def test_plain_text_output_stays_one_line_per_file(model_dir, tmp_path, files):
    weird = tmp_path / "a\nb: c\x1b[31m.wav"
    weird.write_bytes(files["good"].read_bytes())
    buf = io.StringIO()
    run_zeroshot(model_dir, ["dog", "rain"], [weird, tmp_path / "missing\n.wav"], stream=buf)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(json.dumps(str(weird)) + ": ")            # quoted and escaped, parseable
    assert json.loads(lines[0][: len(json.dumps(str(weird)))]) == str(weird)
    assert "\x1b" not in buf.getvalue() and "ERROR" in lines[1]
    assert display_name("plain/name.wav") == "plain/name.wav"              # ordinary names unchanged
    assert one_line("x\ny\tz") == "x\\ny\\tz"
    assert "\n" not in format_result({"file": "f.wav", "labels": ["a\nb", "c"], "scores": [0.6, 0.4]})


def test_retrieve_plain_text_escapes_ids_and_captions(model_dir, tmp_path, files):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "x\ny", "audio": str(files["good"]), "captions": ["one\ntwo"],
                                    "label": "l"}) + "\n")
    buf = io.StringIO()
    assert run_retrieve(model_dir, manifest, "dog", top_k=1, stream=buf) == 0
    assert len(buf.getvalue().splitlines()) == 1 and "x\\ny" in buf.getvalue()
