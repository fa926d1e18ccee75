"""The shared frontend against librosa, torchaudio and Kaldi (torchaudio.compliance), plus the
properties a model relies on. Tolerances: relative max error 1e-4 on power mels (float32 FFTs of
different libraries), 1e-3 dB/log units after the log."""

import librosa
import numpy as np
import pytest
import torch
import torchaudio

from avsuite.audio.frontend import AudioFrontend, FrontendConfig, frame_lengths, kaldi_fbank, laion_clap, whisper


@pytest.fixture(scope="module")
def wave():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(32000) / 16000
    return (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.randn(2, 32000, generator=g)).float()


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("scale, norm", [("htk", None), ("slaney", "slaney"), ("htk", "slaney")])
def test_power_mel_matches_torchaudio(wave, scale, norm):
    cfg = FrontendConfig(n_fft=400, hop_length=160, n_mels=80, mel_scale=scale, mel_norm=norm, log="none")
    ref = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=80, mel_scale=scale, norm=norm)(wave)
    assert rel(AudioFrontend(cfg)(wave), ref) < 1e-4


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_power_mel_matches_librosa(wave, pad_mode):
    cfg = laion_clap(sample_rate=16000, f_max=8000.0, log="none", pad_mode=pad_mode)
    ref = librosa.feature.melspectrogram(y=wave[0].numpy(), sr=16000, n_fft=1024, hop_length=480, n_mels=64,
                                         fmin=50.0, fmax=8000.0, pad_mode=pad_mode)
    assert rel(AudioFrontend(cfg)(wave[:1])[0], torch.from_numpy(ref)) < 1e-4


def test_db_matches_librosa_power_to_db(wave):
    cfg = laion_clap(sample_rate=16000, f_max=8000.0, pad_mode="constant", top_db=80.0)
    mel = librosa.feature.melspectrogram(y=wave[0].numpy(), sr=16000, n_fft=1024, hop_length=480, n_mels=64,
                                         fmin=50.0, fmax=8000.0, pad_mode="constant")
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    assert np.abs(AudioFrontend(cfg)(wave[:1])[0].numpy() - ref).max() < 1e-3


def test_kaldi_fbank_matches_torchaudio_compliance(wave):
    ours = AudioFrontend(kaldi_fbank())(wave[:1])[0].T
    ref = torchaudio.compliance.kaldi.fbank(wave[:1], num_mel_bins=80, dither=0.0, sample_frequency=16000)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() < 1e-3


def test_whisper_log_mel_formula(wave):
    fe = AudioFrontend(whisper())
    mel = fe.power_mel(wave[:1])[0].T
    ref = torch.log10(mel.clamp(min=1e-10))
    ref = (torch.maximum(ref, ref.max() - 8.0) + 4.0) / 4.0
    assert torch.allclose(fe(wave[:1])[0], ref, atol=1e-5)


@pytest.mark.parametrize("cfg", [laion_clap(sample_rate=16000, f_max=8000.0, top_db=80.0),
                                 whisper(), kaldi_fbank(normalize="utterance"),
                                 FrontendConfig(normalize="utterance")], ids=["clap", "whisper", "kaldi", "utt"])
def test_batched_equals_per_item(cfg):
    g = torch.Generator().manual_seed(1)
    waves = [0.1 * torch.randn(n, generator=g) for n in (16000, 9000, 4321)]
    audio = torch.zeros(3, 16000)
    for i, w in enumerate(waves):
        audio[i, : len(w)] = w
    lengths = torch.tensor([len(w) for w in waves])
    fe = AudioFrontend(cfg)
    batched, n_frames = fe(audio, lengths)
    for i, w in enumerate(waves):
        single, n1 = fe(w[None], lengths[i:i + 1])
        assert int(n_frames[i]) == int(n1[0]) == single.shape[-1]
        torch.testing.assert_close(batched[i, :, : n_frames[i]], single[0], atol=2e-4, rtol=1e-4)
        assert batched[i, :, n_frames[i]:].abs().sum() == 0 or cfg.normalize == "none"


def test_resampling_frontend_and_frame_lengths(wave):
    cfg = whisper(input_sample_rate=48000)
    fe = AudioFrontend(cfg)
    x48 = torchaudio.functional.resample(wave, 16000, 48000)
    out, n = fe(x48, torch.tensor([x48.shape[1], x48.shape[1] // 2]))
    assert out.shape[-1] == frame_lengths(torch.tensor(32000), cfg) and int(n[1]) == 1 + 16000 // 160
    ref = AudioFrontend(whisper())(torchaudio.functional.resample(x48, 48000, 16000))
    torch.testing.assert_close(fe(x48), ref, atol=1e-3, rtol=0)
    torch.testing.assert_close(out[0], ref[0], atol=1e-3, rtol=0)


def test_gradients_flow_and_deterministic(wave):
    fe = AudioFrontend(laion_clap(sample_rate=16000, f_max=8000.0))
    x = wave.clone().requires_grad_(True)
    fe(x).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.equal(fe(wave), fe(wave))
    torch.testing.assert_close(fe(wave).detach(), fe(x).detach())  # grad and no-grad paths agree


def test_state_dict_is_empty_and_short_input():
    fe = AudioFrontend(whisper())
    assert fe.state_dict() == {}   # features are fixed by the config, not by saved buffers
    assert fe(torch.zeros(1, 10)).shape == (1, 80, 1)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        fe(torch.zeros(1, 1, 1, 10))
