"""The one reader: exact mid-epoch resume, rank slices of global batches (disjoint, covering, equal to
the single-process batch), bad rows skipped and counted (or fatal in strict mode), seeded crops read
as windows, length bucketing, label-distinct and replay plans, the on-disk cache, streaming rows."""

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.audio.io import AudioDecodeError
from avsuite.data.batches import collate_audio_text, collate_intent, pad_right
from avsuite.data.pipeline import DataConfig, Reader
from avsuite.data.rows import ManifestRows
from avsuite.data.sampling import LabelDistinctBatches, ReplayMix, ShuffledBatches


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
    return DataConfig(**{**dict(sample_rate=8000, batch_size=4, crop_seconds=0.5, seed=3,
                                num_parallel_calls=2), **kw})


@pytest.mark.parametrize("bucket", [False, True])
@pytest.mark.parametrize("stop_after", [1, 4])
def test_exact_resume_mid_epoch(rows, bucket, stop_after):
    c = cfg(bucket_by_length=bucket)
    full = batches(Reader(rows, c, collate=collate_audio_text, train=True, epoch=2))
    p = Reader(rows, c, collate=collate_audio_text, train=True, epoch=2)
    it = iter(p)
    head = [next(it) for _ in range(stop_after)]
    state = p.state_dict()
    q = Reader(rows, c, collate=collate_audio_text, train=True)     # a fresh process
    q.load_state_dict(state)
    rest = batches(q)
    got = [(b.ids, b.audio) for b in head] + rest
    assert [ids for ids, _ in got] == [ids for ids, _ in full]
    for (_, a), (_, b) in zip(got, full):
        assert torch.equal(a, b)   # same random crops too


def test_lookahead_reports_the_consumed_position(rows):
    p = Reader(rows, cfg(), collate=collate_audio_text, train=True, lookahead=1)
    it = iter(p)
    next(it), next(it), next(it)
    assert p.state_dict()["consumed"] == 2


@pytest.mark.parametrize("kw", [{}, {"drop_last": True}, {"bucket_by_length": True, "batch_size": 2},
                                {"bucket_by_length": True, "drop_last": True, "batch_size": 3}])
def test_len_is_exact(rows, kw):
    for world in (1, 2):
        p = Reader(rows, cfg(**kw), collate=collate_audio_text, train=True, rank=0, world_size=world)
        assert len(p) == len(p.batch_plan()) == len(list(p))


def test_state_at_the_end_of_an_epoch_starts_the_next(rows):
    p = Reader(rows, cfg(), collate=collate_audio_text, train=True)
    it = iter(p)
    e0 = [next(it).ids for _ in range(len(p))]
    q = Reader(rows, cfg(), collate=collate_audio_text, train=True)
    q.load_state_dict(p.state_dict())        # consumed == len: the generator has not finished yet
    e1 = [b.ids for b in q]
    ref = Reader(rows, cfg(), collate=collate_audio_text, train=True, epoch=1)
    assert e1 == [b.ids for b in ref] and e1 != e0


def test_epochs_reshuffle_and_eval_is_ordered(rows):
    p = Reader(rows, cfg(), collate=collate_audio_text, train=True)
    e0, e1 = [b.ids for b in p], [b.ids for b in p]
    assert e0 != e1 and sorted(sum(e0, [])) == sorted(sum(e1, [])) == sorted(r["id"] for r in rows)
    ev = Reader(rows, cfg(), collate=collate_audio_text, train=False)
    assert sum([b.ids for b in ev], []) == [r["id"] for r in rows]


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("kw", [{}, {"bucket_by_length": True}])
def test_rank_slices_are_the_single_process_global_batches(rows, world, kw):
    """Rank r's batch k is slice r of global batch k: disjoint, equal counts, and their union is
    batch k of one process with batch_size * world (so a DDP step sees the global batch)."""
    ranks = [Reader(rows, cfg(**kw), collate=collate_audio_text, train=True, rank=r, world_size=world).batch_plan()
             for r in range(world)]
    single = Reader(rows, cfg(batch_size=4 * world, **kw), collate=collate_audio_text, train=True).batch_plan()
    assert len({len(p) for p in ranks}) == 1                    # same number of steps: no DDP hang
    for k, parts in enumerate(zip(*ranks)):
        flat = sum(map(list, parts), [])
        assert len(flat) == len(set(flat))                      # disjoint
        assert sorted(flat) == sorted(single[k])                # union = the global batch
    assert len(single) - len(ranks[0]) <= 1                     # at most a too-small last batch is dropped
    with pytest.raises(ValueError):
        Reader(rows, cfg(), collate=collate_audio_text, train=True, rank=2, world_size=2)


