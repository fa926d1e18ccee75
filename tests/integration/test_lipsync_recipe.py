"""The lipsync recipe end to end on a tiny synthetic AV corpus (micro preset, a few steps), and the
inference pipeline behind ``avsuite lipsync`` with random-weight components."""

import json
import math

import av
import numpy as np
import pytest
import torch

from avsuite.config import load_config
from avsuite.recipes import lipsync as recipe
from tests.integration.av_synth import FPS, SR, make_av_corpus

pytestmark = pytest.mark.slow          # ~3 min on 2 shared cores (two training stages + 3 inference runs)

FAST = ["model.preset=micro", "data.batch_size=1", "trainer.max_steps=2", "trainer.log_every_n_steps=1",
        "trainer.progress_bar=false", "trainer.checkpoint_every_n_steps=1", "scale_batches=2", "eval.clips=1",
        "eval.steps=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lipsync")
    manifest = make_av_corpus(root / "av", n_clips=4, seconds=1.6, n_valid=1)
    torch.manual_seed(0)
    from avsuite.models.syncnet import SyncNet, syncnet_preset
    from avsuite.recipes.common import export_model

    sn = SyncNet(syncnet_preset("tiny"))
    export_model(root / "sn", sn.state_dict(), sn.export_config())
    base = ["configs/lipsync/tiny.yaml", [f"data.manifest={manifest}", *FAST]]
    vae_cfg = load_config(recipe.Config, base[0], [*base[1], "stage=vae"])
    vae = recipe.train(vae_cfg, root / "vae")
    unet_cfg = load_config(recipe.Config, base[0], [*base[1], f"init={root / 'vae' / 'model'}",
                                                    f"syncnet={root / 'sn' / 'model'}", "eval.detector=box"])
    unet = recipe.train(unet_cfg, root / "unet")
    return {"root": root, "manifest": manifest, "vae": vae, "unet": unet, "unet_cfg": unet_cfg}


def test_vae_stage_writes_a_model_dir_and_reconstruction_metrics(runs):
    out = runs["root"] / "vae"
    assert (out / "model" / "model.safetensors").is_file() and (out / "last.ckpt").is_file()
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 2 and m["eval_clips"] == 1
    assert {"vae_l1", "vae_psnr", "vae_ssim"} <= set(m) and "mouth_psnr" not in m
    assert math.isfinite(m["train_loss"]) and 0 < m["vae_l1"] < 2


def test_unet_stage_measures_the_scale_trains_with_sync_and_reports_mouth_metrics(runs):
    from avsuite.models.registry import load_model

    m = runs["unet"]
    assert m["steps"] == 2 and math.isfinite(m["train_loss"])
    for k in ("mouth_l1", "mouth_psnr", "mouth_ssim", "ref_psnr", "vae_psnr", "sync_cos", "sync_acc", "sync_cos_gt"):
        assert k in m and math.isfinite(m[k]), k
    assert 0 <= m["sync_acc"] <= 1
    model = load_model(runs["root"] / "unet" / "model", kind="lipsync")
    # scaling_factor = 1 / std of the VAE's latents on the first training batches, kept in the model dir
    assert model.cfg.scaling_factor == pytest.approx(m["scaling_factor"]) and m["scaling_factor"] != 1.0
    vae = load_model(runs["root"] / "vae" / "model", kind="lipsync")
    for k, v in vae.vae.state_dict().items():          # the VAE stayed frozen in the UNet stage
        assert torch.equal(v, model.vae.state_dict()[k]), k
    again = recipe.measure_scaling(vae, _train_rows(runs), runs["unet_cfg"].data, 2)
    assert again == pytest.approx(m["scaling_factor"], rel=1e-5)


def _train_rows(runs):
    from avsuite.data.rows import ManifestRows

    rows = ManifestRows.from_path(runs["manifest"])
    return rows.select([i for i in range(len(rows)) if rows[i].get("split") == "train"])


def _longer_audio(root, seconds=2.32):
    import soundfile as sf

    rng = np.random.default_rng(1)
    wave = (0.2 * np.sin(2 * np.pi * 180 * np.arange(int(seconds * SR)) / SR) *
            (rng.uniform(size=int(seconds * SR)) > 0.3)).astype(np.float32)
    path = root / "speech.wav"
    sf.write(path, wave, SR)
    return path, seconds


def test_cli_lipsync_writes_h264_aac_with_round_audio_x_fps_frames(runs, capsys):
    from avsuite.cli import main

    root = runs["root"]
    audio, seconds = _longer_audio(root)
    video = runs["manifest"].parent / "video" / "c000.mp4"          # 1.6 s: the video is looped
    out = root / "out.mp4"
    assert main(["lipsync", "--model", str(root / "unet" / "model"), "--video", str(video), "--audio", str(audio),
                 "--out", str(out)]) == 0
    with av.open(str(out)) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        assert vs.codec_context.name == "h264" and aus.codec_context.name == "aac"
        n = sum(1 for _ in c.decode(video=0))
    assert n == round(seconds * FPS) == 58
    assert "58 frames" in capsys.readouterr().out


