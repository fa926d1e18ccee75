"""Speech models, tokenizers, decoding, metrics and importers of the ctc_ot workload."""

from __future__ import annotations

import json

import pytest
import torch

from avsuite.audio.frontend import kaldi_fbank
from avsuite.eval.asr import ctc_greedy
from avsuite.eval.speech_metrics import all_metrics, bleu_chrf, wer_cer
from avsuite.audio.augment import spec_augment
from avsuite.models.seq2seq import SpeechSeq2Seq, average_state_dicts, build_model, model_config, model_from_state
from avsuite.models.speech import ConvSubsampler, SiameseCTCOT, output_lengths, preset
from avsuite.data.text import normalize_transcript
from avsuite.models.text_tokenizer import EOS, UNK, CharTokenizer, SentencePieceTokenizer, tokenizer_from

FE = kaldi_fbank(normalize="utterance")


def _tiny(arch="transformer"):
    return preset("tiny", arch=arch, d_model=32, n_heads=2, ffn_dim=64, speech_layers=2, text_layers=1,
                  decoder_layers=1, conv_kernel=3, dropout=0.0)


def test_normalize_transcript_drops_annotations_and_punctuation():
    assert normalize_transcript("Please enter your PIN, then press [beep] #.") == "please enter your pin then press"
    assert normalize_transcript("[ascending tones]") == ""
    assert normalize_transcript("It's 5 o'clock!") == "it's 5 o'clock"


def test_char_tokenizer_roundtrip_and_oov():
    tok = CharTokenizer.train(["hello world", "press one"])
    ids = tok.encode("hello one")
    assert min(ids) >= 4 and tok.decode(ids) == "hello one"
    assert tok.encode("hz")[1] == UNK and tok.count_oov("hz!") == 2
    again = tokenizer_from(tok.to_config(), {}, "src_tokenizer.")
    assert again.encode("press") == tok.encode("press")


def test_sentencepiece_tokenizer_survives_the_state_dict():
    texts = [f"please press {w} followed by the pound key" for w in ["one", "two", "three", "four"]] * 5
    tok = SentencePieceTokenizer.train(texts, vocab_size=30)
    ids = tok.encode("please press two")
    assert tok.decode(ids) == "please press two" and all(i >= 4 for i in ids)
    state = {"tgt_tokenizer." + k: v for k, v in tok.state().items()}
    again = tokenizer_from(tok.to_config(), state, "tgt_tokenizer.")
    assert again.encode("please press two") == ids


def test_subsampler_lengths_match_its_output():
    sub = ConvSubsampler(80, 16)
    for n in [1, 2, 5, 8, 9, 100]:
        out, lens = sub(torch.randn(1, 80, n), torch.tensor([n]))
        assert out.shape[1] == int(lens[0]) == int(ConvSubsampler.out_lengths(torch.tensor([n]))[0])


def test_output_lengths_is_what_the_encoder_outputs():
    model = SiameseCTCOT(_tiny(), FE, vocab_size=8).eval()
    lengths = torch.tensor([16000, 12345, 4000, 560, 401, 400])
    enc = model.speech(torch.randn(len(lengths), 16000), lengths)
    assert enc["lengths"].tolist() == model.output_lengths(lengths).tolist()
    assert enc["out"].shape[1] == int(output_lengths(lengths, FE).max())
    assert output_lengths(torch.tensor([399, 0]), FE).tolist() == [0, 0]     # shorter than one window


@pytest.mark.parametrize("arch", ["transformer", "conformer"])
def test_speech_encoder_batched_equals_per_item(arch):
    torch.manual_seed(0)
    model = SiameseCTCOT(_tiny(arch), FE, vocab_size=12).eval()
    wave = torch.randn(2, 8000)
    lengths = torch.tensor([8000, 5000])
    both = model.speech(wave, lengths)
    one = model.speech(wave[1:, :5000], lengths[1:])
    k = int(both["lengths"][1])
    assert k == one["out"].shape[1]
    assert torch.allclose(both["out"][1, :k], one["out"][0], atol=1e-4)
    assert torch.allclose(both["ctc_logits"][1, :k], one["ctc_logits"][0], atol=1e-4)


