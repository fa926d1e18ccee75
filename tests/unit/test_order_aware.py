"""Issue 12: order-aware audio pooling heads, partly tuned text tower, and the 2x2 metric oracle.

Why every 2x2 score was exactly 0: with the order-blind pooling the two audios of a set embed (almost)
identically, and with ``a0 == a1`` the strict inequalities contradict each other (text needs
``s00 > s01`` and ``s01 > s00``; audio needs ``s00 > s00``); the same holds for ``t0 == t1``.
An oracle that encodes order scores 100 %; its order-blind twin scores exactly 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from avsuite.eval.benchmarks import compositional_eval
from avsuite.eval.metrics_compositional import compositional_metrics
from avsuite.models.audio_encoders import build_audio_encoder, masked_mean_max
from avsuite.models.clap import ClapModel, ClapModelConfig, tiny_frontend
from avsuite.models.temporal_pool import AttentionPool, SegmentPool, segment_masks, temporal_head

SR = 8000
TONES = {"low hum": 300.0, "bell": 700.0, "whistle": 1500.0, "buzz": 2300.0, "chirp": 3100.0}


# ----------------------------------------------------------------------------- metric oracle
class _ToneOracle(nn.Module):
    """Knows the tone of each event: audio -> [which tone in the first half | in the second half];
    "x followed by y" -> [onehot x | onehot y]. ``order_blind``: both halves summed (a bag of events)."""

    sample_rate = SR

    def __init__(self, order_blind: bool = False):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.order_blind = order_blind
        self.names = list(TONES)

    def _tone(self, w: torch.Tensor) -> torch.Tensor:
        spec = torch.fft.rfft(w).abs()
        freqs = torch.fft.rfftfreq(w.numel(), 1 / SR)
        energy = torch.stack([spec[(freqs - f).abs() < 40].sum() for f in TONES.values()])
        return torch.nn.functional.one_hot(energy.argmax(), len(TONES)).float()

    def _pack(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        v = torch.cat([first + second, first + second]) if self.order_blind else torch.cat([first, second])
        return torch.nn.functional.normalize(v, dim=0)

    def encode_audio(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = []
        for w, n in zip(wave, lengths.tolist()):
            half = n // 2
            out.append(self._pack(self._tone(w[:half]), self._tone(w[half:n])))
        return torch.stack(out)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        eye = torch.eye(len(self.names))
        out = []
        for t in texts:
            x, y = t.split(" followed by ")
            out.append(self._pack(eye[self.names.index(x)], eye[self.names.index(y)]))
        return torch.stack(out)


def _tone_rows():
    t = torch.arange(int(0.6 * SR)) / SR
    return [{"id": f"{name}-{k}", "label": name, "wave": (0.3 * torch.sin(2 * math.pi * f * t + k)).float()}
            for name, f in TONES.items() for k in range(2)]


def test_order_oracle_scores_full_marks_and_order_blind_twin_scores_exactly_zero():
    rows = _tone_rows()
    good = compositional_eval(_ToneOracle(), rows, n=20, kinds=("order",), clip_seconds=None)
    assert good["order_sets"] == 20
    assert good["order_text_score"] == good["order_audio_score"] == good["order_group_score"] == 1.0
    blind = compositional_eval(_ToneOracle(order_blind=True), rows, n=20, kinds=("order",), clip_seconds=None)
    assert blind["order_text_score"] == blind["order_audio_score"] == blind["order_group_score"] == 0.0


def test_identical_audio_or_identical_text_embeddings_score_exactly_zero_not_chance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 1, 16)).repeat(2, axis=1)           # a0 == a1 (order-blind audio)
    t = rng.normal(size=(500, 2, 16))
    m = compositional_metrics(np.einsum("nad,ntd->nat", a, t))
    assert m["text_score"] == m["audio_score"] == m["group_score"] == 0.0
    t_same = t[:, :1].repeat(2, axis=1)                           # t0 == t1 (order-blind text)
    m = compositional_metrics(np.einsum("nad,ntd->nat", rng.normal(size=(500, 2, 16)), t_same))
    assert m["text_score"] == m["audio_score"] == m["group_score"] == 0.0
    # nearly identical text (a tiny order-dependent part) -> the audio score stays ~0, not 25 %
    t_near = t_same + 1e-3 * rng.normal(size=t_same.shape)
    m = compositional_metrics(np.einsum("nad,ntd->nat", rng.normal(size=(500, 2, 16)), t_near))
    assert m["audio_score"] < 0.02 and m["group_score"] < 0.02
    # independent random embeddings -> chance
    m = compositional_metrics(np.einsum("nad,ntd->nat", rng.normal(size=(4000, 2, 16)), t.repeat(8, axis=0)))
    assert abs(m["text_score"] - 0.25) < 0.03 and abs(m["group_score"] - 1 / 6) < 0.03


# ----------------------------------------------------------------------------- pooling heads
def test_segment_masks_tile_the_valid_frames():
    lengths = torch.tensor([8, 5, 2, 1])
    seg = segment_masks(lengths, 9, 4)
    assert seg.shape == (4, 4, 9)
    assert bool(seg.any(-1).all())                                # every segment has a frame
    for b, n in enumerate(lengths.tolist()):
        covered = seg[b].any(0)
        assert covered[:n].all() and not covered[n:].any()       # exactly the valid frames
        firsts = [int(seg[b, j].nonzero()[0]) for j in range(4)]
        assert firsts == sorted(firsts)                           # in time order
    assert seg[0].sum(-1).tolist() == [2, 2, 2, 2]


@pytest.mark.parametrize("head_cls", [SegmentPool, AttentionPool])
def test_head_starts_at_zero_is_order_sensitive_and_padding_aware(head_cls):
    torch.manual_seed(0)
    head = head_cls(8, 4).eval()
    x = torch.randn(2, 8, 12)
    assert torch.equal(head(x), torch.zeros(2, 8))                # zero-initialised output layer
    nn.init.normal_(head.proj.weight, std=0.5)
    if isinstance(head, AttentionPool):
        nn.init.normal_(head.pos, std=1.0)
    swapped = torch.cat([x[..., 6:], x[..., :6]], -1)
    assert (head(x) - head(swapped)).abs().max() > 1e-2             # order changes the output
    mean, mx = masked_mean_max(x, None)                            # ... the old pooling does not
    mean_s, mx_s = masked_mean_max(swapped, None)
    assert torch.allclose(mean, mean_s, atol=1e-6) and torch.equal(mx, mx_s)
    # an item alone == the same item zero-padded in a batch (padding masked)
    lengths = torch.tensor([12, 7])
    mask = torch.arange(12)[None] < lengths[:, None]
    batched = head(x * mask[:, None], mask)
    alone = head(x[1:, :, :7])
    assert torch.allclose(batched[1], alone[0], atol=1e-5)


@pytest.mark.parametrize("name", ["cnn14_tiny", "htsat_tiny"])
@pytest.mark.parametrize("pool", ["segments", "attention"])
def test_encoder_with_head_equals_old_encoder_at_init_and_learns_order(name, pool):
    torch.manual_seed(0)
    mel = torch.randn(2, 64, 128)
    mel[:, :12, :64] += 4.0                                        # low band first, high band second
    mel[:, 40:52, 64:] += 4.0
    old = build_audio_encoder(name, 64)
    for m in old.modules():                                        # BatchNorm statistics of real inputs
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        old(mel)
    old.eval()
    new = build_audio_encoder(name, 64, pool=pool).eval()
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("temporal.") for k in missing)
    assert torch.allclose(new(mel), old(mel), atol=1e-6)            # zero head: same tower as before
    swapped = torch.cat([mel[..., 64:], mel[..., :64]], -1)
    nn.init.normal_(new.temporal.proj.weight, std=0.3)

    def change(enc):
        e0, e1 = enc(mel), enc(swapped)
        return float(((e0 - e1).detach().norm(dim=-1) / e0.norm(dim=-1).clamp(min=1e-6)).mean())

    # the old tower moves only through conv edge effects (clip start/end padding); the head adds order
    assert change(new) > 1.5 * change(old)


def test_unknown_pool_and_bad_segments_fail():
    with pytest.raises(ValueError, match="unknown audio pool"):
        temporal_head("lstm", 8, 4)
    with pytest.raises(ValueError, match=">= 2 segments"):
        SegmentPool(8, 1)
    with pytest.raises(ValueError, match="audio_segments"):
        ClapModelConfig(audio_pool="segments", audio_segments=1)
    with pytest.raises(ValueError, match="text_trainable_layers"):
        ClapModelConfig(freeze_text=True, text_trainable_layers=1)


# ----------------------------------------------------------------------------- model + configs
def test_default_model_has_no_head_keys_and_segments_model_round_trips(tmp_path):
    from avsuite.checkpoint import save_model_dir
    from avsuite.models.registry import load_model

    kw = dict(audio="cnn14_tiny", text="small_tiny", freeze_text=False, embed_dim=32, max_seconds=2.0)
    assert not any("temporal" in k for k in ClapModel(ClapModelConfig(**kw), tiny_frontend()).state_dict())
    torch.manual_seed(0)
    model = ClapModel(ClapModelConfig(**kw, audio_pool="segments", audio_segments=3), tiny_frontend())
    nn.init.normal_(model.audio_encoder.temporal.proj.weight, std=0.1)
    model.eval()
    save_model_dir(tmp_path / "m", model.state_dict(), model.export_config())
    loaded = load_model(tmp_path / "m")
    wave = torch.randn(2, int(1.5 * SR * 2)) * 0.1
    assert loaded.cfg.audio_pool == "segments" and loaded.cfg.audio_segments == 3
    assert torch.equal(model.encode_audio(wave), loaded.encode_audio(wave))


@pytest.mark.parametrize("name", ["compa_tiny", "teminal_a_tiny", "teminal_b_tiny", "clap_order_tiny"])
def test_issue12_configs_load_with_the_order_aware_tower(name):
    from avsuite.recipes.clap import load

    cfg = load(f"configs/clap/{name}.yaml")
    assert cfg.model.audio_pool == "segments"
    tuned = name != "clap_order_tiny"
    assert (cfg.model.text_trainable_layers == 2) == tuned and cfg.model.freeze_text == (not tuned)
    assert (cfg.compose.mode != "none") == tuned
    assert cfg.trainer.max_steps == {"teminal_a_tiny": 50, "teminal_b_tiny": 70}.get(name, 120)   # one budget


# ----------------------------------------------------------------------------- text tower tuning
def test_minilm_last_layer_tuning_equals_the_frozen_tower_and_trains_only_that_layer():
    from avsuite.models.text_encoders import build_text_encoder

    texts = ["a dog barking followed by rain", "rain followed by a dog barking", "a bell"]
    full = build_text_encoder("minilm", freeze=True).eval()
    part = build_text_encoder("minilm", freeze=False, trainable_layers=1).eval()
    assert torch.allclose(part(texts), full(texts), atol=1e-5)    # cached prefix + 1 layer == whole tower
    part.train()
    part(texts).pow(2).sum().backward()
    with_grad = {n for n, p in part.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and all(n.startswith("model.encoder.layer.5.") for n in with_grad)
    assert all(not p.requires_grad for n, p in part.named_parameters() if not n.startswith("model.encoder.layer.5."))
    with pytest.raises(ValueError, match="trainable_layers must be in"):
        build_text_encoder("minilm", freeze=False, trainable_layers=7)
    with pytest.raises(ValueError, match="HF towers"):
        build_text_encoder("small_tiny", trainable_layers=1)


def test_text_lr_scale_puts_the_text_tower_in_its_own_lr_groups():
    from avsuite.recipes.clap import ClapModule, load

    cfg = load("configs/clap/tiny.yaml", ["model.text=small_tiny", "model.freeze_text=false",
                                          "model.text_projection=mlp", "model.embed_dim=32", "text_lr_scale=0.1"])
    module = ClapModule(cfg)
    groups = module.configure_optimizers()["optimizer"].param_groups
    text = {id(p) for p in module.model.text_encoder.parameters()}
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in module.model.parameters() if p.requires_grad)   # each once
    for g in groups:
        is_text = {id(p) in text for p in g["params"]}
        assert len(is_text) == 1
        assert g["initial_lr"] == pytest.approx(cfg.optim.lr * (0.1 if is_text.pop() else 1.0))   # before warm-up
    with pytest.raises(ValueError, match="text_lr_scale"):
        load("configs/clap/tiny.yaml", ["text_lr_scale=0"])
