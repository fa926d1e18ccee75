"""LSE-D / LSE-C / offset against a direct loop transcription of syncnet_python's calc_pdist."""

import numpy as np
import pytest
import torch

from avsuite.data.av import frames_to_input
from avsuite.eval.lse import calc_pdist, clip_features, lse, window_starts


def reference(im, cc, vshift=15):
    """Loop form of syncnet_python: pad, per-frame pairwise_distance over 2 vshift + 1 rows, mean, min/median."""
    win = 2 * vshift + 1
    ccp = np.concatenate([np.zeros((vshift, cc.shape[1])), cc, np.zeros((vshift, cc.shape[1]))])
    dists = np.array([[np.linalg.norm(im[i] - ccp[i + j] + 1e-6) for j in range(win)] for i in range(len(im))])
    mdist = dists.mean(0)
    j = int(np.argmin(mdist))
    return {"lse_d": mdist[j], "lse_c": np.sort(mdist)[vshift] - mdist[j], "av_offset": vshift - j, "dists": dists}


def _feats(n=60, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.rand(n + 40, d, generator=g), dim=1)


@pytest.mark.parametrize("k", [-7, -2, 0, 3, 11])
def test_shifted_audio_features_give_the_shift(k):
    base = _feats()
    im = base[20:80]
    cc = base[20 + k:80 + k]                   # cc[v] = im[v + k]: the audio is k frames ahead
    m = lse(im, cc)
    assert m["av_offset"] == k
    ref = reference(im.double().numpy(), cc.double().numpy())
    assert ref["av_offset"] == k
    assert abs(m["lse_d"] - ref["lse_d"]) < 1e-5 and abs(m["lse_c"] - ref["lse_c"]) < 1e-5
    # the best offset's mean distance: only the |k| windows whose partner fell off the edge (zero pad) count
    assert m["lse_d"] < abs(k) / 60 * 1.01 + 1e-5
    assert m["lse_c"] > 0.3


def test_random_features_match_the_loop_reference():
    g = torch.Generator().manual_seed(1)
    im, cc = torch.rand(37, 8, generator=g), torch.rand(37, 8, generator=g)
    ref = reference(im.double().numpy(), cc.double().numpy())
    assert np.allclose(calc_pdist(im, cc).numpy(), ref["dists"], atol=1e-5)
    m = lse(im, cc)
    assert m["av_offset"] == ref["av_offset"]
    assert abs(m["lse_d"] - ref["lse_d"]) < 1e-5 and abs(m["lse_c"] - ref["lse_c"]) < 1e-5
    assert m["mdist"].shape == (31,) and m["frame_conf"].shape == (37,)


def test_windows_and_frame_layout():
    assert window_starts(100, 16000 * 2, 25, 5) == range(45)       # min(100, 50) - 5
    assert window_starts(30, 10 ** 6, 25, 5) == range(25)
    faces = torch.arange(2 * 5 * 4 * 3 * 3, dtype=torch.uint8).reshape(2, 5, 4, 3, 3)
    x = frames_to_input(faces)
    assert x.shape == (2, 15, 2, 3)
    assert torch.equal(x[1, 3 * 2 + 1], faces[1, 2, 2:, :, 1].float() / 255)    # frame 2, green, lower half
    assert frames_to_input(faces, "signed").min() >= -1


class _Probe(torch.nn.Module):
    """Embeds a window by its first frame's mean brightness / the mel window's first column sum."""

    def __init__(self):
        super().__init__()
        from avsuite.models.syncnet import syncnet_preset

        self.cfg = syncnet_preset("tiny")
        self.w = torch.nn.Parameter(torch.ones(1))

    def encode_frames(self, x):
        return torch.stack([x[:, :3].mean((1, 2, 3)), torch.ones(len(x))], 1)

    def encode_mel(self, m):
        return torch.stack([m[:, 0, :, 0].mean(1), torch.ones(len(m))], 1)


def test_clip_features_window_count_and_alignment():
    n, fps = 40, 25
    faces = np.zeros((n, 64, 64, 3), np.uint8)
    wave = np.zeros(int(n / fps * 16000), np.float32)
    im, cc = clip_features(_Probe(), faces, wave, fps, batch_size=7)
    assert im.shape == cc.shape == (35, 2)
    with pytest.raises(ValueError, match="expects"):
        clip_features(_Probe(), np.zeros((n, 32, 32, 3), np.uint8), wave, fps)


class _GateProbe(_Probe):
    """Frame window -> [its first frame is bright, 1]; mel window -> [a tone is on in its first frame, 1]."""

    def encode_mel(self, m):
        # mel column int(80 v / 25) + 2 lies inside video frame v (its window: 10..30 ms into the frame)
        return torch.stack([(m[:, 0, :, 2].mean(1) > -2.5).float(), torch.ones(len(m))], 1)


def _gated_clip(n=60, fps=25, seed=0):
    """A clip whose frame v is white and carries a 440 Hz tone (10..30 ms into the frame) iff on[v]."""
    on = np.random.default_rng(seed).integers(0, 2, n)
    faces = np.broadcast_to((on * 255).astype(np.uint8)[:, None, None, None], (n, 64, 64, 3)).copy()
    t = np.arange(16000 // fps) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t) * ((t >= 0.01) & (t < 0.03))
    return faces, np.concatenate([tone * o for o in on]).astype(np.float32), fps


def test_shift_audio_moves_the_audio_ahead_by_k_frames():
    from avsuite.eval.lse import shift_audio

    wave = np.arange(16000, dtype=np.float32)
    ahead, behind = shift_audio(wave, 2, 25), shift_audio(wave, -3, 25)
    assert ahead.shape == behind.shape == (16000,)
    assert torch.equal(ahead[:16000 - 1280], torch.from_numpy(wave[1280:])) and not ahead[-1280:].any()
    assert torch.equal(behind[1920:], torch.from_numpy(wave[:-1920])) and not behind[:1920].any()
    assert torch.equal(shift_audio(wave, 0, 25), torch.from_numpy(wave))


def test_offset_check_reads_the_shift_and_summary_counts_it():
    from avsuite.eval.lse import offset_check, offset_summary

    faces, wave, fps = _gated_clip()
    pairs = offset_check(_GateProbe(), faces, wave, fps, shifts=range(-6, 7))
    assert pairs == [(k, float(k)) for k in range(-6, 7)]          # the sign convention of lse(): audio k ahead
    s = offset_summary([(0, 0.0), (0, 2.0), (3, 4.0), (3, -3.0)])
    assert s["offset_check_within1"] == 0.5 and s["offset_check_exact"] == 0.25 and s["offset_check_pairs"] == 4
    assert s["offset_check_k0"] == 0.5 and s["offset_check_k3"] == 0.5 and s["offset_check_mae"] == 2.25
    assert offset_summary([]) == {}
    with pytest.raises(ValueError, match="shorter"):
        offset_check(_GateProbe(), faces[:4], wave[:4 * 640], fps)


def test_pair_accuracy_prefers_the_aligned_window():
    from avsuite.eval.lse import pair_accuracy

    base = _feats(n=30)
    im = base[:30]
    assert pair_accuracy(im, im.clone(), min_shift=5) == (30, 30)                # aligned audio = the same features
    right, total = pair_accuracy(im, base[5:35], min_shift=5)                     # audio 5 frames ahead: mostly wrong
    assert total == 30 and right < 20
    assert pair_accuracy(im[:4], im[:4].clone(), min_shift=5) == (0, 0)         # no window 5 frames away
