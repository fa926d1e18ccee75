"""TTS speech corpus (``speech``): sentence cleaning, Apertium targets, voice/sentence-disjoint splits,
a tiny real build that decodes and rebuilds byte-identically."""

import hashlib
import json
import shutil

import pytest

from avsuite.data.corpora import build, speech_text, speech_tts, tts
from avsuite.data.manifest import read_manifest

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
needs_apertium = pytest.mark.skipif(shutil.which("apertium") is None, reason="apertium not installed")
needs_festival = pytest.mark.skipif(shutil.which("festival") is None or shutil.which("text2wave") is None,
                                    reason="festival not installed")

TINY = dict(max_sentences=6, voices_per_sentence=1, n_espeak=3, families=["kal"], valid_families=[],
            test_families=[], workers=2, progress=False)


def test_clean_sentence_keeps_plain_english_only():
    assert speech_text.clean_sentence("  A red  kangaroo .") == "A red kangaroo."
    assert speech_text.clean_sentence("It\u2019s a \u201cquarter\u201d (coin).") == "It's a quarter coin."
    for bad in ("A US 25 cent piece.", "Too short.", "Use the NATO alphabet now.", "x = y + 1 here",
                "Un caf\u00e9 au lait s'il vous pla\u00eet.", " ".join(["word"] * 21)):
        assert speech_text.clean_sentence(bad) is None, bad
    assert speech_text.normalize("I'd like Paris, please!") == "i'd like paris please"
    assert speech_text.true_case("i'd like the weather on sunday in new york") == \
        "I'd like the weather on Sunday in New York"


@needs_apertium
def test_translate_is_one_batch_in_order_without_unknown_marks():
    src = ["The weather in Paris is sunny today.", "the big red", "dog runs fast", "Xyzzy frobnicates the widget."]
    got = speech_text.translate(src)
    assert len(got) == 4 and got[0] == "El tiempo en París es soleado hoy."
    assert "perro" in got[2] and "perro" not in got[1]           # lines are not merged across segments
    assert not any(c in "".join(got) for c in "*#@")
    assert "xyzzy" in got[3].lower()                             # unknown words kept, marks stripped
    assert speech_text.translate(src) == got
    with pytest.raises(ValueError, match="single lines"):
        speech_text.translate(["two\nlines"])


def test_voice_pools_are_disjoint_and_bad_options_are_clear():
    opts = dict(speech_tts.DEFAULTS)
    pools = speech_tts.voice_pools(opts)
    sets = {k: set(v) for k, v in pools.items()}
    assert not (sets["train"] & sets["valid"]) and not (sets["train"] & sets["test"])
    assert not (sets["valid"] & sets["test"])
    assert set(speech_tts.FAMILIES["slt"]) <= sets["test"] and "flite:awb" in sets["valid"]
    assert {tts.engine_of(s) for s in pools["train"]} == {"espeak", "flite", "festival"}
    assert sum(map(len, pools.values())) == len(tts.ESPEAK_ACCENTS) * len(tts.ESPEAK_VARIANTS) + 7
    with pytest.raises(speech_tts.SpeechCorpusError, match="unknown voice families"):
        speech_tts.voice_pools({**opts, "test_families": ["nope"]})
    with pytest.raises(speech_tts.SpeechCorpusError, match="no voice for split"):
        speech_tts.voice_pools({**opts, "n_espeak": 0, "families": ["kal"], "valid_families": [], "test_families": []})
    with pytest.raises(TypeError, match="no option"):
        build("speech", "/nonexistent", voices=3)


def test_sentence_splits_keep_the_human_asterisk_test_texts_out_of_train():
    from avsuite.data.corpora import asterisk
    from avsuite.data.corpora.common import split_for

    opts = dict(speech_tts.DEFAULTS)
    sents = speech_tts.choose_sentences(speech_text.collect(opts), opts)
    assert len(sents) > 2000 and len({s["text"] for s in sents}) == len(sents)
    train = {s["text"] for s in sents if s["split"] == "train"}
    path = asterisk.find_transcripts("en")
    if path is None:
        pytest.skip("asterisk-core-sounds-en not installed")
    held = {speech_text.normalize(asterisk.normalize_text(t)) for name, t in asterisk.read_transcripts(path).items()
            if split_for(name, valid=0.1, test=0.1, salt="asterisk") != "train"}
    assert held and not (held & train)
    counts = {sp: sum(s["split"] == sp for s in sents) for sp in ("train", "valid", "test")}
    assert counts["test"] > 0.07 * len(sents) and counts["valid"] > 0.05 * len(sents)


@needs_festival
def test_festival_batch_equals_text2wave(tmp_path):
    job = {"id": "a", "path": str(tmp_path / "batch.wav"), "speaker": "festival:kal_diphone",
           "text": "A green flag.", "speed": 0.9}
    [(cid, secs)] = tts.festival_batch([job])
    ref = tts.synthesize("festival:kal_diphone", "A green flag.", 0.9, tmp_path / "ref.wav")
    assert cid == "a" and secs == ref > 0.3
    assert (tmp_path / "batch.wav").read_bytes() == (tmp_path / "ref.wav").read_bytes()


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted((folder / "audio").rglob("*.wav"))}


@needs_espeak
@needs_apertium
@needs_festival
def test_tiny_build_is_disjoint_decodes_and_rebuilds_identically(tmp_path):
    import soundfile as sf

    out = tmp_path / "speech"
    man = build("speech", out, **TINY)
    rows = read_manifest(man)
    by = lambda key, split: {r[key] for r in rows if r["split"] == split}  # noqa: E731
    assert {r["split"] for r in rows} == {"train", "valid", "test", "test_seen_voice"}
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not (by("speaker", a) & by("speaker", b)), (a, b)              # held-out voices
        assert not (by("sentence", a) & by("sentence", b)), (a, b)            # held-out sentences
    assert by("speaker", "test_seen_voice") <= by("speaker", "train")
    assert by("sentence", "test_seen_voice") == by("sentence", "test")
    assert len(by("sentence", "train") | by("sentence", "valid") | by("sentence", "test")) == 6
    for r in rows:
        es = r["translation"]["es"]
        assert es and not set("*#@") & set(es) and r["text"] == speech_text.normalize(r["text_raw"])
        info = sf.info(r["audio"])
        assert info.samplerate == 16000 and info.channels == 1 and abs(info.duration - r["duration"]) < 1e-3
        assert 0.5 < r["duration"] < 15 and r["source"] and r["license"]
    wave, sr = sf.read(rows[0]["audio"], dtype="float32")
    assert sr == 16000 and 0.5 < abs(wave).max() <= 0.91
    assert {r["engine"] for r in rows} >= {"espeak"}
    seen = read_manifest(out / "test_seen_voice.jsonl")
    assert {r["split"] for r in seen} == {"test"} and len(seen) == sum(r["split"] == "test_seen_voice" for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == len(rows) and summary["with_translation"] == len(rows)

    stamp = (out / ".complete").stat().st_mtime_ns
    assert build("speech", out, **TINY) == man and (out / ".complete").stat().st_mtime_ns == stamp   # cached
    first, audio = man.read_bytes(), _digest(out)
    build("speech", out, force=True, **TINY)
    assert man.read_bytes() == first and _digest(out) == audio            # byte-identical rebuild
    other = build("speech", tmp_path / "seed1", **{**TINY, "seed": 1})
    assert other.read_bytes() != first
