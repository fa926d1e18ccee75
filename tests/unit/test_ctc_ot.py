"""CTC and CTC+OT losses: w_ot=0 is plain CTC, infeasible targets never give NaN, clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avsuite.losses.ctc import ctc_loss, ctc_min_frames, ctc_ot_loss
from avsuite.losses.ot import ot_loss


def _inputs(seed=0, b=3, t=20, v=8, s=6, d=4):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g, requires_grad=True)
    in_len = torch.tensor([t, t - 5, t - 9])
    targets = torch.randint(1, v, (b, s), generator=g)
    tgt_len = torch.tensor([s, s - 2, 3])
    speech = torch.randn(b, t, d, generator=g, requires_grad=True)
    text = torch.randn(b, s, d, generator=g, requires_grad=True)
    sm = torch.arange(t)[None] < in_len[:, None]
    tm = torch.arange(s)[None] < tgt_len[:, None]
    return logits, in_len, targets, tgt_len, speech, sm, text, tm


def test_ctc_matches_torch_mean_reduction():
    logits, in_len, targets, tgt_len, *_ = _inputs()
    lp = logits.log_softmax(-1)
    ours = ctc_loss(lp, in_len, targets, tgt_len)["ctc"]
    ref = F.ctc_loss(lp.transpose(0, 1), targets, in_len, tgt_len, reduction="mean")
    assert torch.allclose(ours, ref, atol=1e-6)


def test_w_ot_zero_equals_plain_ctc_in_value_and_gradient():
    logits, in_len, targets, tgt_len, speech, sm, text, tm = _inputs()
    lp = logits.log_softmax(-1)
    both = ctc_ot_loss(lp, in_len, targets, tgt_len, speech, sm, text, tm, w_ot=0.0)
    plain = ctc_loss(lp, in_len, targets, tgt_len)
    assert torch.equal(both["loss"], plain["loss"])
    g_both = torch.autograd.grad(both["loss"], logits, retain_graph=True)[0]
    g_plain = torch.autograd.grad(plain["loss"], logits)[0]
    assert torch.equal(g_both, g_plain)
    # no gradient reaches the OT features at w_ot=0 (checked with autograd.grad: .grad stays None)
    g_feats = torch.autograd.grad(both["loss"], [speech, text], allow_unused=True, retain_graph=True)
    assert all(g is None or not g.abs().any() for g in g_feats)
    assert float(both["ot"]) > 0          # still measured for logging
    with_ot = ctc_ot_loss(lp, in_len, targets, tgt_len, speech, sm, text, tm, w_ot=0.5)
    g_sp, g_tx = torch.autograd.grad(with_ot["loss"], [speech, text])
    assert g_sp.abs().sum() > 0 and g_tx.abs().sum() > 0      # the same check does see OT gradients


def test_total_is_weighted_sum():
    logits, in_len, targets, tgt_len, speech, sm, text, tm = _inputs(seed=1)
    lp = logits.log_softmax(-1)
    out = ctc_ot_loss(lp, in_len, targets, tgt_len, speech, sm, text, tm, w_ctc=0.7, w_ot=0.3, pos_weight=1.0)
    ot = ot_loss(speech, sm, text, tm, pos_weight=1.0)["ot"]
    assert torch.allclose(out["loss"], 0.7 * out["ctc"] + 0.3 * ot, atol=1e-6)
    out["loss"].backward()
    assert speech.grad.abs().sum() > 0 and text.grad.abs().sum() > 0


def test_infeasible_target_is_zeroed_counted_and_never_nan():
    logits = torch.randn(2, 4, 6)
    lp = logits.log_softmax(-1)
    targets = torch.tensor([[1, 2, 3, 4, 5, 1], [1, 2, 0, 0, 0, 0]])
    out = ctc_loss(lp, torch.tensor([4, 4]), targets, torch.tensor([6, 2]))
    assert torch.isfinite(out["loss"])
    assert float(out["ctc_infeasible"]) == 1.0


def test_min_frames_counts_repeats():
    targets = torch.tensor([[1, 1, 2, 2, 2], [3, 4, 3, 0, 0]])
    assert ctc_min_frames(targets, torch.tensor([5, 3])).tolist() == [8, 3]


def test_empty_targets_and_inputs_raise_clear_errors():
    lp = torch.randn(1, 5, 4).log_softmax(-1)
    with pytest.raises(ValueError, match="non-empty"):
        ctc_loss(lp, torch.tensor([5]), torch.zeros(1, 1, dtype=torch.long), torch.tensor([0]))
    with pytest.raises(ValueError, match="at least one frame"):
        ctc_loss(lp, torch.tensor([0]), torch.ones(1, 1, dtype=torch.long), torch.tensor([1]))


# ----------------------------------------------------------------------------- the recipe's data side
def _reader_ctx(rows, strict=False, **data):
    from avsuite.data.pipeline import ItemContext, SkipCounter
    from avsuite.recipes.ctc_ot_data import SpeechDataConfig

    return ItemContext(rows, SpeechDataConfig(strict=strict, **data), train=True, epoch=0, stats=SkipCounter())


@pytest.fixture()
def speech_rows(tmp_path):
    import numpy as np
    import soundfile as sf

    from avsuite.data.rows import ManifestRows

    rng = np.random.default_rng(0)
    long = (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32)
    sf.write(tmp_path / "talk.wav", long, 16000, subtype="FLOAT")
    sf.write(tmp_path / "tiny.wav", long[:300], 16000)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    rows = [{"id": "seg", "audio": "talk.wav", "offset": 1.25, "duration": 0.5, "text": "ab"},
            {"id": "whole", "audio": "talk.wav", "text": "ab ba"},
            {"id": "empty", "audio": "talk.wav", "text": "[noise]"},
            {"id": "oov", "audio": "talk.wav", "text": "abz"},
            {"id": "tiny", "audio": "tiny.wav", "text": "a"},
            {"id": "bad", "audio": "bad.wav", "text": "a"},
            {"id": "dense", "audio": "talk.wav", "offset": 0.0, "duration": 0.1, "text": "abababab"}]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    return ManifestRows.from_path(path), long


def _loader(**kw):
    from avsuite.audio.frontend import kaldi_fbank
    from avsuite.models.text_tokenizer import CharTokenizer
    from avsuite.recipes.ctc_ot_data import SpeechLoader

    tok = CharTokenizer.train(["ab ba"])
    args = dict(stage="pretrain", lang="fr", on_oov="skip", src_tok=tok, tgt_tok=tok,
                frontend=kaldi_fbank(normalize="utterance"), max_frames=1500)
    return SpeechLoader(**{**args, **kw})


def test_loader_cuts_offset_segments_and_skips_bad_rows_by_reason(speech_rows):
    rows, long = speech_rows
    loader, ctx, gen = _loader(), _reader_ctx(rows), torch.Generator()
    seg = loader(ctx, 0, gen)
    assert torch.equal(seg["wave"], torch.from_numpy(long[20000:28000]))      # 1.25 s + 0.5 s at 16 kHz
    assert loader(ctx, 1, gen)["wave"].numel() == long.size and seg["src"] == loader.src_tok.encode("ab")
    assert [loader(ctx, i, gen) for i in range(2, 7)] == [None] * 5
    assert loader.counts() == {"empty_text": 1, "oov": 1, "too_short": 2, "unreadable": 1}
    assert ctx.stats.counts == loader.counts() and loader.used == {0, 1}
    # the CTC-fit check is for training only; too many frames for the model is too_long
    assert _loader(check_ctc=False)(ctx, 6, gen) is not None
    small = _loader(max_frames=10)
    assert small(ctx, 1, gen) is None and small.counts() == {"too_long": 1}


def test_loader_strict_and_on_oov_error_name_the_row(speech_rows):
    from avsuite.audio.io import AudioDecodeError
    from avsuite.data.pipeline import SkipRow

    rows, _ = speech_rows
    ctx, gen = _reader_ctx(rows, strict=True), torch.Generator()
    with pytest.raises(SkipRow, match="row 'empty': empty transcript"):
        _loader()(ctx, 2, gen)
    with pytest.raises(SkipRow, match="row 'tiny'"):
        _loader()(ctx, 4, gen)
    with pytest.raises(AudioDecodeError, match="bad.wav"):
        _loader()(ctx, 5, gen)
    with pytest.raises(ValueError, match="row 'oov': characters outside the vocabulary"):
        _loader(on_oov="error")(_reader_ctx(rows), 3, gen)
    assert _loader(on_oov="unk")(_reader_ctx(rows), 3, gen) is not None


def test_max_seconds_filters_and_crop_is_refused(speech_rows):
    from avsuite.data.pipeline import Reader
    from avsuite.recipes.ctc_ot_data import SpeechDataConfig, collate

    rows, long = speech_rows
    with pytest.raises(ValueError, match="crop_seconds must be null"):
        SpeechDataConfig(crop_seconds=2.0)
    cfg = SpeechDataConfig(max_seconds=2.0, batch_size=8, shuffle=False, num_parallel_calls=1)
    batches = list(Reader(rows, cfg, train=True, collate=collate, load=_loader()))
    (batch,) = batches
    assert batch["ids"] == ["seg"]                       # "whole" (3 s) is skipped, never cropped to 2 s
    assert batch["audio"].shape == (1, 8000) and batch["lengths"].tolist() == [8000]
    assert batch["src"].tolist() == [_loader().src_tok.encode("ab")] and batch["src_len"].tolist() == [2]
