"""The feature cache stage: the frontend's output of a file computed once by a standalone frontend
(built from the recipe's FrontendConfig, never the model), keyed by the config's hash and the file's
size + mtime, memory-mapped; models take the cached features in place of waves."""

import os
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.audio.frontend import AudioFrontend, FrontendConfig
from avsuite.audio.io import load_audio
from avsuite.data.batches import collate_audio_text
from avsuite.data.features import FeatureCache
from avsuite.data.pipeline import DataConfig, Reader

FE = FrontendConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=32, log="db", normalize="utterance")


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    out = []
    for i in range(12):
        n = int(rng.integers(4000, 16000))
        sf.write(d / f"{i}.wav", (0.1 * rng.standard_normal(n)).astype(np.float32), 8000)
        out.append({"id": f"c{i:02d}", "audio": str(d / f"{i}.wav"), "duration": n / 8000, "captions": [f"clip {i}"]})
    return out


def test_cached_features_equal_the_frontend_bit_for_bit_and_hit_on_the_second_read(rows, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path, FE, 8000)
    fe = AudioFrontend(FE).eval()
    for r in rows[:4]:
        wave, _ = load_audio(r["audio"], 8000)
        ref = fe(wave[None])[0]
        got = cache.load(r["audio"])
        assert got.shape == ref.shape == (32, 1 + wave.numel() // 80) and torch.equal(got, ref)
    monkeypatch.setattr(FeatureCache, "compute", lambda *a: pytest.fail("a hit must not run the frontend"))
    assert torch.equal(cache.load(rows[0]["audio"]), fe(load_audio(rows[0]["audio"], 8000)[0][None])[0])


def test_a_changed_config_or_a_touched_file_misses(rows, tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, (0.1 * np.random.default_rng(1).standard_normal(8000)).astype(np.float32), 8000)
    a = FeatureCache(tmp_path / "c", FE, 8000)
    b = FeatureCache(tmp_path / "c", FrontendConfig(**{**FE.__dict__, "n_mels": 40}), 8000)
    c = FeatureCache(tmp_path / "c", FrontendConfig(**{**FE.__dict__, "hop_length": 81}), 8000)
    assert len({a.root, b.root, c.root}) == 3 and a.root == FeatureCache(tmp_path / "c", FE, 8000).root
    first = a.load(path)
    assert b.load(path).shape[0] == 40 and c.load(path).shape[1] != first.shape[1]
    key = a.key(path)
    sf.write(path, (0.5 * np.random.default_rng(2).standard_normal(8000)).astype(np.float32), 8000)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))          # touched (even if the size matches)
    assert a.key(path) != key
    again = a.load(path)
    assert not torch.equal(again, first)
    assert torch.equal(again, AudioFrontend(FE)(load_audio(path, 8000)[0][None])[0])
    seg = a.key(path, (0.25, 0.5))
    assert seg != a.key(path) and seg != a.key(path, (0.25, 0.4))        # segments are their own entries


def test_reads_are_bounded_by_one_entry_not_the_cache(tmp_path):
    paths = []
    for i in range(10):                                                  # 10 x 10 s: 128 KB of features each
        paths.append(tmp_path / f"{i}.wav")
        sf.write(paths[-1], (0.1 * np.random.default_rng(i).standard_normal(80000)).astype(np.float32), 8000)
    cache = FeatureCache(tmp_path / "c", FE, 8000)
    cache.load(paths[0])                                                  # imports, kernels
    tracemalloc.start()
    sizes = [cache.load(p).numel() * 4 for p in paths]                   # fill the cache
    assert len(list(cache.root.glob("*.npy"))) == len(paths) and min(sizes) == 32 * 1001 * 4
    tracemalloc.reset_peak()
    for p in paths:
        cache.load(p)
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert retained < 64_000                                   # nothing kept in RAM: the cache is the disk
    assert peak < 2 * max(sizes) + 64_000 < sum(sizes) / 3     # one entry at a time (memory-mapped), not all


def test_reader_feature_stage_batches_and_models_take_them(rows, tmp_path):
    cfg = DataConfig(sample_rate=8000, batch_size=4, cache_dir=str(tmp_path), cache_stage="features")
    waves = list(Reader(rows, DataConfig(sample_rate=8000, batch_size=4), collate=collate_audio_text, train=False))
    feats = list(Reader(rows, cfg, collate=collate_audio_text, train=False, frontend=FE))
    fe = AudioFrontend(FE).eval()
    for w, f in zip(waves, feats):
        assert w.ids == f.ids and f.audio.shape[:2] == (4, 32)
        ref, n = fe(w.audio, w.lengths)                       # the model's frontend on the padded waves
        got, m = fe(f.audio, f.lengths)                       # ... passes cached features through
        assert torch.equal(n, m) and torch.equal(got, f.audio)
        for k in range(4):
            assert torch.equal(got[k, :, : m[k]], ref[k, :, : n[k]])


def test_feature_stage_refuses_what_it_cannot_honour(rows, tmp_path):
    with pytest.raises(ValueError, match="crop_seconds must be null"):
        DataConfig(cache_dir=str(tmp_path), cache_stage="features", crop_seconds=2.0)
    with pytest.raises(ValueError, match="needs data.cache_dir"):
        DataConfig(cache_stage="features")
    cfg = DataConfig(sample_rate=8000, cache_dir=str(tmp_path), cache_stage="features")
    with pytest.raises(ValueError, match="FrontendConfig"):
        Reader(rows, cfg, collate=collate_audio_text, train=True)
    with pytest.raises(ValueError, match="expects 16000 Hz"):
        Reader(rows, cfg, collate=collate_audio_text, train=True, frontend=FrontendConfig())


def test_clap_model_on_cached_features_equals_the_model_on_waves(tmp_path):
    """The model's frontend passes the cached (B, n_mels, F) through: the same embeddings."""
    from avsuite.models.clap import ClapModel, ClapModelConfig, tiny_frontend

    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        sf.write(tmp_path / f"{i}.wav", (0.1 * rng.standard_normal(int(rng.integers(8000, 40000)))).astype(np.float32),
                 16000)
        rows.append({"id": f"c{i}", "audio": str(tmp_path / f"{i}.wav"), "captions": ["x"]})
    model = ClapModel(ClapModelConfig(), tiny_frontend(), pretrained_text=False).eval()
    w = next(iter(Reader(rows, DataConfig(sample_rate=16000, batch_size=4), collate=collate_audio_text, train=False)))
    cfg = DataConfig(sample_rate=16000, batch_size=4, cache_dir=str(tmp_path / "c"), cache_stage="features")
    f = next(iter(Reader(rows, cfg, collate=collate_audio_text, train=False, frontend=tiny_frontend())))
    with torch.no_grad():
        assert torch.equal(model.encode_audio(w.audio, w.lengths), model.encode_audio(f.audio, f.lengths))
