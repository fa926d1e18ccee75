"""Compositions: determinism (from a generator), lengths, captions/negatives, SNR, loudness, no clipping."""

from __future__ import annotations

import math

import pytest
import torch

from avsuite.data.compose import (
    PEAK,
    TARGET_DBFS,
    build_benchmark,
    compose_example,
    concat,
    concat_captions,
    event_name,
    overlay,
    overlay_captions,
    rms_dbfs,
    stage_captions,
)

SR = 8000


def tone(freq, seconds, amp=0.3, seed=0):
    t = torch.arange(int(seconds * SR)) / SR
    noise = torch.randn(t.numel(), generator=torch.Generator().manual_seed(seed)) * 0.01
    return (amp * torch.sin(2 * math.pi * freq * t) + noise).float()


def rows():
    return [
        {"id": "dog", "label": "dog barking", "wave": tone(300, 0.5, 0.5)},
        {"id": "bell", "label": "bell", "wave": tone(900, 0.3, 0.05, seed=1)},
        {"id": "rain", "captions": ["Rain falling."], "wave": tone(120, 0.7, 0.9, seed=2)},
    ]


def test_event_name():
    assert event_name({"captions": ["A red kangaroo."]}) == "a red kangaroo"
    assert event_name({"label": "Dog", "text": "ignored"}) == "dog"
    with pytest.raises(ValueError, match="no label"):
        event_name({"id": "x"})


def test_concat_length_order_and_loudness():
    a, b = tone(300, 0.5, 0.8), tone(900, 0.3, 0.01, seed=1)
    w = concat(a, b, SR, gap_s=0.25)
    assert w.shape == (a.numel() + int(0.25 * SR) + b.numel(),)
    gap = w[a.numel() : a.numel() + int(0.25 * SR)]
    assert torch.all(gap == 0)
    # each part normalised to the same loudness (no peak limiting needed at -20 dBFS)
    assert rms_dbfs(w[: a.numel()]) == pytest.approx(TARGET_DBFS, abs=1e-4)
    assert rms_dbfs(w[-b.numel():]) == pytest.approx(TARGET_DBFS, abs=1e-4)
    # a scaled input gives the same result: loudness is normalised before mixing
    assert torch.allclose(concat(a * 3, b, SR, 0.25), w, atol=1e-6)


@pytest.mark.parametrize("snr", [-6.0, 0.0, 10.0])
def test_overlay_snr_and_length(snr):
    a, b = tone(300, 0.5), tone(900, 0.3, seed=1)
    mix, pa, pb = overlay(a, b, snr, offset=400, return_parts=True)
    assert mix.shape == (a.numel(),)
    assert torch.allclose(mix, pa + pb)
    # SNR over each source's own samples
    got = rms_dbfs(pa[: a.numel()]) - rms_dbfs(pb[400 : 400 + b.numel()])
    assert got == pytest.approx(snr, abs=1e-3)
    assert torch.all(pb[:400] == 0) and torch.all(pb[400 + b.numel():] == 0)
    assert overlay(a, b, 0.0, offset=a.numel()).numel() == 2 * a.numel() - a.numel() + b.numel()


def test_never_clips_peak_limits_instead():
    a, b = tone(300, 0.5), tone(301, 0.5, seed=1)
    # b 30 dB above a: b alone would peak at ~0.14 * 31.6 >> 1 -> the mix must be scaled down
    mix, pa, pb = overlay(a, b, -30.0, return_parts=True)
    assert mix.abs().max() == pytest.approx(PEAK, abs=1e-6)
    assert rms_dbfs(pa) - rms_dbfs(pb) == pytest.approx(-30.0, abs=1e-3)  # ratio kept: no clipping
    spike = torch.zeros(4000)
    spike[100] = 1.0  # RMS-normalising an impulse makes a peak of ~6.3
    w = concat(spike, a, SR, 0.1)
    assert w.abs().max() == pytest.approx(PEAK, abs=1e-6)
    assert rms_dbfs(w[:4000]) - rms_dbfs(w[-a.numel():]) == pytest.approx(0.0, abs=1e-3)


def test_captions_and_negatives():
    pos, neg = concat_captions("dog", "bell")
    assert pos[0] == "dog followed by bell" and "bell after dog" in pos
    assert "bell followed by dog" in neg and "dog after bell" in neg  # order swaps
    assert "dog with bell" in neg  # operator swap
    assert not set(pos) & set(neg)
    opos, oneg = overlay_captions("dog", "bell")
    assert opos[0] == "dog with bell" and "bell and dog at the same time" in opos
    assert "dog followed by bell" in oneg and "bell followed by dog" in oneg
    assert not set(opos) & set(oneg)
    p, n = stage_captions("concat", "dog", "bell", "teminal_a")
    assert p == pos and n == ["dog", "bell"]
    p, n = stage_captions("single", "dog", None, "teminal_a", other="bell")
    assert p == ["dog"] and n == ["dog followed by bell", "bell followed by dog", "dog with bell"]
    assert stage_captions("single", "dog", None, "compa", other="bell") == (["dog"], [])
    with pytest.raises(ValueError, match="stage"):
        stage_captions("concat", "a", "b", "bogus")


