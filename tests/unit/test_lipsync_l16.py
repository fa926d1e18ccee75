"""Issue 10, second generator attempt: the /2-VAE preset ``mouth32_l16``, the mouth-weighted VAE
loss, the SyncNet-crop check of the UNet stage and the UNet-free ``ceiling`` rows of the LSE table."""

from pathlib import Path

import pytest
import torch

from avsuite.data.lipsync import LipSyncDataConfig, to_signed
from avsuite.eval import lipsync as ev
from avsuite.losses.lipsync import vae_loss
from avsuite.models.lipsync import LipSyncModel, lipsync_preset
from avsuite.recipes import lipsync as recipe

ROOT = Path(__file__).resolve().parents[2]


def test_mouth32_l16_has_16x16_latents_and_no_attention_at_full_latent_resolution():
    cfg = lipsync_preset("mouth32_l16")
    assert (cfg.face_size, cfg.downsample, cfg.latent_size, cfg.n_frames) == (32, 2, 16, 8)
    assert lipsync_preset("mouth32").latent_size == 8
    torch.manual_seed(0)
    model = LipSyncModel(cfg).eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = model.encode(x)
        eps = model.predict(torch.randn_like(z), torch.tensor(10), model.condition(x, x.flip(0)), torch.randn(3, 4, 64))
        assert model.decode(z).shape == x.shape
    assert z.shape == eps.shape == (3, 4, 16, 16)
    assert model.latent_mask.shape == (1, 1, 16, 16) and 0 < model.latent_mask.mean() < 1
    assert cfg.unet["down_block_types"][0] == "DownBlock2D" and "CrossAttn" in cfg.unet["down_block_types"][1]


def test_config_mouth32_l16_av_loads_and_matches_its_preset():
    cfg = recipe.load(ROOT / "configs/lipsync/mouth32_l16_av.yaml", ["init=x"])
    assert (cfg.model.preset, cfg.data.face_size, cfg.data.n_frames, cfg.data.mouth_crop) == \
        ("mouth32_l16", 32, 8, (5.0, -0.5))
    assert cfg.loss.vae_mouth_weight == 4.0 and cfg.loss.w_sync > 0 and cfg.cache_latents
    with pytest.raises(ValueError, match="loss weights"):
        recipe.load(ROOT / "configs/lipsync/mouth32_l16_av.yaml", ["init=x", "loss.vae_mouth_weight=-1"])


def test_vae_loss_weight_constant_equals_plain_and_mouth_weight_counts_mouth_errors_more():
    torch.manual_seed(0)
    x, recon = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mean, logvar = torch.zeros(2, 4, 4, 4), torch.zeros(2, 4, 4, 4)
    plain = vae_loss(recon, x, mean, logvar)
    const = vae_loss(recon, x, mean, logvar, weight=torch.full((1, 1, 8, 8), 3.0))
    assert torch.allclose(plain["loss"], const["loss"]) and torch.allclose(plain["l1"], const["l1"])
    mouth = torch.zeros(1, 1, 8, 8)
    mouth[..., 4:, :] = 1                                     # lower half = the regenerated region
    err_low = x.clone()
    err_low[..., 4:, :] += 0.5                                # the same error, once in each half
    err_top = x.clone()
    err_top[..., :4, :] += 0.5
    w = 1 + 3 * mouth                                         # vae_mouth_weight = 4
    low, top = (vae_loss(r, x, mean, logvar, weight=w)["l1"] for r in (err_low, err_top))
    assert low == pytest.approx(0.5 * 4 / 5) and top == pytest.approx(0.5 * 1 / 5)
    with pytest.raises(ValueError, match="weight"):
        vae_loss(recon, x, mean, logvar, weight=-mouth)


def test_the_sync_loss_refuses_a_syncnet_trained_on_another_crop():
    mouth = LipSyncDataConfig(mouth_crop=(5.0, -0.5), face_size=32, n_frames=8)
    face = LipSyncDataConfig(crop_box=(0.28, 0.33, 0.72, 0.77))
    assert recipe.crop_mismatch({"mouth_crop": [5.0, -0.5], "crop_box": [0, 0, 1, 1]}, mouth) is None
    assert "mouth_crop" in recipe.crop_mismatch({"mouth_crop": [4.0, -0.5]}, mouth)
    assert "face crops" in recipe.crop_mismatch({"crop_box": [0.28, 0.33, 0.72, 0.77]}, mouth)
    assert "mouth crops" in recipe.crop_mismatch({"mouth_crop": [5.0, -0.5]}, face)
    assert recipe.crop_mismatch({"crop_box": [0.28, 0.33, 0.72, 0.77], "mouth_crop": None}, face) is None
    assert "crop_box" in recipe.crop_mismatch({}, face)                  # default whole frame != face box


def test_load_syncnet_checks_the_model_dirs_crop(tmp_path):
    from avsuite.models.syncnet import SyncNet, syncnet_preset
    from avsuite.recipes.common import export_model

    sn = SyncNet(syncnet_preset("mouth32"))
    export_model(tmp_path / "a", sn.state_dict(), {**sn.export_config(), "mouth_crop": [5.0, -0.5]})
    export_model(tmp_path / "b", sn.state_dict(), {**sn.export_config(), "mouth_crop": None,
                                                   "crop_box": [0.28, 0.33, 0.72, 0.77]})
    d = recipe.load(ROOT / "configs/lipsync/mouth32_l16_av.yaml", ["init=x"]).data
    assert recipe.load_syncnet(str(tmp_path / "a" / "model"), d) is not None
    with pytest.raises(ValueError, match="face crops"):
        recipe.load_syncnet(str(tmp_path / "b" / "model"), d)


class _Crops:
    """A stand-in Dubber: the top-left 32 px of each frame is the model's crop (no generation)."""

    def __init__(self, model):
        self.model = model

    def crops(self, row, frames):
        return to_signed(torch.from_numpy(frames[:, :32, :32].copy())), (0, 0, 32, 32)

    def __call__(self, *a):
        raise AssertionError("the ceiling rows must not run the generator")


def test_lse_table_ceiling_rows_need_no_generator_and_split_selects_rows(tmp_path):
    from avsuite.data.rows import ManifestRows
    from avsuite.models.syncnet import SyncNet, syncnet_preset
    from tests.integration.av_synth import make_av_corpus

    rows = list(ManifestRows.from_path(make_av_corpus(tmp_path, n_clips=4, seconds=1.2, n_valid=2)))
    valid = ev.heldout_rows(rows, "valid")
    assert [r["split"] for r in valid] == ["valid", "valid"] and ev.heldout_rows(rows) == valid
    assert all(r["split"] == "train" for r in ev.heldout_rows(rows, "train"))
    with pytest.raises(ValueError, match="test"):
        ev.heldout_rows(rows, "test")
    torch.manual_seed(0)
    sn = SyncNet(syncnet_preset("tiny")).eval()
    model = LipSyncModel(lipsync_preset("micro")).eval()
    model.mask = torch.ones(1, 1, 32, 32)                    # nothing regenerated: the VAE row == ground truth
    m = ev.lse_table(_Crops(model), sn, (0.0, 0.0, 1.0, 1.0), valid, ceiling=True)
    assert {k for k in m if k.startswith("lse_c_")} == {"lse_c_gt", "lse_c_vae", "lse_c_mismatch"}
    assert m["lse_c_vae"] == m["lse_c_gt"] and m["lse_d_vae"] == m["lse_d_gt"] and "mouth_l1" not in m
    table = ev.format_table(m)
    assert table.count("\n| ") == 7 and "generated" not in table and "VAE reconstruction" in table