def test_too_long_speech_and_too_short_input_raise_clear_errors():
    model = SiameseCTCOT(preset("tiny", arch="transformer", max_frames=10), FE, vocab_size=8)
    with pytest.raises(ValueError, match="speech too long"):
        model.speech.encode_features(torch.randn(1, 80, 100), torch.tensor([100]))
    with pytest.raises(ValueError, match="too short"):
        model.speech.encode_features(torch.randn(1, 80, 4), torch.tensor([0]))


def test_beam_one_equals_greedy_and_beam_never_scores_worse():
    torch.manual_seed(1)
    model = SpeechSeq2Seq(_tiny(), FE, vocab_size=10).eval()
    wave, n = torch.randn(3, 6800), torch.tensor([6800, 5200, 3900])
    greedy = model.greedy(wave, n, max_len=12)
    assert model.beam_search(wave, n, beam=1, max_len=12, len_penalty=0.0) == greedy
    beam = model.beam_search(wave, n, beam=4, max_len=12, len_penalty=0.0)

    def logp(i, ids):
        prefix = torch.tensor([[2] + ids])
        gold = torch.tensor(ids + [EOS]) if len(ids) < 12 else torch.tensor(ids)
        mem, mask = model.encode(wave[i:i + 1, : int(n[i])], n[i:i + 1])
        lp = model.decoder(prefix, mem, mask)[0].log_softmax(-1)
        return float(lp[torch.arange(len(gold)), gold].sum().detach())

    for i in range(3):
        assert logp(i, beam[i]) >= logp(i, greedy[i]) - 1e-4


def test_model_dir_roundtrip(tmp_path):
    from avsuite.checkpoint import load_model_dir, save_model_dir
    from avsuite.models.registry import load_model

    tok = CharTokenizer.train(["abc d"])
    cfg = model_config("asr", _tiny(), FE, tok.to_config(), tok.to_config())
    model = build_model(cfg).eval()
    save_model_dir(tmp_path, model.state_dict(), cfg)
    state, conf = load_model_dir(tmp_path)
    again = model_from_state(state, conf)
    wave, n = torch.randn(1, 4800), torch.tensor([4800])
    assert again.greedy(wave, n, max_len=5) == model.greedy(wave, n, max_len=5)
    assert again.target_tokenizer.symbols == tok.symbols
    assert load_model(tmp_path).greedy(wave, n, max_len=5) == model.greedy(wave, n, max_len=5)


def test_models_import_no_circle():
    import ast
    from pathlib import Path

    import avsuite.models.speech as speech

    tree = ast.parse(Path(speech.__file__).read_text())
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("seq2seq" in (m or "") for m in names)


