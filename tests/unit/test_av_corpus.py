"""The synthetic talking-face corpus ``av``: espeak-ng timings, visemes, rendering, rows, split, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avsuite.data import corpora
from avsuite.data.corpora import av, espeak
from avsuite.data.corpora.face_bank import carphone_path, procedural_face
from avsuite.data.corpora.talking_face import ClipStyle, render
from avsuite.data.corpora.visemes import VisemeTrack, targets, viseme_track
from avsuite.data.manifest import read_manifest
from avsuite.video.io import probe_video, read_video

needs_espeak = pytest.mark.skipif(not espeak.available(), reason="libespeak-ng.so.1 not installed")
TINY = {"clips": 8, "identities": 3, "real_faces": False, "voices": av.VOICES[:3], "test_identity": "proc01",
        "test_voice": av.VOICES[1], "workers": 1, "progress": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("av")
    return corpora.build("av", out, **TINY)


def _rms_per_frame(wave: np.ndarray, sr: int, n: int, fps: int) -> np.ndarray:
    hop = sr // fps
    return np.array([np.sqrt(np.mean(wave[i * hop:(i + 1) * hop] ** 2)) for i in range(n)])


def _mouth_change(frames: np.ndarray, mouth) -> np.ndarray:
    """Mean abs luminance change from the first (resting) frame inside the mouth box, per frame."""
    cx, cy, w = mouth
    lum = frames.astype(np.float32).mean(-1)[:, int(cy - 0.6 * w):int(cy + 1.6 * w), int(cx - 1.3 * w):int(cx + 1.3 * w)]
    return np.abs(lum - lum[:1]).mean(axis=(1, 2))


# -- espeak ---------------------------------------------------------------------------------------

@needs_espeak
def test_espeak_phonemes_are_monotonic_and_inside_the_audio():
    s = espeak.synthesize("Please leave a message after the tone.", voice="en-us+f1", rate=160)
    assert s.sample_rate == 22050 and 1.0 < s.seconds < 4.0
    times = [t for _, t in s.phonemes]
    assert len(s.phonemes) > 20
    assert times == sorted(times) and 0.0 <= times[0] and times[-1] <= s.seconds
    assert {"p", "l", "i:"} <= {p for p, _ in s.phonemes}
    faster = espeak.synthesize("Please leave a message after the tone.", voice="en-us+f1", rate=260)
    assert faster.seconds < 0.8 * s.seconds


@needs_espeak
def test_espeak_first_vowel_sounds_where_its_event_says():
    s = espeak.synthesize("Ah.", voice="en", rate=120)
    start = dict(s.phonemes)["A:"]
    hop = s.sample_rate // 100
    rms = _rms_per_frame(s.wave, s.sample_rate, len(s.wave) // hop, 100)
    onset = np.argmax(rms > 0.3 * rms.max()) / 100.0
    assert abs(onset - start) < 0.06


@needs_espeak
def test_espeak_unknown_voice_is_a_clear_error():
    with pytest.raises(espeak.EspeakError, match="no voice 'xx-nope'"):
        espeak.synthesize("hello", voice="xx-nope")


def test_missing_espeak_library_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(espeak, "LIBRARY", "libespeak-ng-missing.so.9")
    assert not espeak.available("libespeak-ng-missing.so.9")
    with pytest.raises(espeak.EspeakError, match="libespeak-ng1"):
        espeak.synthesize("hello", library="libespeak-ng-missing.so.9")
    monkeypatch.setattr(espeak, "available", lambda library=espeak.LIBRARY: False)
    with pytest.raises(espeak.EspeakError, match="espeak-ng library"):
        av.build_rows(tmp_path, av.DEFAULTS)


# -- visemes and rendering ------------------------------------------------------------------------

def test_viseme_targets_open_vowels_close_bilabials():
    assert targets("A:")[0][0] > 0.9 and targets("i:")[0][1] > 0.8 and targets("u:")[0][2] > 0.9
    assert targets("m")[0][0] == 0.0 and targets("_:") == () and targets("h") is None
    assert len(targets("aI")) == 2 and targets("r-") == targets("r")
    track = viseme_track([("m", 0.3), ("A:", 0.4), ("p", 0.7), ("A:", 0.75), ("_", 1.0)], end=1.4, n_frames=35)
    assert len(track) == 35 and track.open.dtype == np.float32
    assert track.open[:4].max() < 0.05 and track.open[-5:].max() < 0.05       # rest before and after
    assert track.open[13] > 0.7 and track.open[23] > 0.6                       # the two A:s (0.52 s, 0.92 s)
    assert track.open[17] < 0.35                                                # closure of p (0.64-0.7 s)


def test_rendered_mouth_opens_with_the_track_and_upper_face_stays():
    face = procedural_face(2, size=96)
    opening = np.r_[np.zeros(5), np.linspace(0, 1, 10), np.ones(5), np.linspace(1, 0, 10)].astype(np.float32)
    track = VisemeTrack(open=opening, spread=np.zeros_like(opening), round=np.zeros_like(opening))
    frames = render(face, track, ClipStyle())
    assert frames.shape == (30, 96, 96, 3) and frames.dtype == np.uint8
    change = _mouth_change(frames, face.mouth)
    assert np.corrcoef(change, opening)[0, 1] > 0.95 and change.max() > 25.0
    upper = frames[:, 15:40, 30:66].astype(np.float32)
    assert np.abs(np.diff(upper, axis=0)).mean() < 0.2 * np.abs(np.diff(frames[:, 50:90].astype(np.float32), axis=0)).mean() + 1.0
    assert procedural_face(2, size=96).image.tobytes() == face.image.tobytes()     # deterministic
    assert procedural_face(3, size=96).image.tobytes() != face.image.tobytes()


# -- the built corpus -----------------------------------------------------------------------------

@needs_espeak
def test_tiny_build_rows_are_valid_and_durations_agree(tiny):
    rows = read_manifest(tiny)
    assert len(rows) == TINY["clips"]
    for r in rows:
        assert set(av.ROW_KEYS) <= set(r)
        assert r["sr"] == 16000 and r["fps"] == 25 and r["width"] == r["height"] == 128
        assert r["n_frames"] == round(r["duration"] * r["fps"]) and 1.5 <= r["duration"] <= 4.5
        info = probe_video(r["video"])
        assert info.n_frames == r["n_frames"] and (info.width, info.height) == (128, 128) and info.has_audio
        assert abs(info.fps - 25.0) < 1e-6
        wave, sr = sf.read(r["audio"], dtype="float32")
        assert sr == 16000 and abs(len(wave) / sr - r["duration"]) < 1e-3
        times = [t for _, t in r["phonemes"]]
        assert times == sorted(times) and 0.0 < times[0] and times[-1] < r["duration"]
        assert r["voice"] in TINY["voices"] and r["identity"] in {"proc00", "proc01", "proc02"}
    summary = json.loads((tiny.parent / "summary.json").read_text())
    assert summary["clips"] == len(rows) and summary["test_voice"] == TINY["test_voice"]
    assert "test = identity == test_identity or voice == test_voice" in summary["split_rule"]


@needs_espeak
def test_held_out_identity_and_voice_only_in_test(tiny):
    rows = read_manifest(tiny)
    for r in rows:
        held = r["identity"] == TINY["test_identity"] or r["voice"] == TINY["test_voice"]
        assert (r["split"] == "test") == held
    assert any(r["split"] == "test" for r in rows) and any(r["split"] == "train" for r in rows)
    assert av.split_of("av/1", "proc05", "en+m1", av.DEFAULTS) == "test"
    assert av.split_of("av/1", "proc00", av.DEFAULTS["test_voice"], av.DEFAULTS) == "test"


@needs_espeak
def test_mouth_follows_the_speech_in_the_video(tiny):
    corr_open, corr_rms, ratios, uppers = [], [], [], []
    for r in read_manifest(tiny):
        frames, _ = read_video(r["video"])
        wave, sr = sf.read(r["audio"], dtype="float32")
        change = _mouth_change(frames, r["mouth"])
        track = viseme_track([tuple(p) for p in r["phonemes"]], end=r["duration"], n_frames=r["n_frames"])
        corr_open.append(np.corrcoef(change, track.open)[0, 1])
        corr_rms.append(np.corrcoef(change, _rms_per_frame(wave, sr, r["n_frames"], 25))[0, 1])
        s = r["width"]
        lum = frames.astype(np.float32).mean(-1)
        upper = np.abs(np.diff(lum[:, int(0.2 * s):int(0.45 * s), int(0.3 * s):int(0.7 * s)], axis=0)).mean()
        cx, cy, w = r["mouth"]
        mouth = np.abs(np.diff(lum[:, int(cy - 0.6 * w):int(cy + 1.6 * w), int(cx - 1.3 * w):int(cx + 1.3 * w)],
                               axis=0)).mean()
        ratios.append(upper / mouth)
        uppers.append(upper)
    assert min(corr_open) > 0.6, corr_open
    assert np.median(corr_rms) > 0.5 and min(corr_rms) > 0.3, corr_rms
    assert np.median(ratios) < 0.3 and max(ratios) < 0.5, ratios
    assert max(uppers) < 1.5, uppers                                          # grey levels per frame


@needs_espeak
def test_rebuild_is_byte_identical_and_cached(tiny, tmp_path):
    again = corpora.build("av", tmp_path / "again", **TINY)
    assert again.read_bytes() == tiny.read_bytes()
    assert corpora.is_built("av", tiny.parent, **TINY)
    assert not corpora.is_built("av", tiny.parent, **{**TINY, "clips": 9})


@needs_espeak
def test_size_option_scales_frames_and_mouth(tmp_path):
    rows = read_manifest(corpora.build("av", tmp_path, **{**TINY, "clips": 2, "size": 96}))
    for r in rows:
        info = probe_video(r["video"])
        assert (r["width"], r["height"]) == (info.width, info.height) == (96, 96)
        cx, cy, w = r["mouth"]
        assert abs(cx - 48) < 4 and 0.6 * 96 < cy < 0.75 * 96 and 0.08 * 96 < w < 0.12 * 96


def test_sentences_and_options_are_checked(tmp_path):
    texts = av.sentences()
    assert len(texts) >= 400 and all(t.strip() for t in texts) and len(set(texts)) > 300
    assert av.generated_sentences(5) == av.generated_sentences(5)
    with pytest.raises(ValueError, match="test_voice"):
        av.build_rows(tmp_path, {**av.DEFAULTS, "test_voice": "en+nope"})
    with pytest.raises(TypeError, match="no option"):
        corpora.build("av", tmp_path, clipz=3)


@pytest.mark.slow
@needs_espeak
def test_medium_build_is_balanced_and_quick(tmp_path):
    """Half the default build (the default, 300 clips, took 83 s on 2 idle-ish cores, 159 s under load 7)."""
    import time

    t0 = time.monotonic()
    rows = read_manifest(corpora.build("av", tmp_path, clips=150, progress=False))
    elapsed = time.monotonic() - t0
    splits = {s: sum(r["split"] == s for r in rows) for s in ("train", "valid", "test")}
    assert len(rows) == 150 and splits["test"] >= 10 and splits["valid"] >= 5 and splits["train"] >= 100
    assert len({r["identity"] for r in rows}) >= 16 and len({r["voice"] for r in rows}) == len(av.VOICES)
    if carphone_path() is not None:
        assert "carphone" in {r["identity"] for r in rows}
    assert elapsed < 150, elapsed
