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