def test_cli_lipsync_bad_inputs_exit_2(runs, tmp_path):
    from avsuite.cli import main

    root = runs["root"]
    audio, _ = _longer_audio(tmp_path, 0.5)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    model = str(root / "unet" / "model")
    assert main(["lipsync", "--model", model, "--video", str(bad), "--audio", str(audio),
                 "--out", str(tmp_path / "o.mp4")]) == 2
    assert main(["lipsync", "--model", model, "--video", str(runs["manifest"].parent / "video" / "c000.mp4"),
                 "--audio", str(bad), "--out", str(tmp_path / "o.mp4")]) == 2
    assert not (tmp_path / "o.mp4").exists()


def _pipeline(runs, **kw):
    from avsuite.inference.lipsync import LipSyncPipeline
    from avsuite.models.registry import load_model

    return LipSyncPipeline(load_model(runs["root"] / "unet" / "model", kind="lipsync"), steps=2, progress=False, **kw)


def test_faceless_frames_pass_through_bit_exact_and_runs_are_deterministic(runs):
    from avsuite.inference.lipsync import box_detector
    from avsuite.video.io import read_video

    frames, _ = read_video(runs["manifest"].parent / "video" / "c001.mp4")
    frames = frames.copy()
    dark = np.zeros(len(frames), bool)
    dark[[0, 5, 6, 7, 20, len(frames) - 1]] = True
    frames[dark] = 3                                                 # "no face" in these frames
    detector = lambda f: None if f.mean() < 10 else box_detector(f)  # noqa: E731
    wave = torch.from_numpy(np.random.default_rng(0).uniform(-0.3, 0.3, int(len(frames) / FPS * SR)).astype(np.float32))
    out1, fps, stats = _pipeline(runs, detector=detector).frames(frames, wave, fps=FPS)
    out2, _, _ = _pipeline(runs, detector=detector).frames(frames, wave, fps=FPS)
    assert out1.shape == frames.shape and stats["no_face_frames"] == dark.sum()
    assert np.array_equal(out1[dark], frames[dark])
    assert not np.array_equal(out1[~dark], frames[~dark])           # faces were regenerated
    assert np.array_equal(out1, out2)                                 # same seed, same output
    out3, _, _ = _pipeline(runs, detector=detector, seed=1).frames(frames, wave, fps=FPS)
    assert not np.array_equal(out1, out3)
    # the upper face (mask = keep) is the input's: only the lower face changes
    assert np.array_equal(out1[~dark][:, :16], frames[~dark][:, :16])


def test_no_face_anywhere_is_a_clear_error(runs):
    frames = np.zeros((10, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="no face"):
        _pipeline(runs, detector=lambda f: None).frames(frames, torch.zeros(SR), fps=FPS)


def test_unet_stage_kill_9_and_resume_equals_uninterrupted(runs, tmp_path):
    import random

    from tests.integration.kill_resume import kill_and_resume, same_weights

    root = runs["root"]
    fast = [a for a in FAST if not a.startswith("trainer.max_steps")]
    args = ["train", "lipsync", "--config", "configs/lipsync/tiny.yaml", f"data.manifest={runs['manifest']}", *fast,
            "trainer.max_steps=6", f"init={root / 'vae' / 'model'}", f"syncnet={root / 'sn' / 'model'}"]
    kill_step = random.Random().randint(2, 4)           # 3 train clips, batch 1: crosses epoch ends
    killed, full, step = kill_and_resume(args, tmp_path, kill_step)
    assert step >= kill_step
    assert same_weights(killed, full), f"resumed from step {step} differs from the uninterrupted run"
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (killed, full))
    assert a["steps"] == b["steps"] == 6 and a["train_loss"] == b["train_loss"] and a["mouth_psnr"] == b["mouth_psnr"]


def test_configs_load_and_match_their_presets():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    tiny = recipe.load(root / "configs/lipsync/tiny.yaml", ["init=x"])
    big = recipe.load(root / "configs/lipsync/latentsync_256.yaml")
    assert (tiny.model.preset, tiny.data.face_size, tiny.data.n_frames) == ("tiny", 64, 16)
    assert (big.model.preset, big.data.face_size, big.data.sync_frames, big.data.sync_mel_steps) == \
        ("latentsync_256", 256, 16, 52)
    assert big.trainer.precision == "bf16-mixed" and big.optim.lr == 1e-5 and big.trainer.gradient_clip_val == 1.0
    with pytest.raises(ValueError, match="init"):
        recipe.load(root / "configs/lipsync/tiny.yaml", ["init=null"])
    with pytest.raises(ValueError, match="face_size"):
        recipe.load(root / "configs/lipsync/tiny.yaml", ["init=x", "data.face_size=96"])
