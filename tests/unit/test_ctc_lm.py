"""CTC prefix beam search + character n-gram LM (decode.method=beam_lm)."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch

from avsuite.eval.asr import ctc_greedy
from avsuite.eval.ctc_lm import BOS_MARK, EOS_MARK, CharNgramLM, beam_lm_batch, prefix_beam_search

SYMBOLS = ["<blank>", "<unk>", "<s>", "</s>", " ", "a", "b", "c"]
IDX = {s: i for i, s in enumerate(SYMBOLS)}


def _posterior(path: str, p: float = 0.8) -> torch.Tensor:
    """``(T, V)`` log-posteriors: ``p`` on each frame's symbol ('_' = blank), the rest spread evenly."""
    rows = []
    for ch in path:
        row = torch.full((len(SYMBOLS),), (1 - p) / (len(SYMBOLS) - 1))
        row[0 if ch == "_" else IDX[ch]] = p
        rows.append(row)
    return torch.stack(rows).log()


def test_lm_counts_and_witten_bell_values_on_a_tiny_text():
    lm = CharNgramLM(["ab", "ac"], order=2)
    assert lm.counts["a"] == Counter({"b": 1, "c": 1})
    assert lm.counts[BOS_MARK] == Counter({"a": 2})
    assert lm.counts[""] == Counter({"a": 2, "b": 1, "c": 1, EOS_MARK: 2})
    assert lm.alphabet == ["a", "b", "c", EOS_MARK]
    base_b = (1 + 1) / (6 + 4)                       # add-one unigram over 3 characters + end of sentence
    assert lm.prob("zz", "b") == pytest.approx(base_b)      # unseen history: full back-off
    assert lm.prob("a", "b") == pytest.approx((1 + 2 * base_b) / (2 + 2))
    base_a = (2 + 1) / (6 + 4)
    assert lm.prob("", "a") == pytest.approx((2 + 1 * base_a) / (2 + 1))   # sentence start
    assert lm.logprob("a", "b") == pytest.approx(math.log(lm.prob("a", "b")))


@pytest.mark.parametrize("history", ["", "a", "ab", "the c", "zzz"])
def test_lm_is_a_distribution(history):
    lm = CharNgramLM(["ab", "ab", "ac hello world", "the cat"], order=4)
    assert sum(lm.prob(history, c) for c in lm.alphabet) == pytest.approx(1.0, abs=1e-12)


def test_lm_rejects_bad_input():
    with pytest.raises(ValueError, match="no text"):
        CharNgramLM([], order=3)
    with pytest.raises(ValueError, match="order"):
        CharNgramLM(["a"], order=0)


def test_beam_without_lm_and_with_zero_weight_equals_greedy_on_a_built_posterior():
    lp = _posterior("aa_abb_ c_c__b")
    greedy = ctc_greedy(lp[None], torch.tensor([len(lp)]))[0]
    assert "".join(SYMBOLS[i] for i in greedy) == "aab ccb"
    assert prefix_beam_search(lp, SYMBOLS, None, beam=4) == greedy
    lm = CharNgramLM(["abc", "cab a"], order=3)
    assert prefix_beam_search(lp, SYMBOLS, lm, beam=4, lm_weight=0.0) == greedy
    assert prefix_beam_search(lp, SYMBOLS, None, beam=1) == greedy


def test_beam_finds_the_most_probable_labelling_by_brute_force():
    torch.manual_seed(0)
    lp = torch.randn(5, len(SYMBOLS)) * 2
    lp[:, 1:5] = -1e9                                # only blank, a, b, c
    lp = lp.log_softmax(-1)
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product([0, 5, 6, 7], repeat=5):
        lab = tuple(k for k, _ in itertools.groupby(path) if k != 0)
        totals[lab] = totals.get(lab, 0.0) + math.exp(sum(float(lp[t, k]) for t, k in enumerate(path)))
    best = max(totals, key=totals.__getitem__)
    assert tuple(prefix_beam_search(lp, SYMBOLS, None, beam=64, prune=-1e10, max_tokens=8)) == best


def test_lm_decides_an_ambiguous_frame():
    lp = _posterior("a_c")
    lp[2] = torch.log(torch.tensor([0.02, 0, 0, 0, 0.02, 0.02, 0.44, 0.5]) + 1e-12)   # c 0.50 vs b 0.44
    lm = CharNgramLM(["ab"] * 20 + ["ba"], order=3)
    plain = prefix_beam_search(lp, SYMBOLS, None, beam=4)
    fused = prefix_beam_search(lp, SYMBOLS, lm, beam=4, lm_weight=1.0)
    assert "".join(SYMBOLS[i] for i in plain) == "ac"
    assert "".join(SYMBOLS[i] for i in fused) == "ab"


def test_bonus_and_batch_and_bad_shapes():
    lp = _posterior("a_b_c", p=0.55)
    batch = torch.stack([lp, _posterior("c_b_a", p=0.55)])
    out = beam_lm_batch(batch, torch.tensor([5, 3]), SYMBOLS, None, beam=4, lm_weight=0.0)
    assert out[0] == prefix_beam_search(lp, SYMBOLS, None, beam=4)
    assert out[1] == prefix_beam_search(batch[1, :3], SYMBOLS, None, beam=4)
    # a large negative bonus per character makes the empty transcript win
    assert prefix_beam_search(lp, SYMBOLS, None, beam=4, bonus=-50.0) == []
    with pytest.raises(ValueError, match=r"\(T, V\)"):
        prefix_beam_search(batch, SYMBOLS, None)
    with pytest.raises(ValueError, match="beam"):
        prefix_beam_search(lp, SYMBOLS, None, beam=0)