def _example(kind, stage="compa", seed=0, a=None, b=None):
    a = tone(300, 0.5, 0.5) if a is None else a
    b = tone(900, 0.3, 0.05, seed=1) if b is None else b
    return compose_example(kind, a, b, "dog", "bell", stage, sr=SR, gen=torch.Generator().manual_seed(seed),
                           gap_s=(0.1, 0.5))


def test_compose_example_from_waves_is_a_function_of_the_generator():
    a, b = tone(300, 0.5, 0.5), tone(900, 0.3, 0.05, seed=1)
    for kind in ("concat", "overlay", "single"):
        e1, e2 = _example(kind, seed=4), _example(kind, seed=4)
        assert torch.equal(e1["wave"], e2["wave"]) and e1["captions"] == e2["captions"]
        assert e1["wave"].abs().max() <= PEAK + 1e-6 and not set(e1["captions"]) & set(e1["negatives"])
    gaps = {_example("concat", seed=s)["wave"].numel() - a.numel() - b.numel() for s in range(8)}
    assert len(gaps) > 1 and all(int(0.1 * SR) <= g <= int(0.5 * SR) + 1 for g in gaps)
    c = _example("concat")
    assert c["captions"] == concat_captions("dog", "bell")[0] and c["labels"] == ("dog", "bell")
    o = _example("overlay")
    assert o["captions"] == overlay_captions("dog", "bell")[0] and o["wave"].numel() == a.numel()
    s1 = _example("single")
    assert s1["captions"] == ["dog"] and s1["negatives"] == [] and s1["wave"].numel() == a.numel()
    assert rms_dbfs(s1["wave"]) == pytest.approx(TARGET_DBFS, abs=1e-3)


def test_compose_example_stages_and_errors():
    assert _example("concat", "teminal_a")["negatives"] == ["dog", "bell"]
    single = _example("single", "teminal_a")
    assert single["negatives"] == ["dog followed by bell", "bell followed by dog", "dog with bell"]
    assert "bell followed by dog" in _example("concat", "teminal_b")["negatives"]
    with pytest.raises(ValueError, match="two waves"):
        compose_example("concat", tone(300, 0.5), None, "dog", "bell", "compa", sr=SR, gen=torch.Generator())
    with pytest.raises(ValueError, match="kind"):
        _example("mix")


@pytest.mark.parametrize("kind", ["order", "temporal", "attribute"])
def test_benchmark_sets(kind):
    sets = build_benchmark(rows(), 3, seed=1, kind=kind, sr=SR)
    again = build_benchmark(rows(), 3, seed=1, kind=kind, sr=SR)
    assert len(sets) == 3 and len({frozenset(s["ids"]) for s in sets}) == 3
    for s, t in zip(sets, again):
        assert s["texts"] == t["texts"] and all(torch.equal(u, v) for u, v in zip(s["audios"], t["audios"]))
        x, y = s["labels"]
        t0, t1 = s["texts"]
        assert t0 != t1
        if kind == "temporal":  # differ only in the operator
            assert t0.replace(" before ", " while ") == t1
        else:  # same words, different binding / order
            assert sorted(t0.split()) == sorted(t1.split())
        for w in s["audios"]:
            assert w.abs().max() <= PEAK + 1e-6
    s = sets[0]
    x, y = s["labels"]
    w0, w1 = s["audios"]
    if kind == "order":
        assert s["texts"] == (f"{x} followed by {y}", f"{y} followed by {x}") and w0.numel() == w1.numel()
    elif kind == "temporal":
        assert s["texts"] == (f"{x} before {y}", f"{x} while {y}") and w1.numel() < w0.numel()
    else:
        n = w0.numel()
        first = slice(0, n // 4)  # inside clip x in both audios
        assert rms_dbfs(w0[first]) - rms_dbfs(w1[first]) == pytest.approx(18.0, abs=0.5)


def test_benchmark_errors():
    with pytest.raises(ValueError, match="distinct clip pairs"):
        build_benchmark(rows(), 4, kind="order", sr=SR)
    with pytest.raises(ValueError, match="kind"):
        build_benchmark(rows(), 1, kind="pitch", sr=SR)
