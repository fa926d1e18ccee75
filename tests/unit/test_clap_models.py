"""CLAP models: shapes, unit norm, eval determinism, fusion, logit-scale clamp, save/load, text towers."""

from __future__ import annotations

import math

import pytest
import torch

from avsuite.checkpoint import save_model_dir
from avsuite.models.audio_encoders import AUDIO_PRESETS, build_audio_encoder, param_count
from avsuite.models.clap import LOGIT_SCALE_MAX, ClapModel, ClapModelConfig, tiny_frontend
from avsuite.models.registry import load_model
from avsuite.models.text_encoders import HashTokenizer, HFTextEncoder, build_text_encoder

SR = 16000


def small_model(**kw) -> ClapModel:
    torch.manual_seed(0)
    cfg = dict(audio="cnn14_tiny", text="small_tiny", freeze_text=False, embed_dim=32, max_seconds=1.0)
    return ClapModel(ClapModelConfig(**{**cfg, **kw}), tiny_frontend())


@pytest.mark.parametrize("name", ["cnn14_tiny", "htsat_tiny"])
def test_audio_encoder_shapes(name):
    enc = build_audio_encoder(name, 64).eval()
    out = enc(torch.randn(3, 64, 123), torch.tensor([123, 80, 17]))
    assert out.shape == (3, enc.out_dim)
    assert torch.isfinite(out).all()


def test_base_presets_are_paper_sized():
    # CNN14 (PANNs) has ~80M parameters; HTS-AT ~28M (Swin-T-like depths 2,2,6,2)
    assert 75e6 < param_count(AUDIO_PRESETS["cnn14_base"](64)) < 85e6
    assert 25e6 < param_count(AUDIO_PRESETS["htsat_base"](64)) < 32e6
    with pytest.raises(ValueError, match="unknown audio encoder"):
        build_audio_encoder("cnn99", 64)


