"""Retrieval / zero-shot / Winoground metrics: hand-worked examples + brute force over full sorts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avsuite.eval.metrics_compositional import compositional_metrics, winoground_scores
from avsuite.eval.metrics_retrieval import audio_to_text, retrieval_metrics, text_to_audio
from avsuite.eval.metrics_zeroshot import confusion_matrix, zeroshot_metrics

# ------------------------------------------------------------------ brute force


def brute_positions(scores, relevant):
    """Sort every item by (-score, relevant last) and read off 1-based positions of relevant ones."""
    order = sorted(range(len(scores)), key=lambda j: (-scores[j], bool(relevant[j])))
    return [p + 1 for p, j in enumerate(order) if relevant[j]]


def brute_retrieval(sim, cap):
    n_clips, n_caps = sim.shape
    out = {}
    t_ranks = [brute_positions(list(sim[:, q]), [i == cap[q] for i in range(n_clips)])[0] for q in range(n_caps)]
    a_pos = [brute_positions(list(sim[i]), [cap[q] == i for q in range(n_caps)]) for i in range(n_clips)]
    for k in (1, 5, 10):
        out[f"t2a_R{k}"] = sum(r <= k for r in t_ranks) / n_caps
        out[f"a2t_R{k}"] = sum(p[0] <= k for p in a_pos) / n_clips
    out["t2a_mAP10"] = sum(1 / r if r <= 10 else 0 for r in t_ranks) / n_caps
    aps = []
    for p in a_pos:
        aps.append(sum((h + 1) / pos for h, pos in enumerate(p) if pos <= 10) / len(p))
    out["a2t_mAP10"] = sum(aps) / n_clips
    out["t2a_medr"] = float(np.median(t_ranks))
    out["a2t_medr"] = float(np.median([p[0] for p in a_pos]))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_retrieval_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n_clips = 13
    cap = np.concatenate([np.arange(n_clips)] * 2 + [rng.integers(0, n_clips, 9)])  # 2-3+ captions each
    sim = rng.integers(0, 6, size=(n_clips, cap.size)).astype(float)  # many ties on purpose
    got = retrieval_metrics(sim, cap)
    for k, v in brute_retrieval(sim, cap).items():
        assert got[k] == pytest.approx(v, abs=1e-12), k


def test_retrieval_hand_worked_example():
    # 2 clips, captions 0,1 -> clip 0 and caption 2 -> clip 1.
    sim = np.array([[0.9, 0.1, 0.5],
                    [0.2, 0.3, 0.4]])
    cap = [0, 0, 1]
    # t2a: cap0 col [.9,.2] -> clip0 rank 1; cap1 [.1,.3] -> clip0 rank 2; cap2 [.5,.4] -> clip1 rank 2
    t = text_to_audio(sim, cap)
    assert t["t2a_R1"] == pytest.approx(1 / 3) and t["t2a_R5"] == 1.0
    assert t["t2a_mAP10"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert t["t2a_medr"] == 2.0
    # a2t: clip0 ranks [.9 c0, .5 c2, .1 c1] -> its captions at positions 1 and 3:
    #   AP = (1/1 + 2/3) / 2 = 5/6.  clip1 ranks [.4 c2, .3 c1, .2 c0] -> position 1: AP = 1.
    a = audio_to_text(sim, cap)
    assert a["a2t_R1"] == 1.0
    assert a["a2t_mAP10"] == pytest.approx((5 / 6 + 1) / 2)


def test_constant_similarity_is_not_perfect():
    # 4 clips x 4 captions, all scores equal: the relevant clip is ranked after the 3 others.
    m = retrieval_metrics(torch.zeros(4, 4), torch.arange(4))
    assert m["t2a_R1"] == 0.0 and m["a2t_R1"] == 0.0 and m["t2a_medr"] == 4.0


def test_map10_cuts_at_ten():
    # 12 clips; caption 0's clip 0 has the lowest score -> rank 12 -> AP@10 = 0, R@10 = 0.
    sim = np.eye(12)
    sim[0, 0] = -1.0
    t = text_to_audio(sim, np.arange(12))
    assert t["t2a_R10"] == pytest.approx(11 / 12)
    assert t["t2a_mAP10"] == pytest.approx(11 / 12)


def test_retrieval_bad_inputs():
    with pytest.raises(ValueError, match="no caption"):
        retrieval_metrics(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="caption_clip must be"):
        retrieval_metrics(np.zeros((2, 2)), [0, 1, 1])
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        retrieval_metrics(np.zeros((2, 2)), [0, 2])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.array([[np.nan, 0], [0, 0]]), [0, 1])


# ------------------------------------------------------------------ zero-shot


def test_zeroshot_hand_worked_example():
    sim = np.array([[0.9, 0.1, 0.0],   # true 0: rank 1
                    [0.5, 0.4, 0.6],   # true 1: rank 3
                    [0.3, 0.8, 0.7],   # true 2: rank 2
                    [0.2, 0.2, 0.1]])  # true 1: tie with class 0 -> rank 2 (ties against truth)
    y = [0, 1, 2, 1]
    m = zeroshot_metrics(sim, y, ks=(1, 2, 5))
    assert m["top1"] == 0.25 and m["top2"] == 0.75
    assert "top5" not in m  # only 3 classes
    assert m["chance"] == pytest.approx(1 / 3)
    assert m["balanced_acc"] == pytest.approx((1 + 0 + 0) / 3)
    cm = confusion_matrix(sim, y)
    # predictions (argmax, first on ties): 0, 2, 1, 0
    want = np.zeros((3, 3), int)
    want[0, 0] = want[1, 2] = want[2, 1] = want[1, 0] = 1
    assert (cm == want).all()


def test_zeroshot_matches_brute_force():
    rng = np.random.default_rng(0)
    sim = rng.integers(0, 4, size=(50, 7)).astype(float)
    y = rng.integers(0, 7, 50)
    m = zeroshot_metrics(torch.tensor(sim), torch.tensor(y))
    for k in (1, 5):
        hits = [brute_positions(list(sim[i]), [c == y[i] for c in range(7)])[0] <= k for i in range(50)]
        assert m[f"top{k}"] == pytest.approx(np.mean(hits))
    assert confusion_matrix(sim, y).sum() == 50


def test_zeroshot_bad_labels():
    with pytest.raises(ValueError, match="class indices"):
        zeroshot_metrics(np.zeros((2, 3)), [0, 3])


# ------------------------------------------------------------------ Winoground


def test_winoground_hand_worked_sets():
    sims = np.array([
        [[0.9, 0.1], [0.2, 0.8]],  # all correct: text, audio, group
        [[0.6, 0.5], [0.7, 0.8]],  # text ok (.6>.5, .8>.7); audio: .6>.7 fails
        [[0.5, 0.4], [0.3, 0.2]],  # text: .2>.3 fails; audio: .5>.3, .2>.4 fails
        [[0.5, 0.5], [0.1, 0.9]],  # tie .5 vs .5 -> text fails; audio .5>.1, .9>.5 ok
    ])
    per = winoground_scores(sims)
    assert per["text"].tolist() == [True, True, False, False]
    assert per["audio"].tolist() == [True, False, False, True]
    assert per["group"].tolist() == [True, False, False, False]
    m = compositional_metrics(sims, prefix="order_")
    assert m["order_text_score"] == 0.5 and m["order_audio_score"] == 0.5 and m["order_group_score"] == 0.25
    assert m["order_group_chance"] == pytest.approx(1 / 6)


def test_winoground_chance_levels_by_simulation():
    sims = np.random.default_rng(0).standard_normal((40000, 2, 2))
    m = compositional_metrics(sims)
    assert m["text_score"] == pytest.approx(0.25, abs=0.01)
    assert m["group_score"] == pytest.approx(1 / 6, abs=0.01)


def test_winoground_brute_force_and_shape_error():
    rng = np.random.default_rng(1)
    sims = rng.integers(0, 3, (200, 2, 2)).astype(float)
    per = winoground_scores(sims)
    for n, s in enumerate(sims):
        text = all(s[a, a] > s[a, 1 - a] for a in (0, 1))
        audio = all(s[t, t] > s[1 - t, t] for t in (0, 1))
        assert per["text"][n] == text and per["audio"][n] == audio and per["group"][n] == (text and audio)
    with pytest.raises(ValueError, match=r"\(n_sets, 2, 2\)"):
        winoground_scores(np.zeros((3, 2, 3)))
