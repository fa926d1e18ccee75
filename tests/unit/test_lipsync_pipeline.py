"""LipSyncPipeline plumbing on a random ``micro`` model: frame batching does not change the output,
stage timings are opt-in, and only the frames the output needs are decoded."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.inference.lipsync import SAMPLE_RATE, LipSyncPipeline, box_detector
from avsuite.models.lipsync import LipSyncModel, lipsync_preset
from avsuite.video.io import write_video

FPS = 25.0


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LipSyncModel(lipsync_preset("micro")).eval()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 64x64 face-centred clip of 12 frames (a drifting gradient) and 0.4 s of noise speech."""
    root = tmp_path_factory.mktemp("pipe")
    t, yy, xx = np.meshgrid(np.arange(12), np.arange(64), np.arange(64), indexing="ij")
    frames = np.stack([(xx * 3 + t * 5) % 256, (yy * 3) % 256, (xx + yy + t) % 256], -1).astype(np.uint8)
    video = write_video(root / "face.mp4", frames, FPS)
    wave = np.random.default_rng(0).uniform(-0.3, 0.3, int(0.4 * SAMPLE_RATE)).astype(np.float32)
    sf.write(root / "speech.wav", wave, SAMPLE_RATE)
    return root, video, frames, torch.from_numpy(wave)


def pipe(model, **kw):
    return LipSyncPipeline(model, detector=box_detector, steps=2, progress=False, **kw)


def test_per_frame_batches_give_the_batched_output(model, clip):
    _, _, frames, wave = clip
    batched, _, s1 = pipe(model, batch_frames=6).frames(frames[:10], wave, fps=FPS)
    single, _, s2 = pipe(model, batch_frames=1).frames(frames[:10], wave, fps=FPS)
    assert (s1["chunks"], s2["chunks"]) == (2, 10)                               # 6 + 4 padded to 6; 10 x 1
    assert np.abs(batched.astype(int) - single.astype(int)).max() <= 1          # float rounding only
    assert not np.array_equal(batched, frames[:10])
    with pytest.raises(ValueError, match="batch_frames"):
        pipe(model, batch_frames=0)


def test_timings_are_opt_in_and_cover_the_stages(model, clip, tmp_path):
    root, video, _, _ = clip
    t: dict = {}
    stats = pipe(model)(video, root / "speech.wav", tmp_path / "a.mp4", timings=t)
    assert set(t) == {"read", "detect", "align", "audio", "vae_encode", "unet", "vae_decode", "paste", "mux"}
    assert all(v >= 0 for v in t.values()) and sum(t.values()) <= stats["wall_s"]
    assert t["unet"] > 0
    plain = pipe(model)(video, root / "speech.wav", tmp_path / "b.mp4")
    assert plain["frames"] == stats["frames"] == 10 and "timings" not in plain


def test_only_the_needed_frames_are_decoded_and_short_videos_loop(model, clip):
    _, video, frames, wave = clip
    out, fps, stats = pipe(model).frames(video, wave[: int(0.2 * SAMPLE_RATE)])
    assert fps == FPS and len(out) == stats["frames"] == 5 and stats["source_frames"] == 5
    out, _, stats = pipe(model).frames(video, torch.cat([wave, wave]))             # 0.8 s > the 0.48 s clip
    assert len(out) == 20 and stats["source_frames"] == 12


def test_a_mouth_crop_model_is_refused_for_videos_with_one_clear_error(model, clip, tmp_path, capsys):
    from avsuite.checkpoint import save_model_dir
    from avsuite.cli import main
    from avsuite.inference.lipsync_tools import lipsync_defaults

    root, video, _, _ = clip
    audio = root / "speech.wav"
    conf = {**model.export_config(), "crop_box": [0.0, 0.0, 1.0, 1.0], "sample_rate": SAMPLE_RATE}
    save_model_dir(tmp_path / "face", model.state_dict(), {**conf, "mouth_crop": None})
    save_model_dir(tmp_path / "mouth", model.state_dict(), {**conf, "mouth_crop": [1.0, 1.25, 2.5]})
    assert lipsync_defaults(tmp_path / "face")["steps"] == 20
    with pytest.raises(ValueError, match="mouth crops"):
        lipsync_defaults(tmp_path / "mouth")
    out = tmp_path / "o.mp4"
    assert main(["lipsync", "--model", str(tmp_path / "mouth"), "--video", str(video), "--audio", str(audio),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "mouth crops" in err and "Traceback" not in err and not out.exists()
