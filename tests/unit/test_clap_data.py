"""The clap data path on the one reader: plans (label-distinct / shuffled / compositions), the load
function (crop, gain, caption, compositions: all from the item's generator), collate, config checks."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.config import ConfigError
from avsuite.data.pipeline import Reader
from avsuite.data.rows import ManifestRows
from avsuite.data.sampling import LabelDistinctBatches, ShuffledBatches
from avsuite.recipes import clap
from avsuite.recipes.clap_data import (ClapBatch, ClapDataConfig, ClapLoad, ComposeConfig, ComposeMix, collate,
                                       datamodule, make_sampler)

SR = 8000


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    d = tmp_path_factory.mktemp("clap_data")
    rng = np.random.default_rng(0)
    out = []
    for li, label in enumerate(["hum", "whistle", "beep", "buzz", "noise", "click"]):
        for k in range(3):
            n = int(SR * rng.uniform(0.6, 1.4))
            x = np.sin(2 * np.pi * (150 + 300 * li) * np.arange(n) / SR) * 0.3 + rng.normal(size=n) * 0.01
            sf.write(d / f"{label}{k}.wav", x.astype(np.float32), SR)
            out.append({"id": f"{label}{k}", "audio": str(d / f"{label}{k}.wav"), "duration": n / SR,
                        "label": label, "captions": [f"a {label}", f"the {label} sound"]})
    return out


def _cfg(**kw) -> ClapDataConfig:
    return ClapDataConfig(**{"sample_rate": SR, "batch_size": 4, "crop_seconds": 0.5, "seed": 3, **kw})


def _reader(rows, cfg, compose=ComposeConfig(), **kw) -> Reader:
    return Reader(rows, cfg, train=True, collate=collate, sampler=make_sampler(cfg, compose),
                  load=ClapLoad(compose.mode if compose.mode != "none" else "compa", compose.gap_seconds), **kw)


def test_sampler_choice():
    assert isinstance(make_sampler(_cfg(), ComposeConfig()), LabelDistinctBatches)
    assert isinstance(make_sampler(_cfg(label_distinct=False), ComposeConfig()), ShuffledBatches)
    mix = make_sampler(_cfg(), ComposeConfig(mode="compa"))
    assert isinstance(mix, ComposeMix) and isinstance(mix.base, LabelDistinctBatches)


def test_compose_mix_plan_is_seeded_and_replaces_slots(rows):
    mr = ManifestRows.from_rows(rows)
    mix = ComposeMix(LabelDistinctBatches(seed=1), prob=0.5, seed=1)
    base = LabelDistinctBatches(seed=1).plan(mr, 0, 6)
    plan = mix.plan(mr, 0, 6)
    assert plan == mix.plan(mr, 0, 6) and plan != mix.plan(mr, 1, 6)
    composed = [it for b in plan for it in b if isinstance(it, tuple)]
    assert 0.25 < len(composed) / sum(map(len, plan)) < 0.75
    for b0, b1 in zip(base, plan):                      # the slot keeps its row as the first event
        for i, item in zip(b0, b1):
            if isinstance(item, tuple):
                tag, kind, first, other = item
                assert tag == "compose" and kind in ("concat", "overlay", "single") and first == i
                assert mr.labels[other] != mr.labels[first]
            else:
                assert item == i
    assert ComposeMix(LabelDistinctBatches(seed=1), prob=0.0).plan(mr, 0, 6) == base


def test_clip_batches_are_seeded_cropped_and_captioned(rows):
    cfg = _cfg(gain_db=6.0)
    one = list(_reader(rows, cfg))
    again = list(_reader(rows, _cfg(gain_db=6.0, num_parallel_calls=1, prefetch=0)))
    assert all(isinstance(b, ClapBatch) for b in one) and len(one) == len(rows) // 4   # drop_last
    for a, b in zip(one, again):                          # same bytes whatever the thread count
        assert a.ids == b.ids and a.captions == b.captions and torch.equal(a.audio, b.audio)
    by_id = {r["id"]: r for r in rows}
    for batch in one:
        assert batch.audio.shape[1] == int(0.5 * SR) and batch.lengths.max() == int(0.5 * SR)
        assert len(set(batch.labels)) == len(batch)       # label-distinct
        for i, cap, negs in zip(batch.ids, batch.captions, batch.negatives):
            assert len(cap) == 1 and cap[0] in by_id[i]["captions"] and negs == []
    caps = [c[0] for b in one for c in b.captions]
    assert len(set(caps)) > len({r["label"] for r in rows})     # the caption is drawn, not always the first
    flat = _reader(rows, _cfg(gain_db=0.0))
    peak = {i: float(a.abs().max()) for b in flat for i, a in zip(b.ids, b.audio)}
    gained = {i: float(a.abs().max()) for b in one for i, a in zip(b.ids, b.audio)}
    ratios = [gained[i] / peak[i] for i in gained if i in peak]
    assert ratios and all(10 ** (-6.5 / 20) < r < 10 ** (6.5 / 20) for r in ratios)
    assert any(abs(r - 1) > 0.05 for r in ratios)


def test_composition_items(rows):
    cfg = _cfg(crop_seconds=1.0, label_distinct=False)
    reader = _reader(rows, cfg, ComposeConfig(mode="compa", prob=1.0))
    plans = reader.batch_plan()                            # epoch 0 (iterating advances the epoch)
    batches = list(reader)
    items = [it for b in plans for it in b]
    assert all(isinstance(it, tuple) for it in items)
    kinds = {it[1] for it in items}
    assert kinds == {"concat", "overlay", "single"}
    for b, plan in zip(batches, plans):
        assert b.audio.shape[1] <= SR                      # cut to crop_seconds
        for item, ident, negs, cap, label in zip(plan, b.ids, b.negatives, b.captions, b.labels):
            x, y = rows[item[2]]["label"], rows[item[3]]["label"]
            if item[1] == "single":
                assert ident == rows[item[2]]["id"] and cap == [x] and negs == []
            else:
                assert ident.count("+") == 1 and label == f"{x}+{y}" and negs and cap[0] not in negs
                assert x in cap[0] and y in cap[0]
    again = list(_reader(rows, _cfg(crop_seconds=1.0, label_distinct=False, num_parallel_calls=1),
                         ComposeConfig(mode="compa", prob=1.0)))
    assert all(torch.equal(a.audio, b.audio) and a.captions == b.captions for a, b in zip(batches, again))
    stage_a = list(_reader(rows, cfg, ComposeConfig(mode="teminal_a", prob=1.0)))
    for b, plan in zip(stage_a, plans):
        for item, negs in zip(plan, b.negatives):
            if item[1] != "single":
                assert negs == [rows[item[2]]["label"], rows[item[3]]["label"]]


def test_rows_without_caption_are_skipped_and_counted(rows):
    bare = [dict(r) for r in rows]
    for r in bare[:3]:
        del r["captions"], r["label"]
    reader = _reader(bare, _cfg(label_distinct=False, drop_last=False))
    seen = [i for b in reader for i in b.ids]
    assert len(seen) == len(rows) - 3 and reader.stats.counts["no_caption"] == 3


def test_datamodule_fails_early_without_a_batch(rows):
    with pytest.raises(ValueError, match="no training batch"):
        datamodule(_cfg(batch_size=64), ComposeConfig(), train=rows)
    assert datamodule(_cfg(batch_size=64, drop_last=False, label_distinct=False), ComposeConfig(), train=rows)


def test_config_checks_rate_and_moved_keys():
    with pytest.raises(ConfigError, match="frontend expects 16000"):
        clap.load(None, ["data.sample_rate=48000"])
    for key in ("preload=true", "label_unique_batches=true", "gain_db=3.0"):
        with pytest.raises(ConfigError, match="unknown key"):
            clap.load(None, [key])
    cfg = clap.load("configs/clap/tiny.yaml")
    assert cfg.data.crop_seconds == 3.0 and cfg.data.max_seconds is None and cfg.data.label_distinct
    base = clap.load("configs/clap/base.yaml")
    assert base.data.sample_rate == base.frontend.sample_rate == 48000 and not base.data.label_distinct
    with pytest.raises(ConfigError, match="gain_db"):
        clap.load(None, ["data.gain_db=-1"])


def test_training_and_eval_use_the_model_input_rate():
    """A frontend that resamples inside the model: data is decoded at its INPUT rate, and the model
    (hence eval, zeroshot, retrieve, which decode at ``model.sample_rate``) expects that same rate."""
    from avsuite.models.clap import ClapModel

    cfg = clap.load(None, ["frontend.input_sample_rate=48000", "data.sample_rate=48000", "model.text=small_tiny",
                           "model.freeze_text=false", "model.embed_dim=32"])
    with pytest.raises(ConfigError, match="frontend expects 48000"):
        clap.load(None, ["frontend.input_sample_rate=48000"])
    model = ClapModel(cfg.model, cfg.frontend, pretrained_text=False)
    assert model.sample_rate == cfg.data.sample_rate == 48000
    exported = model.export_config()
    assert exported["frontend"]["input_sample_rate"] == 48000 and exported["model"]["max_seconds"] == cfg.model.max_seconds
