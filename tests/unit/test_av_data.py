"""The video stage of the one reader: SyncNet windows, labels, negatives, determinism, resume."""

import numpy as np
import pytest
import torch

from avsuite.audio.wav2lip_mel import mel_start, wav2lip_mel
from avsuite.data.av import (SyncBatch, SyncDataConfig, SyncLoad, box_pixels, collate_sync, crop_faces,
                             n_windows)
from avsuite.data.pipeline import Reader
from avsuite.data.rows import ManifestRows
from tests.integration.av_synth import make_av_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_av_corpus(tmp_path_factory.mktemp("av"), n_clips=6, seconds=2.0, n_valid=0)


def _reader(manifest, **kw):
    cfg = SyncDataConfig(manifest=str(manifest), batch_size=kw.pop("batch_size", 4), num_parallel_calls=1,
                         **kw)
    return Reader(manifest, cfg, train=True, collate=collate_sync, load=SyncLoad())


def test_batches_have_the_syncnet_shapes_and_labels(corpus):
    reader = _reader(corpus, batch_size=3, drop_last=False)
    batches = list(reader)
    assert len(batches) == 2
    b = batches[0]
    assert isinstance(b, SyncBatch)
    assert b.frames.shape == (3, 15, 32, 64) and b.frames.dtype == torch.float32
    assert b.mel.shape == (3, 1, 80, 16) and b.label.shape == (3,)
    assert 0 <= float(b.frames.min()) and float(b.frames.max()) <= 1
    assert set(b.kinds) <= {"pos", "other", "shift"}
    assert all((lab == 1.0) == (k == "pos") for lab, k in zip(b.label.tolist(), b.kinds))


def test_positive_mel_is_the_aligned_window_and_shifts_are_far(corpus):
    rows = ManifestRows.of(corpus)
    cfg = SyncDataConfig(manifest=str(corpus), batch_size=4, num_parallel_calls=1)
    from avsuite.data.pipeline import ItemContext, SkipCounter
    from avsuite.audio.io import load_audio

    ctx = ItemContext(rows, cfg, True, 0, SkipCounter())
    kinds = {}
    for seed in range(24):
        ex = SyncLoad()(ctx, 1, torch.Generator().manual_seed(seed))
        kinds.setdefault(ex["kind"], ex)
        if ex["kind"] in ("pos", "shift"):
            wave, _ = load_audio(rows[1]["audio"], 16000)
            m0 = mel_start(ex["audio_start"], 25)
            assert torch.equal(ex["mel"], wav2lip_mel(wave)[:, m0:m0 + 16])
        if ex["kind"] == "pos":
            assert ex["audio_start"] == ex["start"]
        if ex["kind"] == "shift":
            assert abs(ex["audio_start"] - ex["start"]) >= 5
    assert set(kinds) == {"pos", "other", "shift"}
    ctx1 = ItemContext(rows, SyncDataConfig(manifest=str(corpus), hard_from_epoch=1, hard_min_shift=2,
                                      positive_prob=0.0, other_clip_prob=0.0), True, 1,
                       SkipCounter())
    shifts = [abs(e["audio_start"] - e["start"]) for e in
              (SyncLoad()(ctx1, 1, torch.Generator().manual_seed(s)) for s in range(80))]
    assert min(shifts) >= 2 and min(shifts) < 5                     # hard negatives from epoch 1


def test_labels_are_balanced_and_items_seeded(corpus):
    a, b = _reader(corpus, batch_size=2), _reader(corpus, batch_size=2)
    xa, xb = list(a), list(b)
    assert all(torch.equal(p.frames, q.frames) and torch.equal(p.mel, q.mel) and p.kinds == q.kinds
               for p, q in zip(xa, xb))
    labels = torch.cat([x.label for ep in range(8) for x in a])       # 8 more epochs
    assert 0.3 < float(labels.mean()) < 0.7


def test_resume_mid_epoch_gives_the_same_batches(corpus):
    full = _reader(corpus, batch_size=2)
    want = list(full)
    part = _reader(corpus, batch_size=2)
    it = iter(part)
    next(it)
    state = part.state_dict()
    resumed = _reader(corpus, batch_size=2)
    resumed.load_state_dict(state)
    got = list(resumed)
    assert len(got) == len(want) - 1
    assert all(torch.equal(p.frames, q.frames) and torch.equal(p.mel, q.mel) for p, q in zip(got, want[1:]))


def test_ranks_shard_the_global_batch(corpus):
    cfg = SyncDataConfig(manifest=str(corpus), batch_size=1, num_parallel_calls=1)
    ids = [[b.ids for b in Reader(corpus, cfg, train=True, collate=collate_sync, load=SyncLoad(), rank=r,
                                  world_size=2)] for r in (0, 1)]
    flat = [i for r in ids for b in r for i in b]
    assert len(flat) == len(set(flat)) == 6


