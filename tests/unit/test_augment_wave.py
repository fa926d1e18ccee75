"""Source-identity breaking waveform augmentations (issue 12): EQ, speed, background mixing."""

from __future__ import annotations

import math

import pytest
import torch

from avsuite.audio.augment import mix_at_snr, random_eq, speed_perturb

SR = 16000


def _tone(f=440.0, seconds=1.0):
    t = torch.arange(int(SR * seconds)) / SR
    return 0.5 * torch.sin(2 * math.pi * f * t)


def test_random_eq_changes_bands_within_bounds_and_is_seeded():
    x = torch.randn(SR, generator=torch.Generator().manual_seed(0)) * 0.1
    assert torch.equal(random_eq(x, SR, torch.Generator().manual_seed(1), max_db=0.0), x)
    a = random_eq(x, SR, torch.Generator().manual_seed(1), max_db=12.0)
    b = random_eq(x, SR, torch.Generator().manual_seed(1), max_db=12.0)
    assert torch.equal(a, b) and a.shape == x.shape and torch.isfinite(a).all()
    ratio_db = 10 * torch.log10(torch.fft.rfft(a).abs().pow(2) / torch.fft.rfft(x).abs().pow(2).clamp(min=1e-20))
    assert float(ratio_db[50:].abs().max()) <= 12.0 + 1e-3                       # never beyond +-max_db
    assert float(ratio_db[50:].std()) > 1.0                                      # and it does shape the spectrum


def test_speed_perturb_scales_length_and_pitch():
    x = _tone(400.0)
    assert torch.equal(speed_perturb(x, SR, 1.0), x)
    y = speed_perturb(x, SR, 1.25)
    assert abs(y.numel() - SR / 1.25) <= 2
    peak = int(torch.fft.rfft(y).abs().argmax()) * SR / y.numel()
    assert peak == pytest.approx(500.0, abs=3.0)                                  # 400 Hz played 1.25x faster
    with pytest.raises(ValueError, match="> 0"):
        speed_perturb(x, SR, 0.0)


def test_mix_at_snr_hits_the_requested_snr():
    x, n = _tone(300.0), torch.randn(SR // 3, generator=torch.Generator().manual_seed(2))
    y = mix_at_snr(x, n, 10.0)
    added = y - x
    assert 10 * math.log10(float(x.pow(2).mean()) / float(added.pow(2).mean())) == pytest.approx(10.0, abs=1e-3)
    assert torch.equal(mix_at_snr(x, torch.zeros(100), 5.0), x)


def test_clap_data_config_checks_the_new_fields():
    from avsuite.recipes.clap_data import ClapDataConfig

    for bad in ({"eq_db": -1.0}, {"speed": 0.7}, {"mix_prob": 1.5}, {"mix_snr_db": float("nan")}):
        with pytest.raises(ValueError):
            ClapDataConfig(**bad)
    ClapDataConfig(eq_db=12.0, speed=0.1, mix_prob=0.3)


def test_augmented_clap_batches_are_seeded_per_item(tmp_path):
    """With every augmentation on, two readers (a resumed process is a fresh reader) give identical
    batches, the crop length is kept, and the audio differs from an unaugmented reader's."""
    import soundfile as sf

    from avsuite.recipes.clap_data import ClapDataConfig, ClapLoad, ComposeConfig, collate, make_sampler
    from avsuite.data.pipeline import Reader

    rows = []
    for k in range(8):
        path = tmp_path / f"{k}.wav"
        sf.write(path, _tone(200.0 + 50 * k, 1.0).numpy(), SR)
        rows.append({"id": f"c{k}", "audio": str(path), "captions": [f"tone {k}"], "label": f"l{k}"})

    def batches(**kw):
        cfg = ClapDataConfig(sample_rate=SR, batch_size=4, crop_seconds=0.5, seed=3, **kw)
        reader = Reader(rows, cfg, train=True, collate=collate, sampler=make_sampler(cfg, ComposeConfig()),
                        load=ClapLoad())
        return [b.audio for b in reader]

    aug = dict(eq_db=12.0, speed=0.2, mix_prob=1.0)
    first, again, plain = batches(**aug), batches(**aug), batches()
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(a.shape[-1] == int(0.5 * SR) for a in first)
    assert not all(torch.allclose(a, b) for a, b in zip(first, plain))
