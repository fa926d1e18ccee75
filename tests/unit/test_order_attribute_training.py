"""Issue 12: training data that contains what the CompA-order / attribute benchmarks test, and a
text tower that can tell swapped captions apart.

- attribute compositions: the audio really is "loud x then quiet y" (level difference = 2 x gain,
  x first), the caption says so, the attribute-swapped caption is the first hard negative;
- order compositions put x first and carry the order-swapped caption as a hard negative;
- the clap reader draws only the configured composition kinds;
- the order-aware text head starts as the plain mean pooling and, trained on the hard negatives,
  pulls "x followed by y" / "y followed by x" apart where the mean-pooled tower cannot.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.data.compose import (ATTRIBUTE_GAIN_DB, ATTRIBUTE_TEMPLATES, PEAK, TARGET_DBFS, attribute_captions,
                                  attribute_concat, build_benchmark, compose_example, concat, rms_dbfs, word_swaps)
from avsuite.data.pipeline import Reader
from avsuite.recipes.clap_data import ClapDataConfig, ClapLoad, ComposeConfig, collate, make_sampler

SR = 8000


def tone(freq, seconds, amp=0.3, seed=0):
    t = torch.arange(int(seconds * SR)) / SR
    noise = torch.randn(t.numel(), generator=torch.Generator().manual_seed(seed)) * 0.01
    return (amp * torch.sin(2 * math.pi * freq * t) + noise).float()


def _band_db(w: torch.Tensor, freq: float) -> float:
    """Level (dB) of the band around ``freq`` in ``w``: which event is where, and how loud."""
    spec = torch.fft.rfft(w.double()).abs()
    f = torch.fft.rfftfreq(w.numel(), 1 / SR)
    return 20 * math.log10(float(spec[(f - freq).abs() < 30].sum()) + 1e-12)


def test_attribute_concat_levels_order_and_gap():
    a, b = tone(300, 0.5, 0.8), tone(900, 0.4, 0.2, seed=1)
    gap = int(0.25 * SR)
    w = attribute_concat(a, b, SR, 0.25, 9.0)
    assert w.shape == (a.numel() + gap + b.numel(),)
    assert torch.all(w[a.numel():a.numel() + gap] == 0)
    first, second = w[:a.numel()], w[-b.numel():]
    assert rms_dbfs(first) - rms_dbfs(second) == pytest.approx(18.0, abs=1e-3)   # loud x, quiet y
    assert _band_db(first, 300) > _band_db(first, 900) + 20                      # x (300 Hz) comes first
    assert _band_db(second, 900) > _band_db(second, 300) + 20
    flipped = attribute_concat(a, b, SR, 0.25, -9.0)                             # quiet x, loud y
    assert rms_dbfs(flipped[:a.numel()]) - rms_dbfs(flipped[-b.numel():]) == pytest.approx(-18.0, abs=1e-3)
    # loud part at TARGET + gain unless the peak limiter scaled both (then the difference still holds)
    assert rms_dbfs(first) <= TARGET_DBFS + 9.0 + 1e-3 and w.abs().max() <= PEAK + 1e-6
    # gain 0 is the plain concatenation
    assert torch.allclose(attribute_concat(a, b, SR, 0.25, 0.0), concat(a, b, SR, 0.25), atol=1e-7)
    with pytest.raises(ValueError, match="gain_db"):
        attribute_concat(a, b, SR, 0.25, float("nan"))


def test_benchmark_attribute_sets_are_the_training_signal_at_9_db():
    rows = [{"id": "lo", "label": "hum", "wave": tone(300, 0.5)}, {"id": "hi", "label": "bell", "wave": tone(900, 0.4, seed=1)}]
    s = build_benchmark(rows, 1, seed=0, kind="attribute", sr=SR)[0]
    x, y = s["labels"]
    a, b = (rows[0]["wave"], rows[1]["wave"]) if x == "hum" else (rows[1]["wave"], rows[0]["wave"])
    assert torch.equal(s["audios"][0], attribute_concat(a, b, SR, 0.25, ATTRIBUTE_GAIN_DB))
    assert torch.equal(s["audios"][1], attribute_concat(a, b, SR, 0.25, -ATTRIBUTE_GAIN_DB))
    assert s["texts"] == tuple(t.format(x=x, y=y) for t in ATTRIBUTE_TEMPLATES)


def test_attribute_captions_hard_negative_is_the_benchmark_swap():
    pos, neg = attribute_captions("dog", "bell", loud_first=True)
    assert pos[0] == ATTRIBUTE_TEMPLATES[0].format(x="dog", y="bell")
    assert neg[0] == ATTRIBUTE_TEMPLATES[1].format(x="dog", y="bell")           # the swapped binding
    assert "a quiet bell followed by a loud dog" in neg                           # order swap, same binding
    assert "a quiet bell after a loud dog" in pos and not set(pos) & set(neg)
    qpos, qneg = attribute_captions("dog", "bell", loud_first=False)
    assert qpos[0] == neg[0] and qneg[0] == pos[0]


@pytest.mark.parametrize("stage", ["compa", "teminal_b"])
def test_attribute_examples_have_the_stated_gains(stage):
    a, b = tone(300, 0.5, 0.5), tone(900, 0.3, 0.05, seed=1)
    seen = set()
    for seed in range(12):
        ex = compose_example("attribute", a, b, "hum", "bell", stage, sr=SR, gen=torch.Generator().manual_seed(seed),
                             gap_s=(0.1, 0.3))
        again = compose_example("attribute", a, b, "hum", "bell", stage, sr=SR,
                                gen=torch.Generator().manual_seed(seed), gap_s=(0.1, 0.3))
        assert torch.equal(ex["wave"], again["wave"]) and ex["captions"] == again["captions"]
        w = ex["wave"]
        diff = rms_dbfs(w[:a.numel()]) - rms_dbfs(w[-b.numel():])
        loud_first = ex["captions"][0].startswith("a loud hum")
        assert ex["captions"][0] in (ATTRIBUTE_TEMPLATES[0].format(x="hum", y="bell"),
                                     ATTRIBUTE_TEMPLATES[1].format(x="hum", y="bell"))
        assert (12.0 - 1e-3 <= diff <= 24.0 + 1e-3) if loud_first else (-24.0 - 1e-3 <= diff <= -12.0 + 1e-3)
        assert ex["negatives"][0] == attribute_captions("hum", "bell", not loud_first)[0][0]
        assert _band_db(w[:a.numel()], 300) > _band_db(w[:a.numel()], 900)     # the named order
        seen.add(loud_first)
    assert seen == {True, False}
    assert compose_example("attribute", a, b, "hum", "bell", "teminal_a", sr=SR,
                           gen=torch.Generator())["negatives"] == ["hum", "bell"]


def test_order_examples_put_x_first_with_the_order_swap_as_negative():
    a, b = tone(300, 0.5, 0.5), tone(900, 0.3, 0.05, seed=1)
    ex = compose_example("concat", a, b, "hum", "bell", "compa", sr=SR, gen=torch.Generator().manual_seed(0))
    w = ex["wave"]
    assert _band_db(w[:a.numel()], 300) > _band_db(w[:a.numel()], 900) + 20
    assert _band_db(w[-b.numel():], 900) > _band_db(w[-b.numel():], 300) + 10
    assert ex["captions"][0] == "hum followed by bell" and ex["negatives"][0] == "bell followed by hum"
    # the word swaps (text_hard_negatives: swaps) are exactly the order swaps, not the operator swaps
    assert ex["swaps"] == ["bell followed by hum", "bell then hum", "bell before hum", "hum after bell"]
    over = compose_example("overlay", a, b, "hum", "bell", "compa", sr=SR, gen=torch.Generator())
    assert over["negatives"] and over["swaps"] == []
    attr = compose_example("attribute", a, b, "hum", "bell", "compa", sr=SR, gen=torch.Generator())
    assert attr["swaps"] == attr["negatives"]
    assert word_swaps(["x then y"], ["y then x", "x with y", "x"]) == ["y then x"]


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    d = tmp_path_factory.mktemp("attr_rows")
    out = []
    for li, label in enumerate(["hum", "whistle", "beep", "buzz"]):
        for k in range(2):
            x = np.sin(2 * np.pi * (200 + 400 * li) * np.arange(SR) / SR) * 0.3
            sf.write(d / f"{label}{k}.wav", x.astype(np.float32), SR)
            out.append({"id": f"{label}{k}", "audio": str(d / f"{label}{k}.wav"), "duration": 1.0,
                        "label": label, "captions": [f"a {label}"]})
    return out


def test_reader_draws_only_the_configured_kinds_and_attribute_items_are_built(rows):
    cfg = ClapDataConfig(sample_rate=SR, batch_size=4, crop_seconds=1.0, seed=3, label_distinct=False)
    compose = ComposeConfig(mode="compa", prob=1.0, kinds=("attribute", "concat"))
    reader = Reader(rows, cfg, train=True, collate=collate, sampler=make_sampler(cfg, compose),
                    load=ClapLoad("compa", compose.gap_seconds))
    plans = reader.batch_plan()
    batches = list(reader)
    assert {it[1] for b in plans for it in b} == {"attribute", "concat"}
    for b, plan in zip(batches, plans):
        for item, cap, negs, para, sw in zip(plan, b.captions, b.negatives, b.paraphrases, b.swaps):
            x, y = rows[item[2]]["label"], rows[item[3]]["label"]
            assert para != cap[0] and para not in negs                 # another positive: the text_hard anchor
            assert set(sw) <= set(negs) and sw
            if item[1] == "attribute":
                loud_first = cap[0].startswith(f"a loud {x}") or cap[0].endswith(f"after a loud {x}")
                assert para in attribute_captions(x, y, loud_first)[0] and cap[0] in attribute_captions(x, y, loud_first)[0]
                assert (" loud " in cap[0]) and (" quiet " in cap[0]) and x in cap[0] and y in cap[0]
                assert negs[0] in (ATTRIBUTE_TEMPLATES[0].format(x=x, y=y), ATTRIBUTE_TEMPLATES[1].format(x=x, y=y))
            else:
                assert f"{y} followed by {x}" in negs
    with pytest.raises(ValueError, match="kinds"):
        ComposeConfig(mode="compa", kinds=("concat", "pitch"))
    with pytest.raises(ValueError, match="kinds"):
        ComposeConfig(mode="compa", kinds=())


# ----------------------------------------------------------------------------- order-aware text head
def _text_tower(pool: str):
    from avsuite.models.clap import ClapModel, ClapModelConfig, tiny_frontend

    cfg = ClapModelConfig(audio="cnn14_tiny", text="minilm", freeze_text=False, text_trainable_layers=1,
                          text_pool=pool, text_segments=2, embed_dim=384, text_projection="identity")
    torch.manual_seed(0)
    return ClapModel(cfg, tiny_frontend())


def _swap_cos(model, pairs) -> float:
    model.eval()
    with torch.no_grad():
        t = model.encode_text([c for p in pairs for c in p]).view(len(pairs), 2, -1)
    return float((t[:, 0] * t[:, 1]).sum(-1).mean())


def test_text_head_starts_as_mean_pooling_and_learns_to_separate_order_swaps():
    from avsuite.losses import compa_loss

    events = ["dog", "bell", "rain", "car horn", "drum", "whistle"]
    train = [(f"{x} followed by {y}", f"{y} followed by {x}") for i, x in enumerate(events[:4]) for y in events[i + 1:4]]
    held = [(f"{x} followed by {y}", f"{y} followed by {x}") for x, y in (("drum", "whistle"), ("whistle", "dog"))]
    with_head, mean_only = _text_tower("segments"), _text_tower("mean")
    caps = [c for p in train + held for c in p]
    with torch.no_grad():
        assert torch.equal(with_head.eval().encode_text(caps), mean_only.eval().encode_text(caps))
    before = {name: _swap_cos(m, held) for name, m in (("head", with_head), ("mean", mean_only))}
    assert before["head"] == pytest.approx(before["mean"], abs=1e-6) and before["mean"] > 0.9
    # fixed "audio" targets that DO differ with order: each caption must pick its own, not the swap's
    target = torch.nn.functional.normalize(torch.randn(len(train), 2, 384, generator=torch.Generator().manual_seed(1)), dim=-1)
    after = {}
    for name, m in (("head", with_head), ("mean", mean_only)):
        opt = torch.optim.Adam([p for p in m.text_encoder.parameters() if p.requires_grad], lr=1e-3)
        m.train()
        for _ in range(30):
            t = m.encode_text([c for p in train for c in p]).view(len(train), 2, -1)
            audio = target.reshape(-1, 384)
            loss = compa_loss(audio, t.reshape(-1, 384), 20.0, neg_text=t.flip(1).reshape(-1, 1, 384))["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        after[name] = _swap_cos(m, held)
    # held-out event pairs: order swaps never trained on move apart. With targets that differ by order
    # the tuned layer alone does it too: what keeps swaps at cosine ~0.99 in CLAP training is that the
    # two AUDIOS start (almost) equal, so nothing asks the text side to differ (see the README).
    assert after["head"] < before["head"] - 0.1 and after["mean"] < before["mean"] - 0.1


def test_text_head_needs_an_unfrozen_hf_tower():
    from avsuite.models.clap import ClapModelConfig
    from avsuite.models.text_encoders import build_text_encoder

    with pytest.raises(ValueError, match="text_pool"):
        ClapModelConfig(text="minilm", freeze_text=True, text_pool="segments")
    with pytest.raises(ValueError, match="text_pool"):
        ClapModelConfig(text="minilm", freeze_text=False, text_pool="segments", text_segments=1)
    with pytest.raises(ValueError, match="text_pool"):
        build_text_encoder("small_tiny", segments=2)


# ----------------------------------------------------------------------------- text hard-negative term
def _naive_text_hard(text, para, pmask, neg, nmask, s):
    total, n = 0.0, 0
    for i in range(text.shape[0]):
        negs = [neg[i, k] for k in range(neg.shape[1]) if nmask[i, k]]
        if not pmask[i] or not negs:
            continue
        logits = [s * float(text[i] @ para[i])] + [s * float(text[i] @ v) for v in negs]
        total += -logits[0] + math.log(sum(math.exp(v) for v in logits))
        n += 1
    return total / max(n, 1)


def test_text_hard_term_equals_a_naive_reference_and_ignores_masked_rows():
    from avsuite.losses import ContrastiveObjective, compute_objective

    g = torch.Generator().manual_seed(0)
    b, k, d = 5, 3, 8
    unit = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape, d, generator=g, dtype=torch.float64), dim=-1)  # noqa: E731
    audio, text, para, neg = unit(b), unit(b), unit(b), unit(b, k)
    pmask = torch.tensor([True, True, False, True, True])
    nmask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1, 1]], dtype=torch.bool)
    neg_garbage = neg.clone()
    neg_garbage[~nmask] = float("nan")                          # masked slots never leak
    para_garbage = para.clone()
    para_garbage[~pmask] = float("nan")
    cfg = ContrastiveObjective(clap=0.0, compa=1.0, text_hard=0.5)
    out = compute_objective(cfg, audio, text, 10.0, neg_text=neg_garbage, neg_mask=nmask, para_text=para_garbage,
                            para_mask=pmask)
    assert float(out["text_hard"]) == pytest.approx(_naive_text_hard(text, para, pmask, neg, nmask, 10.0), rel=1e-9)
    assert float(out["loss"]) == pytest.approx(float(out["compa"]) + 0.5 * float(out["text_hard"]), rel=1e-9)
    assert torch.isfinite(out["loss"])
    none = compute_objective(cfg, audio, text, 10.0, neg_text=neg, neg_mask=nmask, para_text=para,
                             para_mask=torch.zeros(b, dtype=torch.bool))
    assert float(none["text_hard"]) == 0.0
    with pytest.raises(ValueError, match="para_text"):
        compute_objective(cfg, audio, text, 10.0, neg_text=neg, neg_mask=nmask)
    swap = torch.tensor([[0, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 1]], dtype=torch.bool)
    only = ContrastiveObjective(clap=0.0, compa=1.0, text_hard=1.0, text_hard_negatives="swaps")
    out = compute_objective(only, audio, text, 10.0, neg_text=neg, neg_mask=nmask, para_text=para, para_mask=pmask,
                            swap_mask=swap)
    assert float(out["text_hard"]) == pytest.approx(_naive_text_hard(text, para, pmask, neg, nmask & swap, 10.0), rel=1e-9)
    assert float(out["compa"]) == pytest.approx(float(compute_objective(cfg, audio, text, 10.0, neg_text=neg, neg_mask=nmask,
                                                       para_text=para, para_mask=pmask)["compa"]), rel=1e-12)
    with pytest.raises(ValueError, match="swap_mask"):
        compute_objective(only, audio, text, 10.0, neg_text=neg, neg_mask=nmask, para_text=para, para_mask=pmask)


def test_recipe_marks_the_swap_negatives_of_each_item():
    from avsuite.config import apply_overrides, from_dict, to_dict
    from avsuite.recipes import clap
    from avsuite.recipes.clap_data import ClapBatch

    cfg = clap.load("configs/clap/compa_tiny.yaml")
    cfg = from_dict(clap.Config, apply_overrides(to_dict(cfg), ["loss.text_hard=1.0", "loss.text_hard_negatives=swaps"]))
    module = clap.ClapModule(cfg).eval()
    negs = [["bell followed by hum", "hum with bell", "bell then hum"], [], ["hum followed by bell", "hum with bell"]]
    batch = ClapBatch(torch.zeros(3, 10), torch.full((3,), 10), [["hum followed by bell"], ["a hum"], ["hum with bell"]],
                      ["hum+bell", "hum", "hum+bell"], ["a", "b", "c"], negatives=negs,
                      paraphrases=["hum then bell", None, "bell with hum"],
                      swaps=[["bell followed by hum", "bell then hum"], [], []])
    text, extra = module._text(batch)
    assert text.shape == (3, 384)
    assert extra["swap_mask"].tolist() == [[True, False, True], [False, False, False], [False, False, False]]
    assert extra["para_mask"].tolist() == [True, False, True]
    assert torch.allclose(extra["para_text"][0], module.model.encode_text(["hum then bell"])[0], atol=1e-6)
