"""The fairseq2 pipeline: exact mid-epoch resume, disjoint covering shards, bad rows skipped and
counted (or fatal in strict mode), deterministic crops, length bucketing."""

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.audio.io import AudioDecodeError
from avsuite.data.batches import collate_audio_text, collate_intent, pad_right
from avsuite.data.pipeline import DataConfig, build_pipeline, crop


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    out = []
    for i in range(30):
        n = int(rng.integers(2000, 12000))
        sf.write(d / f"{i}.wav", (0.1 * rng.standard_normal(n)).astype(np.float32), 8000)
        out.append({"id": f"c{i:02d}", "audio": str(d / f"{i}.wav"), "duration": n / 8000, "label": f"l{i % 3}",
                    "captions": [f"clip {i}"]})
    return out


def batches(p):
    return [(b.ids, b.audio.clone()) for b in p]


def cfg(**kw):
    return DataConfig(**{**dict(sample_rate=8000, batch_size=4, max_seconds=0.5, shuffle_window=8, seed=3,
                                num_parallel_calls=2), **kw})


@pytest.mark.parametrize("bucket", [False, True])
@pytest.mark.parametrize("stop_after", [1, 4])
def test_exact_resume_mid_epoch(rows, bucket, stop_after):
    c = cfg(bucket_by_length=bucket)
    full = batches(build_pipeline(rows, c, collate=collate_audio_text, train=True, epoch=2))
    p = build_pipeline(rows, c, collate=collate_audio_text, train=True, epoch=2)
    it = iter(p)
    head = [next(it) for _ in range(stop_after)]
    state = p.state_dict()
    q = build_pipeline(rows, c, collate=collate_audio_text, train=True)     # a fresh process
    q.load_state_dict(state)
    rest = batches(q)
    got = [(b.ids, b.audio) for b in head] + rest
    assert [ids for ids, _ in got] == [ids for ids, _ in full]
    for (_, a), (_, b) in zip(got, full):
        assert torch.equal(a, b)   # same random crops too


def test_lookahead_reports_the_consumed_position(rows):
    p = build_pipeline(rows, cfg(), collate=collate_audio_text, train=True, lookahead=1)
    it = iter(p)
    next(it), next(it), next(it)
    assert p.state_dict()["consumed"] == 2


@pytest.mark.parametrize("kw", [{}, {"drop_last": True}, {"bucket_by_length": True, "batch_size": 2},
                                {"bucket_by_length": True, "drop_last": True, "batch_size": 3}])
def test_len_is_exact(rows, kw):
    for world in (1, 2):
        p = build_pipeline(rows, cfg(**kw), collate=collate_audio_text, train=True, rank=0, world_size=world)
        assert len(p) == len(p.batch_plan()) == len(list(p))


def test_state_at_the_end_of_an_epoch_starts_the_next(rows):
    p = build_pipeline(rows, cfg(), collate=collate_audio_text, train=True)
    it = iter(p)
    e0 = [next(it).ids for _ in range(len(p))]
    q = build_pipeline(rows, cfg(), collate=collate_audio_text, train=True)
    q.load_state_dict(p.state_dict())        # consumed == len: the generator has not finished yet
    e1 = [b.ids for b in q]
    ref = build_pipeline(rows, cfg(), collate=collate_audio_text, train=True, epoch=1)
    assert e1 == [b.ids for b in ref] and e1 != e0


def test_epochs_reshuffle_and_eval_is_ordered(rows):
    p = build_pipeline(rows, cfg(), collate=collate_audio_text, train=True)
    e0, e1 = [b.ids for b in p], [b.ids for b in p]
    assert e0 != e1 and sorted(sum(e0, [])) == sorted(sum(e1, [])) == sorted(r["id"] for r in rows)
    ev = build_pipeline(rows, cfg(), collate=collate_audio_text, train=False)
    assert sum([b.ids for b in ev], []) == [r["id"] for r in rows]