def test_unreadable_video_is_skipped_and_counted(tmp_path, corpus):
    import json

    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    base = corpus.parent
    for r in rows:
        r["audio"], r["video"] = str(base / r["audio"]), str(base / r["video"])
    rows[0]["video"] = str(tmp_path / "missing.mp4")
    cfg = SyncDataConfig(manifest="", batch_size=6, num_parallel_calls=1, shuffle=False)
    reader = Reader(rows, cfg, train=True, collate=collate_sync, load=SyncLoad())
    (batch,) = list(reader)
    assert len(batch) == 5 and reader.stats.counts["unreadable"] == 1


def test_crop_box_and_windows():
    assert box_pixels({}, (64, 80), (0.25, 0.5, 0.75, 1.0)) == (20, 32, 60, 64)
    assert box_pixels({"face_box": [1.4, 2, 30, 40]}, (64, 80), (0, 0, 1, 1)) == (1, 2, 30, 40)
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 80, 3), dtype=np.uint8)
    out = crop_faces(frames, (20, 32, 60, 64), (16, 20))
    assert out.shape == (3, 16, 20, 3) and out.dtype == torch.uint8
    same = crop_faces(frames, (0, 0, 80, 64), (64, 80))
    assert torch.equal(same, torch.from_numpy(frames))
    # 50 frames, 2 s of audio at 25 fps: 161 mel frames; the last start s needs int(3.2 s) + 16 <= 161
    assert n_windows(50, 161, 25, 5, 16) == 46
    assert n_windows(50, 100, 25, 5, 16) == 27


def test_config_validation():
    with pytest.raises(ValueError, match="crop_box"):
        SyncDataConfig(crop_box=(0.5, 0, 0.4, 1))
    with pytest.raises(ValueError, match="positive_prob"):
        SyncDataConfig(positive_prob=1.5)
    with pytest.raises(ValueError, match="train_part"):
        SyncDataConfig(train_part=(2, 2))


def test_memory_cache_gives_the_same_batches_over_epochs(corpus):
    plain = _reader(corpus, batch_size=2, crop_box=(0.2, 0.3, 0.8, 0.9))
    cached = _reader(corpus, batch_size=2, crop_box=(0.2, 0.3, 0.8, 0.9), memory_cache=True)
    for epoch in range(3):                          # epoch 0 fills the cache, then every window comes from it
        want, got = list(plain), list(cached)
        assert len(got) == len(want) == 3
        assert all(torch.equal(p.frames, q.frames) and torch.equal(p.mel, q.mel) and p.kinds == q.kinds
                   for p, q in zip(want, got)), epoch
    assert len(cached.load._faces) == 6 and len(cached.load._mels) == 6


def test_mouth_crop_is_the_lipsync_generators_box(corpus):
    from avsuite.data.av import clip_box, mouth_box
    from avsuite.data.lipsync import LipSyncDataConfig, face_box

    rng = np.random.default_rng(0)
    for _ in range(50):                      # a square of side round(side * hw) inside the frame, centred when it can be
        mouth = [rng.uniform(-5, 140), rng.uniform(-5, 140), rng.uniform(2, 20)]
        spec = (rng.uniform(1, 5), rng.uniform(-2, 2))
        x0, y0, x1, y1 = mouth_box(mouth, (128, 120), spec)
        side = max(1, round(spec[0] * mouth[2]))
        assert x1 - x0 == y1 - y0 == side and 0 <= x0 and x1 <= 120 and 0 <= y0 and y1 <= 128
        if side / 2 + 1 <= mouth[0] <= 120 - side / 2 - 1:
            assert abs((x0 + x1) / 2 - mouth[0]) <= 1
    row = {"mouth": [64, 90, 12]}
    assert face_box(row, (128, 128), LipSyncDataConfig(mouth_crop=(5.0, -0.5))) == (34, 54, 94, 114)
    assert mouth_box([64, 90, 12], (128, 128), (5.0, -0.5)) == (34, 54, 94, 114)
    cfg = SyncDataConfig(mouth_crop=(5.0, -0.5), face_size=32, face_width=32)
    assert clip_box({"mouth": [64, 90, 12]}, (128, 128), cfg) == (34, 54, 94, 114)
    assert clip_box({}, (128, 128), cfg) is None
    assert clip_box({}, (128, 128), SyncDataConfig(crop_box=(0.25, 0.5, 0.75, 1.0))) == (32, 64, 96, 128)
    with pytest.raises(ValueError, match="mouth_crop"):
        SyncDataConfig(mouth_crop=(0.0, 0.0))
