"""The lip-sync evaluation / CPU-training helpers: mouth box, paste-back, cached latents = the
encoder path, the LSE table with stand-in generators (identity: dub == mismatch, re-dub == gt)."""

import numpy as np
import pytest
import torch

from avsuite.data.lipsync import LipSyncDataConfig, face_box, mouth_box, to_signed
from avsuite.eval import lipsync as ev
from avsuite.models.lipsync import LipSyncModel, lipsync_preset


def test_mouth_box_is_a_square_around_the_mouth_shifted_into_the_frame():
    assert mouth_box([64, 89.6, 12.8], (128, 128), (5.0, -0.5)) == (32, 51, 96, 115)
    assert mouth_box([64, 120, 12.8], (128, 128), (5.0, 0.0)) == (32, 64, 96, 128)    # shifted up, not cut
    assert mouth_box([3, 5, 10], (128, 128), (5.0, 0.0)) == (0, 0, 50, 50)
    assert mouth_box([32, 32, 20], (64, 64), (5.0, 0.0)) == (0, 0, 64, 64)           # larger than the frame: cut
    d = LipSyncDataConfig(mouth_crop=(5.0, -0.5), face_size=32, n_frames=8)
    assert face_box({"mouth": [64, 89.6, 12.8]}, (128, 128), d) == (32, 51, 96, 115)
    assert face_box({"id": "x"}, (128, 128), d) is None                               # no mouth: no crop
    assert face_box({"id": "x"}, (128, 128), LipSyncDataConfig(crop_box=(0, 0, 0.5, 1.0))) == (0, 0, 64, 128)
    with pytest.raises(ValueError, match="mouth_crop"):
        LipSyncDataConfig(mouth_crop=(0.0, 0.0))


def test_paste_changes_only_the_masked_pixels_of_the_box():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    keep = torch.ones(1, 1, 8, 8)
    keep[..., 4:, 2:6] = 0
    crops = torch.full((3, 3, 8, 8), 0.5)                     # -> (0.5 + 1) * 127.5 = 191.25 -> 191
    out = ev.paste(frames, crops, (10, 4, 26, 20), keep)     # box 16 x 16: the mask scales x2
    changed = np.zeros((40, 50), bool)
    changed[4 + 8:20, 10 + 4:10 + 12] = True
    assert np.array_equal(out[:, ~changed], frames[:, ~changed])
    assert (out[:, changed] == 191).all()


def test_cached_latents_give_the_encoder_paths_condition():
    from avsuite.recipes.lipsync_cache import encode_clip

    torch.manual_seed(0)
    model = LipSyncModel(lipsync_preset("mouth32")).eval().with_scaling(0.7)
    faces = torch.randint(0, 256, (6, 32, 32, 3), dtype=torch.uint8)
    lat, masked = encode_clip(model, faces, chunk=4)                      # unscaled, chunked
    x = to_signed(faces)
    ref = [3, 4, 5, 0, 1, 2]
    with torch.no_grad():
        want = model.condition(x, x[ref])
        got = model.condition_latents(masked * model.scaling, lat[ref] * model.scaling)
        assert torch.allclose(lat * model.scaling, model.encode(x), atol=1e-5)
    assert got.shape == (6, 9, 8, 8) and torch.allclose(got, want, atol=1e-5)


class _Same:
    """A stand-in generator that returns its input video untouched."""

    def __init__(self, model):
        self.model = model

    def __call__(self, row, frames, wave, fps):
        x = to_signed(torch.from_numpy(frames[:, :32, :32].copy()))
        return {"frames": frames, "gen": x, "gt": x, "ref": x.flip(0), "box": (0, 0, 32, 32)}


def test_lse_table_rows_with_an_identity_generator(tmp_path):
    from avsuite.data.rows import ManifestRows
    from avsuite.models.syncnet import SyncNet, syncnet_preset
    from tests.integration.av_synth import make_av_corpus

    man = make_av_corpus(tmp_path, n_clips=3, seconds=1.2, n_valid=3)
    rows = ev.heldout_rows(list(ManifestRows.from_path(man)))
    torch.manual_seed(0)
    sn = SyncNet(syncnet_preset("tiny")).eval()
    model = LipSyncModel(lipsync_preset("micro")).eval()
    model.mask = torch.ones(1, 1, 32, 32)
    m = ev.lse_table(_Same(model), sn, (0.0, 0.0, 1.0, 1.0), rows)
    assert m["clips"] == 3
    for k in ("lse_d", "lse_c", "offset0"):
        assert m[f"{k}_dub"] == m[f"{k}_mismatch"] and m[f"{k}_redub"] == m[f"{k}_gt"] == m[f"{k}_vae"]
    assert m["mouth_psnr"] == 100.0 and m["mouth_l1"] == 0.0                   # mask all keep: nothing regenerated
    table = ev.format_table(m, "cmd")
    assert table.count("\n| ") == 10 and "mismatched" in table and "`cmd`" in table
    with pytest.raises(ValueError, match="at least 2"):
        ev.lse_table(_Same(model), sn, (0.0, 0.0, 1.0, 1.0), rows[:1])