@pytest.mark.parametrize("world", [2, 3, 4])
def test_shards_are_disjoint_and_cover_the_epoch(rows, world):
    shards = [sum(build_pipeline(rows, cfg(), collate=collate_audio_text, train=True, rank=r,
                                 world_size=world).batch_plan(), []) for r in range(world)]
    flat = sum(shards, [])
    assert len(flat) == len(set(flat))                          # disjoint
    assert len({len(s) for s in shards}) == 1                   # equal counts: no DDP hang
    assert len(rows) - len(flat) < world                        # only the remainder is dropped
    with pytest.raises(ValueError):
        build_pipeline(rows, cfg(), collate=collate_audio_text, train=True, rank=2, world_size=2)


def test_bad_rows_are_skipped_and_counted(rows, tmp_path, caplog):
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    bad = rows[:6] + [{"id": "missing", "audio": str(tmp_path / "nope.wav")},
                      {"id": "junk", "audio": str(tmp_path / "junk.wav")},
                      {"id": "tiny", "audio": rows[0]["audio"], "duration": 0.01}]
    p = build_pipeline(bad, cfg(min_seconds=0.1), collate=collate_audio_text, train=False)
    ids = sum([b.ids for b in p], [])
    assert ids == [r["id"] for r in rows[:6]]
    assert p.stats.counts == {"unreadable": 2, "too_short": 1}
    assert "skipped 3 row(s)" in caplog.text
    strict = build_pipeline(bad, cfg(strict=True), collate=collate_audio_text, train=False)
    with pytest.raises(AudioDecodeError, match="nope.wav"):
        list(strict)


def test_crop_is_seeded_and_centred():
    x = torch.arange(100.0)
    assert torch.equal(crop(x, 10, train=False, seed=0), torch.arange(45.0, 55.0))
    assert torch.equal(crop(x, 10, train=True, seed=7), crop(x, 10, train=True, seed=7))
    assert crop(x, 200, train=True, seed=1) is x


def test_collate_and_padding(rows):
    a, n = pad_right([torch.ones(3), torch.ones(5)], multiple_of=4)
    assert a.shape == (2, 8) and n.tolist() == [3, 5] and a[0, 3:].sum() == 0
    with pytest.raises(ValueError, match="label"):
        collate_intent([{"id": "x", "wave": torch.ones(3), "row": {"id": "x"}}])
    b = next(iter(build_pipeline(rows, cfg(), collate=collate_audio_text, train=False)))
    assert b.to("cpu").captions[0] == ["clip 0"] and len(b) == 4


def test_crops_before_resampling_and_yields_exact_lengths(tmp_path):
    """A long 44.1 kHz file is cropped at its own rate, then resampled: exactly max_seconds at 16 kHz,
    and the eval (centre) crop equals the centre of the fully resampled file away from the edges."""
    from avsuite.audio.resample import resample

    t = np.arange(44100 * 30) / 44100
    sf.write(tmp_path / "long.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
    row = {"id": "long", "audio": str(tmp_path / "long.wav"), "captions": ["a tone"]}
    c = DataConfig(sample_rate=16000, max_seconds=2.0, batch_size=1)
    (b,) = list(build_pipeline([row], c, collate=collate_audio_text, train=False))
    assert b.audio.shape == (1, 32000)
    full = resample(torch.from_numpy(sf.read(tmp_path / "long.wav", dtype="float32")[0]), 44100, 16000)
    centre = full[(full.shape[0] - 32000) // 2:][:32000]
    # the native-rate centre may sit up to one 44.1 kHz sample off: <= 0.06 rad of a 440 Hz tone at 0.3
    assert (b.audio[0, 100:-100] - centre[100:-100]).abs().max() < 5e-2


def test_pad_right_pads_features_along_the_last_dim():
    a, n = pad_right([torch.ones(2, 3), 2 * torch.ones(2, 5)])
    assert a.shape == (2, 2, 5) and n.tolist() == [3, 5]
    assert a[0, :, 3:].abs().sum() == 0 and torch.equal(a[1], 2 * torch.ones(2, 5))
    with pytest.raises(ValueError, match="leading shape"):
        pad_right([torch.ones(2, 3), torch.ones(3, 3)])
