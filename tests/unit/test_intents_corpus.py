"""Spoken-intent corpus: template expansion, balanced plan, speaker-disjoint splits, a tiny real build."""

import json
import random
import shutil

import pytest

from avsuite.data.corpora.intents import (IntentBuildOptions, IntentCorpusError, build_intents, expand_template,
                                          fill_slots, load_templates, make_speakers, plan_rows)
from avsuite.data.manifest import read_manifest


def test_expand_alternations_and_optional_parts():
    got = expand_template("(what is|tell me) the [current] weather  (in|at) {location}")
    assert len(got) == 2 * 2 * 2 and len(set(got)) == 8
    assert "tell me the weather at {location}" in got
    assert "what is the current weather in {location}" in got
    assert sorted(expand_template("((a|b) c|d)")) == ["a c", "b c", "d"]
    assert expand_template("plain  words") == ["plain words"]


def test_fill_slots_uses_word_lists():
    rng = random.Random(0)
    out = fill_slots("weather in {location} on {date}", rng, {"location": ["paris"], "date": ["monday"]})
    assert out == "weather in paris on monday"
    assert "{" not in fill_slots("in {offset} hours", rng)


def test_templates_cover_the_four_skills():
    intents = load_templates()
    tasks = {v["task"] for v in intents.values()}
    assert tasks == {"weather", "datetime", "alerts", "volume"}
    assert len(intents) >= 35
    assert sum(len(v["sentences"]) for v in intents.values()) > 4000
    assert all(v["sentences"] and v["license"] for v in intents.values())


def test_plan_is_balanced_deterministic_and_speaker_disjoint():
    opts = IntentBuildOptions(per_speaker=2, n_espeak=8, n_flite=2, n_festival=1)
    intents = load_templates()
    rows = plan_rows(opts, intents)
    assert rows == plan_rows(opts, intents)
    per_label = {}
    for r in rows:
        per_label[r["label"]] = per_label.get(r["label"], 0) + 1
    assert set(per_label.values()) == {2 * 11}
    by_split = {s: {r["speaker"] for r in rows if r["split"] == s} for s in ("train", "valid", "test")}
    assert all(by_split.values())
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["valid"])
    assert not (by_split["valid"] & by_split["test"])
    assert len({r["id"] for r in rows}) == len(rows)
    spk = make_speakers(opts)
    assert len(spk) == 11 and len({s["speaker"] for s in spk}) == 11


def test_bad_options_are_clear():
    with pytest.raises(IntentCorpusError, match="per_speaker"):
        IntentBuildOptions(per_speaker=0)
    with pytest.raises(IntentCorpusError, match="unknown option"):
        build_intents("/nonexistent", per_spker=1)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_tiny_build_writes_audio_and_is_cached(tmp_path):
    opts = dict(per_speaker=1, n_espeak=3, n_flite=0, n_festival=0, workers=2)
    man = build_intents(tmp_path, **opts)
    rows = read_manifest(man)
    assert len(rows) == len(load_templates()) * 3
    r = rows[0]
    assert r["sr"] == 16000 and 0.3 < r["duration"] < 10 and r["text"] and r["label"].count(".") >= 1
    assert r["source"].startswith("ovos-skill-") and r["license"]
    import soundfile as sf
    info = sf.info(r["audio"])
    assert info.samplerate == 16000 and info.channels == 1
    stamp = man.stat().st_mtime_ns
    assert build_intents(tmp_path, **opts) == man and man.stat().st_mtime_ns == stamp   # cached
    info = json.loads((tmp_path / "build_info.json").read_text())
    assert info["packages"]["ovos-skill-weather"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["clips"] == len(rows) and summary["speakers_per_split"] == {"train": 1, "valid": 1, "test": 1}
    assert {x["split"] for x in read_manifest(tmp_path / "test.jsonl")} == {"test"}


def test_corpora_table_interface():
    from avsuite.data.corpora import intents

    assert set(IntentBuildOptions.__dataclass_fields__) | {"progress"} == set(intents.DEFAULTS)
    got = intents.inputs(intents.DEFAULTS)
    assert got["ovos-skill-volume"] and "espeak-ng" in got
    text = intents.format_summary({"clips": 3, "intents": 2, "hours": 0.01, "per_split": {"train": 3},
                                   "speakers_per_split": {"train": 1}, "per_task": {"volume": 3}})
    assert "3 clips" in text and "2 intents" in text