@pytest.mark.parametrize("audio", ["cnn14_tiny", "htsat_tiny"])
@pytest.mark.parametrize("fusion", [False, True])
def test_embeddings_unit_norm_and_deterministic_at_eval(audio, fusion):
    model = small_model(audio=audio, fusion=fusion).eval()
    wave = torch.randn(2, int(2.7 * SR)) * 0.1          # longer than the 1 s window: crop / fusion
    lengths = torch.tensor([wave.shape[1], int(1.5 * SR)])
    a1, a2 = model.encode_audio(wave, lengths), model.encode_audio(wave, lengths)
    assert a1.shape == (2, 32)
    assert torch.equal(a1, a2)
    assert torch.allclose(a1.norm(dim=-1), torch.ones(2), atol=1e-5)
    t = model.encode_text(["a dog barking", "rain on a roof", "x"])
    assert t.shape == (3, 32)
    assert torch.allclose(t.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.equal(t, model.encode_text(["a dog barking", "rain on a roof", "x"]))


def test_cnn14_batched_equals_single():
    model = small_model(max_seconds=5.0).eval()
    waves = [torch.randn(n) * 0.1 for n in (SR, int(0.63 * SR), int(1.37 * SR))]
    lengths = torch.tensor([w.numel() for w in waves])
    batch = torch.zeros(3, int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : w.numel()] = w
    together = model.encode_audio(batch, lengths)
    for i, w in enumerate(waves):
        assert torch.allclose(together[i], model.encode_audio(w[None])[0], atol=1e-4)


def test_crop_is_centre_at_eval_and_random_in_training():
    model = small_model()
    w = model.max_frames
    mel = torch.randn(2, 64, 3 * w)
    model.eval()
    out, n = model._crop(mel, torch.tensor([3 * w, 2 * w]))
    assert out.shape == (2, 64, w) and n.tolist() == [w, w]
    assert torch.equal(out[0], mel[0, :, w:2 * w])                   # centre of the first item
    assert torch.equal(out[1], mel[1, :, w // 2:w // 2 + w])         # centre of its OWN valid frames
    model.train()
    torch.manual_seed(1)
    starts = {tuple(model._starts(torch.tensor([500]), 1)[0]) for _ in range(20)}
    assert len(starts) > 1                                 # random offsets in training


def test_fusion_views_and_short_audio():
    model = small_model(fusion=True).eval()
    w = model.max_frames
    mel = torch.randn(2, 64, 4 * w)
    fused, n = model._fuse(mel, torch.tensor([4 * w, w // 2]))
    assert fused.shape == (2, 64, w)
    assert n.tolist() == [w, w // 2]
    # at init the stem averages the local crops and gives them and the global view equal weight:
    # a short clip (all four views identical) passes through unchanged, zero-padded to the window
    assert torch.allclose(fused[1, :, : w // 2], mel[1, :, : w // 2], atol=1e-5)
    assert torch.all(fused[1, :, w // 2:] == 0)
    # eval crops are the middle of each third: deterministic
    assert model._starts(torch.tensor([4 * w]), 3) == model._starts(torch.tensor([4 * w]), 3)


def test_logit_scale_init_and_clamp():
    model = small_model()
    assert math.isclose(float(model.logit_scale), math.log(1 / 0.07), rel_tol=1e-6)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    model.clamp_logit_scale()
    assert math.isclose(float(model.logit_scale), LOGIT_SCALE_MAX, rel_tol=1e-6)
    with torch.no_grad():
        model.logit_scale.fill_(-3.0)
    model.clamp_logit_scale()
    assert float(model.logit_scale) == 0.0


def test_save_load_identical_embeddings(tmp_path):
    model = small_model(audio="htsat_tiny", fusion=True).eval()
    save_model_dir(tmp_path / "m", model.state_dict(), model.export_config())
    loaded = load_model(tmp_path / "m")
    wave = torch.randn(2, int(2.2 * SR)) * 0.1
    assert torch.equal(model.encode_audio(wave), loaded.encode_audio(wave))
    assert torch.equal(model.encode_text(["a bell"]), loaded.encode_text(["a bell"]))
    assert not loaded.training


def _tiny_bert_dir(path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "cat", "bark", "rain", "the", "sound", "of"]
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(str(path))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(str(path))
    return path


def test_hf_local_dir_text_tower(tmp_path):
    bert = _tiny_bert_dir(tmp_path / "bert")
    model = small_model(text="hf", text_path=str(bert), freeze_text=True).eval()
    t = model.encode_text(["the sound of a dog", "rain"])
    assert t.shape == (2, 32)
    # mean pooling over the attention mask: padding a short text in a batch does not change it
    assert torch.allclose(t[1], model.encode_text(["rain"])[0], atol=1e-5)
    assert all(not p.requires_grad for p in model.text_encoder.parameters())
    save_model_dir(tmp_path / "m", model.state_dict(), model.export_config())
    loaded = load_model(tmp_path / "m")
    assert torch.allclose(loaded.encode_text(["a cat"]), model.encode_text(["a cat"]), atol=1e-6)


def test_hf_tower_refuses_hub_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local Hugging Face model directory"):
        HFTextEncoder("bert-base-uncased")
    with pytest.raises(ValueError, match="text_path"):
        build_text_encoder("hf")


def test_frozen_tower_cache_matches_fresh_encoding(tmp_path):
    enc = HFTextEncoder(_tiny_bert_dir(tmp_path / "bert"), freeze=True).eval()
    first = enc(["a dog", "rain", "a dog"])
    assert torch.equal(first[0], first[2])
    assert torch.allclose(enc._encode(["rain"], torch.device("cpu"))[0], first[1], atol=1e-6)


def test_hash_tokenizer_deterministic():
    tok = HashTokenizer(vocab_size=100, max_tokens=8)
    ids, mask = tok(["A dog, barking!", "dog"])
    assert ids[0, 0] == 1 and ids[1, 0] == 1                 # cls first
    assert ids[0, 2] == ids[1, 1]                             # "dog" hashes identically
    assert mask.sum(1).tolist() == [6, 2]                    # cls a dog , barking ! | cls dog
    assert torch.equal(tok(["A dog, barking!", "dog"])[0], ids)
    assert int(ids.max()) < 100


def test_text_projection_options():
    m = small_model(text_projection="identity", embed_dim=128)        # small_tiny text width is 128
    assert isinstance(m.text_proj, torch.nn.Identity)
    assert m.encode_audio(torch.randn(1, SR) * 0.1).shape == (1, 128)
    assert isinstance(small_model(text_projection="linear").text_proj, torch.nn.Linear)
    with pytest.raises(ValueError, match="embed_dim == text tower width"):
        small_model(text_projection="identity", embed_dim=32)
