"""Tiny ctc_ot pre-training -> ST fine-tuning -> evaluation end to end, with bad rows in the data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from avsuite.config import load_config
from avsuite.recipes import ctc_ot

WORDS = {"yes": "oui", "no": "non", "one": "un", "two": "deux", "press": "appuyez"}


def _tone_speech(text: str) -> np.ndarray:
    """One 60 ms tone per character (a character-specific pitch): learnable, deterministic 'speech'."""
    t = np.arange(960) / 16000
    return np.concatenate([0.3 * np.sin(2 * np.pi * (200 + 15 * (ord(c) % 64)) * t) for c in text]).astype(np.float32)


@pytest.fixture()
def corpus(tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(0)
    rows = []
    for i in range(20):
        ws = list(rng.choice(list(WORDS), size=int(rng.integers(1, 3))))
        text = " ".join(ws)
        sf.write(tmp_path / f"{i}.wav", _tone_speech(text), 16000)
        rows.append({"id": f"ok{i}", "audio": f"{i}.wav", "text": text.capitalize() + ".",
                     "translation": {"fr": " ".join(WORDS[w] for w in ws)},
                     "split": "train" if i < 14 else ("valid" if i < 17 else "test")})
    sf.write(tmp_path / "short.wav", np.zeros(100, np.float32), 16000)
    sf.write(tmp_path / "long.wav", np.zeros(16000 * 5, np.float32), 16000)
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    bad = [("empty", "0.wav", "", "x"), ("annot", "0.wav", "[beep]", "x"), ("oov", "0.wav", "yes zebra", "oui"),
           ("short", "short.wav", "yes", "oui"), ("long", "long.wav", "yes", "oui"),
           ("broken", "broken.wav", "yes", "oui")]
    for rid, audio, text, fr in bad:
        # the tokenizer is trained on the train split, so out-of-vocabulary text shows up in valid
        rows.append({"id": rid, "audio": audio, "text": text, "translation": {"fr": fr},
                     "split": "valid" if rid == "oov" else "train"})
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _cfg(manifest, *extra):
    return load_config(ctc_ot.Config, None, [
        f"data.manifest={manifest}", "data.batch_size=4", "data.max_seconds=3.0", "model.arch=transformer",
        "trainer.max_steps=4", "trainer.val_every_n_steps=2", "trainer.accelerator=cpu",
        "trainer.progress_bar=false", "trainer.checkpoint_every_n_steps=2", "optim.warmup_steps=2",
        "decode.beam=2", "decode.max_len=20", *extra])


def _finite(metrics):
    return all(math.isfinite(v) for v in metrics.values())


def test_pretrain_finetune_eval_end_to_end(corpus, tmp_path):
    from avsuite.models.registry import load_model

    pre = ctc_ot.train(_cfg(corpus, "loss.w_ot=0.1", "task.average_last=2"), tmp_path / "pre")
    assert _finite(pre) and pre["steps"] == 4 and pre["n_train"] == 14
    # every bad row is skipped and counted, by reason; unreadable audio counted by the shared pipeline
    for reason in ("empty_text", "too_short", "too_long", "unreadable"):
        assert pre[f"skipped_{reason}"] >= 1, reason
    assert pre["valid_skipped_oov"] == 1 and pre["n_valid"] == 3
    assert pre["skipped_empty_text"] == 2
    assert {"wer", "cer", "bleu", "chrf", "test_ctc", "test_ot"} <= set(pre)
    assert (tmp_path / "pre" / "last.ckpt").is_file() and (tmp_path / "pre" / "config.yaml").is_file()

    st = ctc_ot.train(_cfg(corpus, "task.stage=st", f"model.init_from={tmp_path / 'pre' / 'model'}"), tmp_path / "st")
    assert _finite(st) and {"wer", "bleu", "chrf", "test_ce"} <= set(st)
    model = load_model(tmp_path / "st" / "model")
    assert model.task == "st" and "ç" not in model.target_tokenizer.symbols

    ev = ctc_ot.evaluate(tmp_path / "st" / "model", corpus, tmp_path / "ev")
    assert _finite(ev) and ev["n_eval"] == 3
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["bleu"] == pytest.approx(ev["bleu"])
    assert len((tmp_path / "ev" / "hypotheses.jsonl").read_text().splitlines()) == 3

    # beam_lm: the pre-trained model dir holds the distinct training transcripts its character LM learns from
    from avsuite.data.text import normalize_transcript
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    train_texts = {normalize_transcript(r["text"]) for r in rows if r["split"] == "train"} - {""}
    assert (tmp_path / "pre" / "model" / "lm_text.txt").read_text().splitlines() == sorted(train_texts)
    lm_ev = ctc_ot.evaluate(tmp_path / "pre" / "model", corpus, tmp_path / "ev_lm",
                            ["decode.method=beam_lm", "decode.beam=3", "decode.lm_order=3"])
    assert _finite(lm_ev) and lm_ev["n_eval"] == 3
    with pytest.raises(ValueError, match="beam_lm"):          # a fine-tuned model has no CTC LM
        ctc_ot.evaluate(tmp_path / "st" / "model", corpus, tmp_path / "ev_bad", ["decode.method=beam_lm"])
    with pytest.raises(ValueError, match="decode"):
        ctc_ot.evaluate(tmp_path / "pre" / "model", corpus, tmp_path / "ev_bad", ["optim.lr=1"])
    with pytest.raises(ValueError, match="lm_wieght"):
        ctc_ot.evaluate(tmp_path / "pre" / "model", corpus, tmp_path / "ev_bad", ["decode.lm_wieght=1"])


def test_resume_continues_from_last_ckpt(corpus, tmp_path):
    ctc_ot.train(_cfg(corpus, "trainer.max_steps=2"), tmp_path / "r")
    out = ctc_ot.train(_cfg(corpus, "trainer.max_steps=4"), tmp_path / "r", resume=True)
    assert out["steps"] == 4


def test_strict_mode_names_the_bad_row(corpus, tmp_path):
    from avsuite.audio.io import AudioDecodeError

    # the first bad row met in the (seeded) plan stops the run, named (each reason: tests/unit/test_ctc_ot.py)
    with pytest.raises((ValueError, AudioDecodeError), match="row '(empty|annot|short|long)'|broken.wav|long.wav"):
        ctc_ot.train(_cfg(corpus, "data.strict=true"), tmp_path / "strict")


def test_init_from_a_different_architecture_is_a_clear_error(corpus, tmp_path):
    ctc_ot.train(_cfg(corpus, "trainer.max_steps=1"), tmp_path / "p")
    with pytest.raises(ValueError, match="does not match"):
        ctc_ot.train(_cfg(corpus, "task.stage=asr", "model.arch=conformer",
                          f"model.init_from={tmp_path / 'p' / 'model'}"), tmp_path / "bad")