def test_average_state_dicts():
    a = {"w": torch.tensor([1.0, 3.0]), "step": torch.tensor(1)}
    b = {"w": torch.tensor([3.0, 5.0]), "step": torch.tensor(2)}
    avg = average_state_dicts([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and int(avg["step"]) == 2


def test_ctc_greedy_merges_repeats_and_drops_blanks():
    ids = torch.tensor([[0, 5, 5, 0, 5, 6, 6, 0, 7]])
    lp = torch.nn.functional.one_hot(ids, 8).float().log()
    assert ctc_greedy(lp, torch.tensor([8])) == [[5, 5, 6]]


def test_metrics_against_hand_counts():
    m = wer_cer(["a b c", "x"], ["a b d", "x y"])      # 1 sub + 1 del over 5 words
    assert m["wer"] == pytest.approx(40.0)
    assert bleu_chrf(["the cat sat on the mat"], ["the cat sat on the mat"])["bleu"] == pytest.approx(100.0)
    assert set(all_metrics(["a"], ["a"])) >= {"wer", "cer", "bleu", "chrf"}
    with pytest.raises(ValueError, match="hypotheses"):
        wer_cer(["a"], ["a", "b"])


def test_covost_importer(tmp_path):
    from avsuite.data.corpora.importers_speech import import_covost_tsv
    from avsuite.data.manifest import ManifestError, validate_row

    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp3").write_bytes(b"x")
    tsv = tmp_path / "train.tsv"
    tsv.write_text("client_id\tpath\tsentence\ttranslation\nspk\ta.mp3\tHello there.\tBonjour.\n", encoding="utf-8")
    rows = import_covost_tsv(tsv, tmp_path / "clips", "fr", "train")
    assert rows[0]["text"] == "Hello there." and rows[0]["translation"] == {"fr": "Bonjour."}
    assert validate_row(rows[0]) == []
    tsv.write_text("client_id\tpath\tsentence\ttranslation\nspk\tmissing.mp3\tHi.\tSalut.\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="missing.mp3"):
        import_covost_tsv(tsv, tmp_path / "clips", "fr", "train")


def test_mustc_importer(tmp_path):
    from avsuite.data.corpora.importers_speech import import_mustc

    base = tmp_path / "data" / "dev"
    (base / "txt").mkdir(parents=True)
    (base / "wav").mkdir()
    (base / "wav" / "ted_1.wav").write_bytes(b"x")
    (base / "txt" / "dev.yaml").write_text(json.dumps([{"duration": 1.5, "offset": 2.0, "speaker_id": "s1",
                                                         "wav": "ted_1.wav"}]))
    (base / "txt" / "dev.en").write_text("Hello.\n")
    (base / "txt" / "dev.de").write_text("Hallo.\n")
    rows = import_mustc(tmp_path, "de", "dev")
    assert rows[0]["offset"] == 2.0 and rows[0]["duration"] == 1.5 and rows[0]["translation"] == {"de": "Hallo."}


# ----------------------------------------------------------------------------- SpecAugment
def _clap_reference(mel, time_w, freq_w):
    """The former ``ClapModel._spec_augment`` loop, kept verbatim as the reference."""
    mel = mel.clone()
    for i in range(mel.shape[0]):
        for _ in range(2):
            if time_w:
                width = int(torch.randint(time_w + 1, ()))
                t0 = int(torch.randint(max(1, mel.shape[2] - width), ()))
                mel[i, :, t0:t0 + width] = mel[i].mean()
            if freq_w:
                width = int(torch.randint(freq_w + 1, ()))
                f0 = int(torch.randint(max(1, mel.shape[1] - width), ()))
                mel[i, f0:f0 + width] = mel[i].mean()
    return mel


@pytest.mark.parametrize("time_w,freq_w", [(20, 8), (0, 8), (20, 0)])
def test_spec_augment_covers_clap(time_w, freq_w):
    mel = torch.randn(3, 64, 100)
    torch.manual_seed(5)
    want = _clap_reference(mel, time_w, freq_w)
    torch.manual_seed(5)
    got = spec_augment(mel, None, n_freq_masks=2, freq_width=freq_w, n_time_masks=2, time_width=time_w, fill="mean")
    assert torch.equal(got, want) and not torch.equal(got, mel)


def test_spec_augment_masks_inside_valid_frames_with_bounded_widths():
    feats = torch.randn(4, 80, 200) + 10.0
    before = feats.clone()
    lengths = torch.tensor([200, 150, 60, 11])
    for seed in range(20):
        torch.manual_seed(seed)
        time_only = spec_augment(feats, lengths, n_freq_masks=0, n_time_masks=2, time_fraction=0.1)
        for i, n in enumerate(lengths.tolist()):         # time masks never touch the padding
            assert torch.equal(time_only[i, :, n:], feats[i, :, n:])
        torch.manual_seed(seed)
        out = spec_augment(feats, lengths, n_freq_masks=2, freq_width=10, n_time_masks=2, time_fraction=0.1)
        for i, n in enumerate(lengths.tolist()):
            zero_cols = int((out[i] == 0).all(0).sum())
            zero_rows = int((out[i, :, :n] == 0).all(1).sum())
            assert zero_cols <= 2 * max(1, n // 10) and zero_rows <= 20
    assert torch.equal(feats, before)                  # the input is untouched (a copy is returned)


def test_speech_model_applies_spec_augment_only_in_training_from_the_global_rng():
    arch = _tiny()
    model = SiameseCTCOT(preset("tiny", **{**arch.__dict__, "spec_augment": True}), FE, vocab_size=8)
    wave, n = torch.randn(2, 16000), torch.tensor([16000, 12000])
    model.eval()
    plain = model.speech.features(wave, n)[0]
    assert torch.equal(plain, model.speech.features(wave, n)[0])
    model.train()
    torch.manual_seed(3)
    a = model.speech.features(wave, n)[0]
    torch.manual_seed(3)
    b = model.speech.features(wave, n)[0]
    assert torch.equal(a, b) and not torch.equal(a, plain)
    assert bool((a == 0).all(1).any())          # some whole frames were masked