def test_label_distinct_and_replay_plans(rows):
    src = ManifestRows.from_rows(rows)
    plan = LabelDistinctBatches(seed=1).plan(src, 0, 3)
    assert plan and all(len({src.labels[i] for i in b}) == 3 for b in plan)
    assert plan == LabelDistinctBatches(seed=1).plan(src, 0, 3) != LabelDistinctBatches(seed=1).plan(src, 1, 3)
    mix = ReplayMix(ShuffledBatches(seed=0, include=list(range(10))), k=2, seed=0, memory=[20, 21, 22])
    plan = mix.plan(src, 0, 4)
    assert all(i < 10 for b in plan for i in b if not isinstance(i, tuple))
    assert all(sum(isinstance(i, tuple) for i in b) == 2 for b in plan)
    r = Reader(src, cfg(), collate=lambda ex: ex, train=True, sampler=mix)
    got = [e for b in r for e in b]
    assert sum(e["replay"] for e in got) == 2 * len(plan) and all(e["index"] >= 20 for e in got if e["replay"])
    state = r.state_dict()
    fresh = ReplayMix(ShuffledBatches(seed=0, include=list(range(10))), k=2, seed=0)
    Reader(src, cfg(), collate=lambda ex: ex, train=True, sampler=fresh).load_state_dict(state)
    assert fresh.memory == [20, 21, 22]


def test_manifest_rows_stream_and_equal_read_manifest(rows, tmp_path):
    from avsuite.data.manifest import ManifestError, read_manifest, write_manifest

    path = write_manifest([{**r, "audio": r["audio"]} for r in rows], tmp_path / "m.jsonl")
    src = ManifestRows.from_path(path)
    assert list(src) == read_manifest(path) and len(src) == len(rows)
    assert src.label_of(4) == rows[4]["label"] and src.durations[4] == rows[4]["duration"]
    (tmp_path / "bad.jsonl").write_text(path.read_text() + '{"id": "c00", "audio": "x.wav"}\n[1]\n')
    with pytest.raises(ManifestError, match=r"bad.jsonl:31: duplicate id 'c00'[\s\S]*bad.jsonl:32"):
        ManifestRows.from_path(tmp_path / "bad.jsonl")


def test_cache_and_window_reads_equal_full_decode(rows, tmp_path):
    plain = [b.audio for b in Reader(rows, cfg(), collate=collate_audio_text, train=True)]
    cached = Reader(rows, cfg(cache_dir=str(tmp_path / "cache")), collate=collate_audio_text, train=True)
    first = [b.audio for b in cached]
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == len(rows)
    cached.epoch = 0
    again = [b.audio for b in cached]                           # every read is a memory-mapped hit
    for a, b, c in zip(plain, first, again):
        assert torch.equal(a, b) and torch.equal(b, c)


def test_bad_rows_are_skipped_and_counted(rows, tmp_path, caplog):
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    bad = rows[:6] + [{"id": "missing", "audio": str(tmp_path / "nope.wav")},
                      {"id": "junk", "audio": str(tmp_path / "junk.wav")},
                      {"id": "tiny", "audio": rows[0]["audio"], "duration": 0.01}]
    p = Reader(bad, cfg(min_seconds=0.1), collate=collate_audio_text, train=False)
    assert p.stats.counts == {"too_short": 1}                      # manifest durations: filtered up front
    ids = sum([b.ids for b in p], [])
    assert ids == [r["id"] for r in rows[:6]]
    assert p.stats.counts == {"unreadable": 2, "too_short": 1}
    assert "skipped 3 row(s)" in caplog.text
    strict = Reader(bad, cfg(strict=True), collate=collate_audio_text, train=False)
    with pytest.raises(AudioDecodeError, match="nope.wav"):
        list(strict)


