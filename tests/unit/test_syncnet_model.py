"""SyncNet presets: exact Wav2Lip / LatentSync shapes, the tiny CPU preset, the BCE-on-cosine loss."""

import math

import pytest
import torch

from avsuite.losses.sync import sync_accuracy, sync_cosine, sync_loss
from avsuite.models.syncnet import SyncNet, embedding_dim, model_from_state, n_params, syncnet_preset


def test_wav2lip_preset_is_syncnet_color():
    cfg = syncnet_preset("wav2lip")
    assert cfg.face_shape == (15, 48, 96) and cfg.mel_shape == (1, 80, 16)
    model = SyncNet(cfg).eval()
    assert abs(n_params(model) - 16.4e6) < 0.1e6, n_params(model)
    with torch.no_grad():
        v, a = model(torch.rand(2, 15, 48, 96), torch.randn(2, 1, 80, 16))
    assert v.shape == a.shape == (2, 512)
    assert torch.allclose(v.norm(dim=1), torch.ones(2)) and (v >= 0).all() and (a >= 0).all()


def test_stable_syncnet_shapes_on_the_meta_device():
    cfg = syncnet_preset("stable_syncnet")
    assert cfg.face_shape == (48, 128, 256) and cfg.mel_shape == (1, 80, 52)
    with torch.device("meta"):
        model = SyncNet(cfg)
        fv = model.visual(torch.empty(2, 48, 128, 256))
        fa = model.audio(torch.empty(2, 1, 80, 52))
    assert fv.shape == (2, 2048, 1, 1) and fa.shape == (2, 2048, 1, 1)
    assert embedding_dim(cfg) == 2048
    assert n_params(model) > 100e6                        # GPU-sized


def test_stable_syncnet_blocks_run_width_scaled():
    cfg = syncnet_preset("stable_syncnet", visual={"block_out": (32,) * 8, "downsample": ((1, 2),) + (2,) * 7,
                                                   "attn": (0, 0, 0, 0, 1, 1, 0, 0)},
                         audio={"block_out": (32,) * 7, "downsample": ((2, 1), 2, 2, 1, 2, 2, (2, 3)),
                                "attn": (0, 0, 0, 1, 1, 0, 0)})
    model = SyncNet(cfg)
    v, a = model(torch.rand(2, 48, 128, 256) * 2 - 1, torch.randn(2, 1, 80, 52))
    assert v.shape == a.shape == (2, 32)
    (1 - sync_cosine(v, a)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_tiny_preset_cpu_sized_and_round_trips():
    cfg = syncnet_preset("tiny")
    assert cfg.face_shape == (15, 32, 64) and cfg.mel_shape == (1, 80, 16)
    model = SyncNet(cfg)
    assert 1e6 < n_params(model) < 3e6, n_params(model)
    v, a = model(torch.rand(4, 15, 32, 64), torch.randn(4, 1, 80, 16))
    assert v.shape == a.shape == (4, 256)
    exported = model.export_config()
    assert exported["kind"] == "syncnet"
    again = model_from_state(model.state_dict(), exported)
    model.eval()
    x, m = torch.rand(2, 15, 32, 64), torch.randn(2, 1, 80, 16)
    assert all(torch.equal(p, q) for p, q in zip(model(x, m), again(x, m)))


def test_mouth32_preset_takes_the_generators_32px_crops():
    cfg = syncnet_preset("mouth32")
    assert cfg.face_shape == (15, 16, 32) and cfg.mel_shape == (1, 80, 16) and cfg.face_width == 32
    model = SyncNet(cfg)
    assert 1e6 < n_params(model) < 3e6, n_params(model)
    v, a = model(torch.rand(3, 15, 16, 32), torch.randn(3, 1, 80, 16))
    assert v.shape == a.shape == (3, 256) and float(v.min()) >= 0


def test_unknown_preset():
    with pytest.raises(KeyError, match="tiny"):
        syncnet_preset("huge")


def test_loss_is_bce_on_the_cosine():
    v = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [1.0, 0.0]])
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.6, 0.8]])
    y = torch.tensor([1, 0, 0, 1])
    out = sync_loss(v, a, y)
    cos = torch.tensor([1.0, 0.0, 1.0, 0.6])
    want = -(math.log(1.0) + math.log(1.0) + (-100.0) + math.log(0.6)) / 4     # BCELoss clamps log at -100
    assert abs(float(out["loss"]) - want) < 1e-5
    assert torch.allclose(sync_cosine(v, a), cos)
    assert float(out["sync_acc"]) == 0.75 == sync_accuracy(cos, y)
    assert abs(float(out["cos_pos"]) - 0.8) < 1e-6 and abs(float(out["cos_neg"]) - 0.5) < 1e-6


def test_loss_gradient_pulls_positives_together():
    v = torch.nn.functional.normalize(torch.rand(8, 16), dim=1).requires_grad_()
    a = torch.nn.functional.normalize(torch.rand(8, 16), dim=1)
    sync_loss(v, a, torch.ones(8))["loss"].backward()
    step = v - 0.1 * v.grad
    assert (sync_cosine(step, a) > sync_cosine(v, a)).all()
