import pytest
import torch
import torchaudio.functional as AF

from avsuite.audio.resample import Resample, resample


@pytest.mark.parametrize("orig, new", [(44100, 16000), (16000, 48000), (48000, 16000), (8000, 16000), (22050, 32000)])
def test_matches_torchaudio(orig, new):
    torch.manual_seed(0)
    x = torch.randn(2, orig // 4)
    ours = resample(x, orig, new)
    ref = AF.resample(x, orig, new)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() < 1e-4 * ref.abs().max()  # float32 summation order


def test_module_equals_function_and_identity():
    x = torch.randn(3, 1000)
    assert torch.allclose(Resample(16000, 8000)(x), resample(x, 16000, 8000))
    assert Resample(16000, 16000)(x) is x
    with pytest.raises(ValueError):
        resample(x, 0, 16000)


def test_odd_rate_pairs_use_fft_resampling_fast_and_right():
    import time

    from avsuite.audio.resample import fft_resample

    sr = 22254                                   # a real tuxpaint clip's rate: 8000 phases x 11127 taps
    t = torch.arange(sr) / sr
    x = torch.sin(2 * torch.pi * 1000 * t) * torch.hann_window(sr)
    start = time.perf_counter()
    y = resample(x, sr, 16000)
    assert time.perf_counter() - start < 2.0
    assert y.shape[-1] == 16000
    ref = torch.sin(2 * torch.pi * 1000 * torch.arange(16000) / 16000) * torch.hann_window(sr)[
        (torch.arange(16000) * sr / 16000).long()]
    assert (y - ref).abs().max() < 1e-2
    # on a regular pair the FFT path agrees with the polyphase filter in the passband
    z = torch.sin(2 * torch.pi * 440 * torch.arange(44100) / 44100) * torch.hann_window(44100)
    assert (fft_resample(z, 44100, 16000) - resample(z, 44100, 16000)).abs().max() < 5e-3
