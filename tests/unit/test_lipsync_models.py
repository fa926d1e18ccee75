"""Lip-sync generator pieces: 13-channel UNet input, presets, scheduler config, SSIM, one-step x0,
audio dropout, per-frame mel windows, classifier-free guidance, model dir round trip."""

import math

import numpy as np
import pytest
import torch

from avsuite.data.lipsync import frame_mel_windows, ref_start
from avsuite.losses.lipsync import audio_dropout, gaussian_window, lipsync_loss, one_step_x0, psnr, ssim
from avsuite.models.lipsync import LipSyncModel, lipsync_preset, make_scheduler, model_from_state, n_params


@pytest.fixture(scope="module")
def micro():
    torch.manual_seed(0)
    return LipSyncModel(lipsync_preset("micro")).eval()


def test_unet_takes_13_channels_and_predicts_4(micro):
    n = 3
    x, ref = torch.rand(n, 3, 64, 64) * 2 - 1, torch.rand(n, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        cond = micro.condition(x, ref)
        tokens = micro.tokens(torch.randn(n, 80, 16))
        eps = micro.predict(torch.randn(n, 4, 16, 16), torch.tensor(500), cond, tokens)
    assert micro.unet.conv_in.in_channels == 13 and micro.unet.conv_out.out_channels == 4
    assert cond.shape == (n, 9, 16, 16) and tokens.shape == (n, 4, 32) and eps.shape == (n, 4, 16, 16)
    # channel 0 of the condition is the mask on the latent grid: 1 = keep (upper face), 0 = regenerate
    assert torch.equal(cond[:, 0], micro.latent_mask[0, 0].expand(n, -1, -1))
    assert micro.latent_mask[0, 0, 2].eq(1).all() and micro.latent_mask[0, 0, 10, 4:12].eq(0).all()
    # masked-frame latent = latent of the masked frame; reference latent = latent of ref
    with torch.no_grad():
        assert torch.allclose(cond[:, 1:5], micro.encode(x * micro.mask), atol=1e-5)
        assert torch.allclose(cond[:, 5:9], micro.encode(ref), atol=1e-5)


def test_presets_tiny_and_latentsync_256():
    tiny = lipsync_preset("tiny")
    assert (tiny.face_size, tiny.latent_size, tiny.downsample, tiny.unet["block_out_channels"]) == (64, 16, 4, (32, 64, 128))
    with torch.device("meta"):
        big = LipSyncModel(lipsync_preset("latentsync_256"))
    assert big.cfg.latent_size == 32 and big.cfg.downsample == 8
    assert big.unet.config.block_out_channels == (320, 640, 1280, 1280)
    assert big.unet.config.cross_attention_dim == 384 and big.unet.config.in_channels == 13
    # SD-1.5 sizes: UNet ~860 M (ours 850 M with 13 input channels, 2-D), VAE 83.65 M
    assert 840e6 < n_params(big.unet) < 870e6 and 83e6 < n_params(big.vae) < 84.5e6
    with pytest.raises(KeyError):
        lipsync_preset("huge")
    with pytest.raises(ValueError):
        lipsync_preset("tiny", n_tokens=5)


def test_scheduler_is_latentsyncs_ddim():
    s = make_scheduler(lipsync_preset("tiny"))
    assert type(s).__name__ == "DDIMScheduler"
    c = s.config
    assert (c.num_train_timesteps, c.beta_schedule, c.steps_offset, c.clip_sample, c.prediction_type,
            c.set_alpha_to_one) == (1000, "scaled_linear", 1, False, "epsilon", False)
    assert float(s.betas[0]) == pytest.approx(0.00085) and float(s.betas[-1]) == pytest.approx(0.012)
    s.set_timesteps(20)
    assert s.timesteps.tolist()[:3] == [951, 901, 851] and s.timesteps.tolist()[-1] == 1


def _ssim_reference(x: np.ndarray, y: np.ndarray, size: int, sigma: float, data_range: float) -> float:
    """Wang et al. 2004 per window, written out with loops (single channel)."""
    g = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    vals = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            a, b = x[i:i + size, j:j + size], y[i:i + size, j:j + size]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
            cov = (w * (a - ma) * (b - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_the_reference_formula():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (20, 24))
    y = np.clip(x + rng.normal(0, 0.3, x.shape), -1, 1)
    ours = float(ssim(torch.tensor(x)[None, None].float(), torch.tensor(y)[None, None].float()))
    assert ours == pytest.approx(_ssim_reference(x, y, 11, 1.5, 2.0), abs=1e-5)
    assert 0.2 < ours < 0.9
    t = torch.rand(2, 3, 32, 32)
    assert float(ssim(t, t)) == pytest.approx(1.0, abs=1e-6)
    assert float(ssim(t, torch.rand(2, 3, 32, 32))) < 0.1
    assert gaussian_window(11, 1.5).sum().item() == pytest.approx(1.0)
    assert float(psnr(torch.zeros(1, 4), torch.full((1, 4), 0.2))[0]) == pytest.approx(10 * math.log10(4 / 0.04))


def test_one_step_x0_inverts_add_noise():
    s = make_scheduler(lipsync_preset("tiny"))
    x0 = torch.randn(5, 4, 8, 8)
    eps = torch.randn_like(x0)
    t = torch.tensor([1, 100, 400, 700, 999])
    noisy = s.add_noise(x0, eps, t)
    got = one_step_x0(noisy, eps, s.alphas_cumprod[t])
    assert torch.allclose(got, x0, atol=2e-3 * 1 / float(s.alphas_cumprod[999].sqrt()))
    assert torch.allclose(got[:4], x0[:4], atol=1e-4)
    # a wrong eps gives a wrong x0 (the formula, not an identity)
    assert not torch.allclose(one_step_x0(noisy, eps * 0, s.alphas_cumprod[t]), x0, atol=1e-2)


def test_audio_dropout_zeroes_whole_items_at_rate_p():
    tok = torch.randn(4000, 4, 8) + 3
    out, keep = audio_dropout(tok, 0.1, torch.Generator().manual_seed(0))
    assert abs(1 - keep.float().mean().item() - 0.1) < 0.015
    assert out[~keep].eq(0).all() and torch.equal(out[keep], tok[keep])
    same, k2 = audio_dropout(tok, 0.0)
    assert same is tok and k2.all()


def test_loss_parts_and_the_sync_threshold():
    eps = torch.randn(4, 4, 8, 8)
    out = lipsync_loss(eps + 0.1, eps, w_pixel=0.1)
    assert float(out["mse"]) == pytest.approx(0.01, rel=1e-4) and float(out["loss"]) == pytest.approx(0.01, rel=1e-4)
    img = torch.rand(4, 3, 16, 16) * 2 - 1
    out = lipsync_loss(eps, eps, pred=img + 0.2, target=img, w_pixel=1.0, w_ssim=0.0)
    assert float(out["l1"]) == pytest.approx(0.2, rel=1e-4) and float(out["loss"]) == pytest.approx(0.2, rel=1e-4)
    cos = torch.tensor([0.5, 0.9])
    off = lipsync_loss(eps, eps, sync_cos=cos, sync_on=torch.tensor([False, False]))
    on = lipsync_loss(eps, eps, sync_cos=cos, sync_on=torch.tensor([True, False]), w_sync=1.0)
    assert float(off["sync"]) == 0 and float(on["sync"]) == pytest.approx(math.log(2), rel=1e-5)
    assert float(on["loss"]) == pytest.approx(math.log(2), rel=1e-5)


def test_frame_mel_windows_are_centred_and_padded_with_silence():
    mel = torch.arange(80 * 40, dtype=torch.float32).reshape(80, 40)
    w = frame_mel_windows(mel, 10, 25.0, 16)
    assert w.shape == (10, 80, 16)
    # frame 5: mel_start = int(80 * 5 / 25) = 16 -> columns 16 + 1 - 8 = 9 .. 24
    assert torch.equal(w[5], mel[:, 9:25])
    # frame 0: columns -7 .. 8: 7 silent columns, then 0..8
    assert w[0, :, :7].eq(-4).all() and torch.equal(w[0, :, 7:], mel[:, :9])
    assert torch.equal(frame_mel_windows(mel, 3, 25.0, 16, start=5)[0], w[5])


def test_reference_window_is_far_from_the_target():
    g = torch.Generator().manual_seed(0)
    for s in range(0, 30, 3):
        r = ref_start(g, s, 30, 16)
        assert 0 <= r < 30 and abs(r - s) >= min(16, max(s, 29 - s))
    assert ref_start(g, 1, 5, 16) == 4 and ref_start(g, 2, 5, 16) == 0     # farthest; ties: the earlier


def test_cfg_scale_one_is_the_conditional_branch(micro):
    from avsuite.inference.lipsync import guided_eps

    n = 2
    lat, cond = torch.randn(n, 4, 16, 16), torch.randn(n, 9, 16, 16)
    tok = torch.randn(n, 4, 32)
    t = torch.tensor(300)
    with torch.no_grad():
        c = micro.predict(lat, t, cond, tok)
        u = micro.predict(lat, t, cond, torch.zeros_like(tok))
        assert torch.equal(guided_eps(micro, lat, t, cond, tok, 1.0), c)
        assert torch.allclose(guided_eps(micro, lat, t, cond, tok, 2.0), 2 * c - u, atol=1e-5)
        assert not torch.allclose(c, u, atol=1e-4)       # the audio tokens matter


def test_model_dir_round_trip_keeps_the_scaling_factor(micro, tmp_path):
    from avsuite.models.registry import load_model
    from avsuite.recipes.common import export_model

    micro.with_scaling(0.7)
    try:
        export_model(tmp_path, micro.state_dict(), micro.export_config())
        back = load_model(tmp_path / "model", kind="lipsync")
    finally:
        micro.with_scaling(1.0)
    assert back.cfg.scaling_factor == pytest.approx(0.7) and float(back.scaling) == pytest.approx(0.7)
    for (k, a), (_, b) in zip(sorted(micro.state_dict().items()), sorted(back.state_dict().items())):
        if k != "scaling":
            assert torch.equal(a, b), k
    assert isinstance(model_from_state(back.state_dict(), back.export_config()), LipSyncModel)
