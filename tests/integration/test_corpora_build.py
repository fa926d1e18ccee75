"""End-to-end corpus builds from the installed packages (slow: about three minutes in all)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import pytest

from avsuite.audio.io import load_audio
from avsuite.data import corpora
from avsuite.data.corpora import asterisk, sounds_arcade, sounds_fluidsynth, sounds_gcompris, sounds_tuxpaint
from avsuite.data.manifest import read_manifest

pytestmark = pytest.mark.slow

ALL_SOUND_SOURCES = (sounds_tuxpaint.available() and sounds_gcompris.available() and sounds_arcade.available()
                     and sounds_fluidsynth.available())
needs_sounds = pytest.mark.skipif(not ALL_SOUND_SOURCES, reason="a sound source package is missing (tools/setup.sh)")
needs_asterisk = pytest.mark.skipif(asterisk.find_transcripts("en") is None or asterisk.voice_dir("en") is None,
                                    reason="asterisk-core-sounds-en(-g722) is not installed (tools/setup.sh)")


def _decode_all(rows, sr):
    bad = []
    for r in rows:
        try:
            wave, rate = load_audio(r["audio"])
        except Exception as exc:  # noqa: BLE001 - collect every failure
            bad.append(f"{r['id']}: {exc}")
            continue
        if rate != sr or abs(wave.shape[-1] / rate - r["duration"]) > 1e-3:
            bad.append(f"{r['id']}: {rate} Hz, {wave.shape[-1] / rate:.4f} s vs manifest {r['duration']}")
    return bad


@pytest.fixture(scope="module")
def sounds_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("sounds")
    t0 = time.monotonic()
    manifest = corpora.build("sounds", out, gm_renders=2, progress=False)
    return out, manifest, time.monotonic() - t0


@needs_sounds
def test_sounds_corpus(sounds_build):
    out, manifest, seconds = sounds_build
    rows = read_manifest(manifest)
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    sources = Counter(r["source"] for r in rows)
    assert set(sources) == {"tuxpaint-stamps-default", "gcompris-qt-data", "arcade", "fluid-soundfont-gm"}
    assert sources["arcade"] >= 50 and sources["tuxpaint-stamps-default"] >= 70
    assert sources["gcompris-qt-data"] >= 80 and sources["fluid-soundfont-gm"] == 2 * (128 + 18)
    labels = Counter(r["label"] for r in rows)
    assert len(labels) >= 150
    assert sum(1 for c in labels.values() if c >= 2) >= 100      # enough classes for class-disjoint splits
    for lab in ("dog", "cow", "trumpet", "violin", "water flowing", "laser", "coin", "applause", "piano", "snare drum"):
        assert labels[lab] >= 2, lab
    cats = Counter(r["category"] for r in rows)
    assert {"animal", "instrument", "environment", "sfx"} <= set(cats)
    for r in rows:
        assert r["sr"] == 32000 and r["duration"] > 0 and r["license"] and r["captions"]
        assert r["audio"].startswith(str(out / "audio"))
    # spoken clips stay out
    assert not any("/symbols/" in i or "roadsigns" in i or "youcannot" in i for i in ids)
    assert _decode_all(rows, 32000) == []
    info = (out / "summary.json").read_text()
    assert '"silent": 4' in info and '"duplicate"' in info


@needs_sounds
def test_sounds_rebuild_is_a_cache_hit(sounds_build):
    out, manifest, seconds = sounds_build
    before = manifest.read_bytes(), manifest.stat().st_mtime_ns
    t0 = time.monotonic()
    assert corpora.build("sounds", out, gm_renders=2, workers=1, progress=False) == manifest
    assert time.monotonic() - t0 < 10 < seconds
    assert (manifest.read_bytes(), manifest.stat().st_mtime_ns) == before
    assert not corpora.is_built("sounds", out, gm_renders=3)


@needs_sounds
def test_sounds_forced_rebuild_is_byte_identical(tmp_path):
    opts = dict(sources=("tuxpaint", "arcade", "fluidsynth"), gm_programs=[0, 40, 56, 122, 127], gm_renders=3,
                progress=False)
    a = corpora.build("sounds", tmp_path / "a", **opts).read_bytes()
    b = corpora.build("sounds", tmp_path / "b", workers=1, **opts).read_bytes()
    c = corpora.build("sounds", tmp_path / "a", force=True, **opts).read_bytes()
    assert a == b == c


@needs_asterisk
def test_asterisk_corpus(tmp_path):
    out = tmp_path / "asterisk"
    manifest = corpora.build("asterisk", out, progress=False)
    rows = read_manifest(manifest)
    assert 500 <= len(rows) <= 600
    assert all(r["lang"] == "en" and r["text"] and r["sr"] == 16000 and r["license"] == "CC-BY-SA-3.0" for r in rows)
    assert not any("[" in r["text"] or "<" in r["text"] for r in rows)
    pairs = Counter(k for r in rows for k in r["translation"])
    assert pairs["fr"] >= 450 and pairs["es"] >= 400
    splits = Counter(r["split"] for r in rows)
    assert splits["train"] > 0.7 * len(rows) and splits["valid"] > 0.05 * len(rows) and splits["test"] > 0.05 * len(rows)
    by_prompt = defaultdict(set)
    for r in rows:
        by_prompt[r["prompt"]].add(r["split"])
    assert all(len(s) == 1 for s in by_prompt.values())          # a prompt lives in exactly one split
    assert _decode_all(rows, 16000) == []
    first = manifest.read_bytes()
    t0 = time.monotonic()
    corpora.build("asterisk", out, progress=False)
    assert time.monotonic() - t0 < 5 and manifest.read_bytes() == first
    corpora.build("asterisk", out, force=True, progress=False)
    assert manifest.read_bytes() == first
