"""configs/lipsync/tiny_av.yaml end to end on the tiny synthetic AV corpus (a few steps): both stages
train from the clip / latent caches, and ``avsuite eval lipsync --syncnet`` writes the LSE table."""

import json

import pytest
import torch

from tests.integration.av_synth import make_av_corpus

pytestmark = pytest.mark.slow          # ~1 min on 2 shared cores

FAST = ["data.batch_size=2", "trainer.max_steps=2", "trainer.progress_bar=false", "trainer.log_every_n_steps=1",
        "trainer.checkpoint_every_n_steps=1", "eval.clips=1", "eval.steps=2"]


def test_tiny_av_trains_on_caches_and_eval_writes_the_lse_table(tmp_path, capsys):
    from avsuite.cli import main
    from avsuite.models.syncnet import SyncNet, syncnet_preset
    from avsuite.recipes.common import export_model
    from avsuite.recipes.lipsync_cache import cached_scaling

    man = make_av_corpus(tmp_path / "av", n_clips=5, seconds=1.6, n_valid=2)
    torch.manual_seed(0)
    sn = SyncNet(syncnet_preset("tiny"))
    export_model(tmp_path / "sn", sn.state_dict(), sn.export_config())
    base = ["train", "lipsync", "--config", "configs/lipsync/tiny_av.yaml", f"data.manifest={man}", *FAST]
    assert main([*base, "stage=vae", "--out", str(tmp_path / "vae")]) == 0
    assert main([*base, f"init={tmp_path / 'vae' / 'model'}", "--out", str(tmp_path / "unet")]) == 0
    crops = torch.load(tmp_path / "vae" / "crop_cache.pt", weights_only=True)
    latents = torch.load(tmp_path / "unet" / "latent_cache.pt", weights_only=True)
    assert len(crops["clips"]) == len(latents["clips"]) == 3 and "latents" not in crops["clips"]["c000"]
    c = latents["clips"]["c000"]
    assert c["faces"].shape == (40, 32, 32, 3) and c["latents"].shape == c["masked"].shape == (40, 4, 8, 8)
    m = json.loads((tmp_path / "unet" / "metrics.json").read_text())
    assert m["steps"] == 2 and m["scaling_factor"] == pytest.approx(cached_scaling(latents["clips"]), rel=1e-6)
    assert {"mouth_l1", "mouth_psnr", "ref_psnr", "vae_psnr"} <= set(m)
    conf = (tmp_path / "unet" / "model" / "config.yaml").read_text()
    assert "mouth_crop" in conf and "5.0" in conf

    out = tmp_path / "eval"
    assert main(["eval", "lipsync", "--model", str(tmp_path / "unet" / "model"), "--data", str(man),
                 "--syncnet", str(tmp_path / "sn" / "model"), "--out", str(out), "--steps", "2"]) == 0
    got = json.loads((out / "metrics.json").read_text())
    assert got["clips"] == 2
    for cond in ("gt", "vae", "mismatch", "dub", "redub"):
        assert got[f"lse_c_{cond}"] >= 0 and got[f"lse_d_{cond}"] > 0
    assert 0 < got["vae_l1"] and got["mouth_psnr"] < 100
    table = (out / "table.md").read_text()
    assert "| ground truth" in table and "| generated with that other audio" in table and "--syncnet" in table
    assert "lse_d_dub" in capsys.readouterr().out

    # the VAE-ceiling rows alone (no UNet: the vae stage's model dir is enough), on a chosen split
    ceil = tmp_path / "ceiling"
    assert main(["eval", "lipsync", "--model", str(tmp_path / "vae" / "model"), "--data", str(man), "--syncnet",
                 str(tmp_path / "sn" / "model"), "--split", "valid", "--ceiling", "--out", str(ceil)]) == 0
    c = json.loads((ceil / "metrics.json").read_text())
    assert c["clips"] == 2 and c["lse_c_gt"] == got["lse_c_gt"] and c["lse_c_mismatch"] == got["lse_c_mismatch"]
    assert "lse_c_vae" in c and "lse_c_dub" not in c and "mouth_l1" not in c
    assert "--split valid --ceiling" in (ceil / "table.md").read_text()
    capsys.readouterr()
    assert main(["eval", "lipsync", "--model", str(tmp_path / "vae" / "model"), "--data", str(man), "--ceiling",
                 "--out", str(ceil)]) == 2
    assert "--ceiling needs --syncnet" in capsys.readouterr().err
