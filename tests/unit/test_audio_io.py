import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.audio.io import AudioDecodeError, audio_duration, load_audio, save_audio


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "FLOAT"])
def test_wav_subtypes_and_stereo_downmix(tmp_path, tone, subtype):
    left, right = tone(440, 0.5, 16000), tone(880, 0.5, 16000)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, np.stack([left, right], 1), 16000, subtype=subtype)
    wave, sr = load_audio(path)
    assert sr == 16000 and wave.dtype == torch.float32 and wave.shape == (8000,)
    tol = 1e-2 if subtype == "PCM_U8" else 1e-4
    np.testing.assert_allclose(wave.numpy(), (left + right) / 2, atol=tol)


def test_resample_on_load(tmp_path, tone):
    sf.write(tmp_path / "a.flac", tone(440, 1.0, 44100), 44100)
    wave, sr = load_audio(tmp_path / "a.flac", sr=16000)
    assert sr == 16000 and wave.shape == (16000,)
    spec = np.abs(np.fft.rfft(wave.numpy()))
    assert abs(int(spec.argmax()) - 440) <= 1  # 1 Hz bins: the tone stays at 440 Hz


def test_real_ogg_and_ffmpeg_formats(tmp_path, real_clips, tone):
    wave, sr = load_audio(real_clips[0], sr=16000)
    assert sr == 16000 and wave.numel() > 1000 and wave.abs().max() <= 1.0
    sf.write(tmp_path / "t.wav", tone(440, 1.0, 16000), 16000)
    for ext, args in [("m4a", ["-c:a", "aac"]), ("mp3", []), ("g722", ["-c:a", "g722", "-f", "g722"])]:
        out = tmp_path / f"t.{ext}"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(tmp_path / "t.wav"), *args, str(out)], check=True)
        wave, sr = load_audio(out, sr=16000)
        assert abs(wave.shape[0] - 16000) < 2500, ext
        assert abs(int(np.abs(np.fft.rfft(wave.numpy()[:16000], n=16000)).argmax()) - 440) <= 2, ext


def test_audio_track_of_a_video(tmp_path):
    out = tmp_path / "v.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:duration=1",
                    "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000:duration=1", "-shortest",
                    "-c:v", "mpeg4", "-c:a", "aac", str(out)], check=True)
    wave, sr = load_audio(out, sr=16000)
    assert sr == 16000 and 14000 < wave.shape[0] < 18000


def test_bad_inputs_raise_one_clear_error(tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "nope.wav", "not found")
    (tmp_path / "empty.wav").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.wav", "empty file")
    (tmp_path / "junk.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    cases["corrupt"] = (tmp_path / "junk.wav", "corrupt|unsupported|not a readable")
    (tmp_path / "notes.txt").write_text("hello, I am not audio\n" * 50)
    cases["text"] = (tmp_path / "notes.txt", "no audio stream|corrupt|unsupported|not a readable")
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2] * 100, np.float32), 16000, subtype="FLOAT")
    cases["nan"] = (tmp_path / "nan.wav", "NaN")
    sf.write(tmp_path / "zero.wav", np.zeros((0,), np.float32), 16000)
    cases["zero-length"] = (tmp_path / "zero.wav", "zero-length|empty")
    cases["dir"] = (tmp_path, "directory")
    for name, (path, reason) in cases.items():
        with pytest.raises(AudioDecodeError, match=reason) as info:
            load_audio(path)
        assert str(path) in str(info.value), name


def test_absurd_length_is_refused(tmp_path, tone):
    sf.write(tmp_path / "long.wav", tone(440, 3.0, 8000), 8000)
    with pytest.raises(AudioDecodeError, match="too long"):
        load_audio(tmp_path / "long.wav", max_seconds=2.0)


def test_save_and_duration(tmp_path, tone):
    save_audio(tmp_path / "x.wav", torch.from_numpy(tone(440, 0.25, 16000)), 16000)
    assert audio_duration(tmp_path / "x.wav") == pytest.approx(0.25)
