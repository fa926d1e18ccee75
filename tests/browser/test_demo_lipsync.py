"""The lip-sync demo: a synthetic face video + a speech clip uploaded in headless Chromium, the
lip-synced mp4 back (plays in the page; round(audio_s x fps) frames when decoded), LSE-C / LSE-D
from an evaluator SyncNet equal to the API's, and bad input as a message in the page.

Models are random-init micro / tiny dirs (a UI test needs no trained model): 2 DDIM steps, ~1 s clips."""

from __future__ import annotations

import math
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import avsuite
from avsuite.demos import load_demo, serve
from tests.browser.ui import (assert_loopback_only, assert_no_traceback, by_css, open_page, status_after_click,
                              upload, wait_for)

pytestmark = pytest.mark.browser

AUDIO_SECONDS = 1.2            # the 1.0 s video is looped to 30 frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Random-init lip-sync + SyncNet model dirs, a 1 s synthetic face video, a 1.2 s speech-like clip,
    and a 0.6 s video without a face."""
    import soundfile as sf
    import torch

    from avsuite.models.lipsync import LipSyncModel, lipsync_preset
    from avsuite.models.syncnet import SyncNet, syncnet_preset
    from avsuite.recipes.common import export_model
    from avsuite.video.io import write_video
    from tests.integration.av_synth import FPS, SR, render_clip

    root = tmp_path_factory.mktemp("demo-lipsync")
    torch.manual_seed(0)
    net = LipSyncModel(lipsync_preset("micro"))
    export_model(root / "lipsync", net.state_dict(),
                 {**net.export_config(), "inference": {"steps": 2, "guidance": 1.5, "detector": "blazeface"}})
    sn = SyncNet(syncnet_preset("tiny"))
    export_model(root / "syncnet", sn.state_dict(), sn.export_config())
    frames, wave = render_clip(1.0, np.random.default_rng(0))
    write_video(root / "face.mp4", frames, FPS, audio=wave, sample_rate=SR)
    _, speech = render_clip(AUDIO_SECONDS, np.random.default_rng(1))
    sf.write(root / "speech.wav", speech, SR)
    blank = np.random.default_rng(2).integers(100, 140, (15, 64, 64, 3), dtype=np.uint8)
    write_video(root / "no_face.mp4", blank, FPS)
    return {"model": root / "lipsync" / "model", "syncnet": root / "syncnet" / "model", "video": root / "face.mp4",
            "audio": root / "speech.wav", "no_face": root / "no_face.mp4", "root": root}


def _upload_video(driver, path: Path) -> None:
    by_css(driver, "#ls-video-in input[type=file]").send_keys(str(path))
    wait_for(driver, lambda d: d.find_elements("css selector", "#ls-video-in video"), what="video upload")


def _decoded_frames(url: str, dst: Path) -> tuple[int, float, str]:
    import av

    with urllib.request.urlopen(url, timeout=30) as resp:
        dst.write_bytes(resp.read())
    with av.open(str(dst)) as c:
        fps, codec = float(c.streams.video[0].average_rate), c.streams.video[0].codec_context.name
        return sum(1 for _ in c.decode(video=0)), fps, codec


def test_lipsync_demo_returns_a_playable_video_with_the_audio_length_and_lse(browser, serve_demo, clips, tmp_path,
                                                                             shots):
    url = serve_demo("lipsync", clips["model"], syncnet=clips["syncnet"])
    open_page(browser, url, "#ls-video-in")
    _upload_video(browser, clips["video"])
    upload(browser, str(clips["audio"]), "#ls-audio")
    status = status_after_click(browser, "#ls-run", "#ls-status")
    browser.save_screenshot(str(shots / "lipsync_result.png"))
    assert_no_traceback(browser)
    assert not status.startswith("Error"), status
    n_out = math.floor(AUDIO_SECONDS * 25 + 0.5)
    assert f"{n_out} frames at 25 fps" in status and f"{n_out} with a face, 0 without" in status, status
    assert "4 DDIM steps" in status, status                      # 2 chunks of 16 frames x 2 steps

    src = wait_for(browser, lambda d: d.execute_script(
        "const v = document.querySelector('#ls-video-out video'); return v && v.currentSrc"), what="result video")
    assert src.startswith(url)
    frames, fps, codec = _decoded_frames(src, tmp_path / "shown.mp4")
    assert (frames, fps, codec) == (n_out, 25.0, "h264")
    playable = wait_for(browser, lambda d: d.execute_script(
        "const v = document.querySelector('#ls-video-out video');"
        "return v.readyState >= 2 && v.videoWidth > 0 ? [v.videoWidth, v.duration] : null"), what="video decoded")
    assert playable[0] == 64 and playable[1] == pytest.approx(AUDIO_SECONDS, abs=0.1)

    lse_c = float(by_css(browser, "#ls-lse-c input").get_attribute("value"))
    lse_d = float(by_css(browser, "#ls-lse-d input").get_attribute("value"))
    model = avsuite.load_model(clips["model"], kind="lipsync")
    grader = avsuite.load_model(clips["syncnet"], kind="syncnet")
    api = avsuite.lipsync_file(model, clips["video"], clips["audio"], tmp_path / "api.mp4", steps=2, guidance=1.5,
                               seed=0, detector="blazeface", syncnet=grader)
    assert (lse_c, lse_d) == (pytest.approx(api["lse_c"], abs=1e-3), pytest.approx(api["lse_d"], abs=1e-3))
    assert api["n_windows"] > 0 and "AV offset" in by_css(browser, "#ls-sync-note").text
    assert_loopback_only(browser, url)

    # a video without a face: the error in the page, no result, no traceback
    open_page(browser, url, "#ls-video-in")
    _upload_video(browser, clips["no_face"])
    upload(browser, str(clips["audio"]), "#ls-audio")
    status = status_after_click(browser, "#ls-run", "#ls-status")
    assert status.startswith("Error:") and "no face detected" in status and "no_face.mp4" in status, status
    assert "/tmp" not in status and not browser.find_elements("css selector", "#ls-video-out video")
    assert_no_traceback(browser)


# ----------------------------------------------------------------------------- no browser: the handler and options
@pytest.fixture(scope="module")
def app_and_model(clips):
    return load_demo("lipsync"), avsuite.load_model(clips["model"], kind="lipsync")


def test_bad_inputs_are_messages_naming_the_problem(app_and_model, clips, tmp_path):
    import soundfile as sf

    app, model = app_and_model
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 50)
    long_wav = tmp_path / "long.wav"
    sf.write(long_wav, np.zeros(int(31 * 16000), np.float32), 16000)
    video, audio = str(clips["video"]), str(clips["audio"])
    cases = {
        (None, audio): "Upload or record a face video",
        (video, None): "Upload or record a speech clip",
        (str(garbage), audio): "cannot read the video",
        (video, str(garbage)): "cannot read the audio",
        (video, str(long_wav)): "the audio is too long (31.0 s",
    }
    for (v, a), expected in cases.items():
        out, status, c, d, _ = app.lipsync(model, v, a, 2, 1.5, 0, "blazeface")
        assert out is None and c is None and d is None
        assert status.startswith("**Error:**") and expected in status, status
        assert str(tmp_path) not in status                   # server paths are reduced to file names
    out, status, *_ = app.lipsync(model, video, audio, 2, 1.5, 0.5, "blazeface")
    assert out is None and "whole number" in status
    # the video limits (checked from the header / demuxing, before anything is decoded)
    with pytest.raises(ValueError, match=r"the video is too long: 1\.0 s"):
        avsuite.lipsync_file(model, video, audio, tmp_path / "o.mp4", max_video_seconds=0.5)
    with pytest.raises(ValueError, match="too large to decode: 25 frames of 64x64"):
        avsuite.lipsync_file(model, video, audio, tmp_path / "o.mp4", max_decoded_bytes=25 * 64 * 64 * 3 - 1)
    assert not (tmp_path / "o.mp4").exists()


def test_progress_follows_the_ddim_steps_and_no_syncnet_says_how_to_grade(app_and_model, clips):
    app, model = app_and_model
    calls = []
    out, status, c, d, note = app.lipsync(model, str(clips["video"]), str(clips["audio"]), 3, 1.0, 1, "box",
                                          progress=lambda value, desc=None, unit=None: calls.append((value, desc)))
    assert out and Path(out).is_file() and "6 DDIM steps" in status            # 2 chunks x 3 steps
    assert [v for v, desc in calls if desc == "DDIM steps"] == [(k, 6) for k in range(1, 7)]
    assert c is None and d is None and "--syncnet" in note


def test_syncnet_option_is_checked_by_the_launcher(clips, clap_model_dir, tmp_path, capsys):
    from avsuite.cli import main

    with pytest.raises(ValueError, match="does not grade with a SyncNet"):
        serve("clap", clap_model_dir, port=0, syncnet=clips["syncnet"])
    with pytest.raises(FileNotFoundError, match="syncnet dir not found"):
        serve("lipsync", clips["model"], port=0, syncnet=tmp_path / "nope")
    assert main(["demo", "lipsync", "--model", str(clips["model"]), "--syncnet", str(tmp_path / "nope")]) == 2
    assert "syncnet dir not found" in capsys.readouterr().err
    assert main(["demo", "lipsync", "--model", str(clap_model_dir)]) == 2      # a CLAP dir is not a lip-sync model
    assert "needs a 'lipsync' model" in capsys.readouterr().err