def test_collate_and_padding(rows):
    a, n = pad_right([torch.ones(3), torch.ones(5)], multiple_of=4)
    assert a.shape == (2, 8) and n.tolist() == [3, 5] and a[0, 3:].sum() == 0
    with pytest.raises(ValueError, match="label"):
        collate_intent([{"id": "x", "wave": torch.ones(3), "row": {"id": "x"}}])
    b = next(iter(Reader(rows, cfg(), collate=collate_audio_text, train=False)))
    assert b.to("cpu").captions[0] == ["clip 0"] and len(b) == 4


def test_crops_before_resampling_and_yields_exact_lengths(tmp_path):
    """A long 44.1 kHz file is cropped at its own rate, then resampled: exactly crop_seconds at 16 kHz,
    and the eval (centre) crop equals the centre of the fully resampled file away from the edges."""
    from avsuite.audio.resample import resample

    t = np.arange(44100 * 30) / 44100
    sf.write(tmp_path / "long.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
    row = {"id": "long", "audio": str(tmp_path / "long.wav"), "captions": ["a tone"]}
    c = DataConfig(sample_rate=16000, crop_seconds=2.0, batch_size=1)
    (b,) = list(Reader([row], c, collate=collate_audio_text, train=False))
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


@pytest.mark.parametrize("kw", [{}, {"bucket_by_length": True}])
def test_parallel_loading_yields_exactly_the_serial_batches(rows, kw):
    """Thread count and prefetch depth change nothing: the same batches, order and crop bytes."""
    serial = batches(Reader(rows, cfg(num_parallel_calls=1, prefetch=0, **kw), collate=collate_audio_text,
                            train=True, epoch=1))
    parallel = batches(Reader(rows, cfg(num_parallel_calls=4, prefetch=3, **kw), collate=collate_audio_text,
                              train=True, epoch=1))
    assert [i for i, _ in serial] == [i for i, _ in parallel] and len(serial) == 8
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(serial, parallel))


def test_worker_processes_yield_the_thread_batches_over_epochs_and_resume(rows):
    """num_workers > 0 (decode in persistent worker processes): the same batches, order and crop bytes
    as the threads, in every epoch; a mid-epoch state resumes exactly in a fresh worker Reader."""
    threads = Reader(rows, cfg(), collate=collate_audio_text, train=True)
    ref = [batches(threads), batches(threads)]                        # epochs 0 and 1
    procs = Reader(rows, cfg(num_workers=2), collate=collate_audio_text, train=True)
    got = [batches(procs), batches(procs)]                            # the same two worker processes
    for r, g in zip(ref, got):
        assert [i for i, _ in r] == [i for i, _ in g] and len(r) == 8
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(r, g))
    it = iter(procs)                                                  # epoch 2, stopped after 3 batches
    head = [next(it) for _ in range(3)]
    q = Reader(rows, cfg(num_workers=1, prefetch=0), collate=collate_audio_text, train=True)
    q.load_state_dict(procs.state_dict())
    rest = batches(q)
    full = batches(Reader(rows, cfg(), collate=collate_audio_text, train=True, epoch=2))
    assert [b.ids for b in head] + [i for i, _ in rest] == [i for i, _ in full]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(rest, full[3:]))


def test_worker_processes_count_skips_and_raise_strict_errors_as_themselves(rows, tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    bad = rows[:6] + [{"id": "missing", "audio": str(tmp_path / "nope.wav")},
                      {"id": "junk", "audio": str(tmp_path / "junk.wav")}]
    p = Reader(bad, cfg(num_workers=2), collate=collate_audio_text, train=False)
    assert sum([b.ids for b in p], []) == [r["id"] for r in rows[:6]]
    assert p.stats.counts == {"unreadable": 2} and len(p.stats.examples) == 2
    strict = Reader(bad, cfg(strict=True, num_workers=2), collate=collate_audio_text, train=False)
    with pytest.raises(AudioDecodeError, match="nope.wav") as err:
        list(strict)
    assert "Traceback" not in str(err.value)
    with pytest.raises(ValueError, match="num_workers"):
        cfg(num_workers=-1)
