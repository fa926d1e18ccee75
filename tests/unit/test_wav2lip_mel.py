"""The Wav2Lip mel against a librosa/numpy reference written here from Wav2Lip's audio.py recipe."""

import librosa
import numpy as np
import pytest
import torch

from avsuite.audio.wav2lip_mel import (WAV2LIP, Wav2LipMel, mel_start, mel_steps, mel_window, preemphasize,
                                       wav2lip_mel)


def reference_mel(wav: np.ndarray) -> np.ndarray:
    """Wav2Lip audio.melspectrogram with librosa 0.7 semantics (reflect-padded centred STFT)."""
    c = WAV2LIP
    y = np.append(wav[:1], wav[1:] - c.preemphasis * wav[:-1]).astype(np.float64)
    spec = np.abs(librosa.stft(y=y, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
                               center=True, pad_mode="reflect"))
    basis = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.f_min, fmax=c.f_max)
    mel = basis @ spec
    s = 20 * np.log10(np.maximum(np.exp(c.min_level_db / 20 * np.log(10)), mel)) - c.ref_level_db
    return np.clip(8 * ((s - c.min_level_db) / -c.min_level_db) - 4, -4, 4)


def _speechlike(seconds=1.3, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    x = env * (0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)) + 0.02 * rng.standard_normal(t.size)
    x[: sr // 10] = 0.0                                   # a silent start exercises the -4 floor
    return x.astype(np.float32)


def test_matches_the_librosa_reference():
    wav = _speechlike()
    ref = reference_mel(wav.astype(np.float64))
    ours = wav2lip_mel(torch.from_numpy(wav)).numpy()
    assert ours.shape == ref.shape == (80, 1 + len(wav) // 200)
    assert np.abs(ours - ref).max() < 1e-4
    assert ours.min() == -4.0 and ref.min() == -4.0 and ours.max() > 0    # clipped floor, real content above


def test_module_batches_and_equals_the_function():
    waves = torch.from_numpy(np.stack([_speechlike(seed=s) for s in range(3)]))
    mod = Wav2LipMel()
    out = mod(waves)
    assert out.shape == (3, 80, 1 + waves.shape[1] // 200)
    assert torch.allclose(out[1], wav2lip_mel(waves[1]), atol=1e-6)
    assert not any(True for _ in mod.state_dict())        # buffers are rebuilt, not saved


def test_preemphasis():
    x = torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(preemphasize(x, 0.97), torch.tensor([1.0, 2.0 - 0.97, 3.0 - 1.94]))


def test_windows_follow_wav2lip_indexing():
    assert [mel_start(i, 25) for i in (0, 1, 2, 5, 24, 25)] == [0, 3, 6, 16, 76, 80]
    assert mel_start(3, 29.97) == int(80.0 * (3 / 29.97))
    assert mel_steps(5) == 16 and mel_steps(16) == 52 and mel_steps(25) == 80
    mel = torch.arange(80 * 40, dtype=torch.float32).reshape(80, 40)
    w = mel_window(mel, 2, 25)
    assert w.shape == (80, 16) and torch.equal(w, mel[:, 6:22])
    assert mel_window(mel, 8, 25) is None                 # 25..41 runs past 40 frames


def test_too_short_audio_is_a_clear_error():
    with pytest.raises(ValueError, match="too short"):
        wav2lip_mel(torch.zeros(100))
