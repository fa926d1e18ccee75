"""Issue 11, hostile inputs: truncated/corrupt files are refused (documented policy: a clip is
decoded whole or not at all), random bytes named .g722 are not audio, config files are bounded
UTF-8, manifest lines are bounded without reading them whole."""

from __future__ import annotations

import glob
import json

import numpy as np
import pytest
import soundfile as sf

from avsuite.audio.io import AudioDecodeError, load_audio
from avsuite.config import MAX_CONFIG_BYTES, ConfigError, load_config
from avsuite.data.manifest import MAX_LINE_BYTES, ManifestError, iter_lines, read_manifest

SR = 16000


@pytest.fixture
def tone():
    return (0.5 * np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR)).astype(np.float32)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_truncated_wav_is_refused_with_both_durations(tmp_path, tone, subtype):
    full = tmp_path / "full.wav"
    sf.write(full, np.stack([tone, tone], 1), SR, subtype=subtype)
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 3])
    assert load_audio(full, SR)[0].numel() == 3 * SR                       # the intact file decodes
    with pytest.raises(AudioDecodeError, match=r"truncated file: the header promises 3.00 s, the file holds 1.00 s"):
        load_audio(cut, SR)


def test_streamed_wav_without_a_size_is_not_called_truncated(tmp_path, tone):
    path = tmp_path / "stream.wav"
    sf.write(path, tone, SR, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    i = data.index(b"data")
    data[i + 4:i + 8] = (0xFFFFFFFF).to_bytes(4, "little")                  # what a live recorder writes
    path.write_bytes(bytes(data))
    assert load_audio(path, SR)[0].numel() == 3 * SR


@pytest.mark.parametrize("damage", ["truncate", "middle"])
def test_corrupt_flac_is_refused_not_partially_decoded(tmp_path, tone, damage):
    path = tmp_path / "x.flac"
    sf.write(path, tone, SR)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 3]
    else:
        for i in range(len(data) // 3, len(data) // 3 + 2000):
            data[i] = (data[i] * 7 + 13) % 256
    path.write_bytes(bytes(data))
    with pytest.raises(AudioDecodeError, match="corrupt audio data"):
        load_audio(path, SR)


def test_random_bytes_named_g722_are_not_audio_but_real_g722_is(tmp_path):
    path = tmp_path / "x.g722"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioDecodeError, match="not G.722 audio"):
        load_audio(path, SR)
    real = sorted(glob.glob("/usr/share/asterisk/sounds/*/**/*.g722", recursive=True))
    if not real:
        pytest.skip("asterisk-core-sounds-*-g722 not installed (tools/setup.sh)")
    step = max(1, len(real) // 150)                                         # a spread over en/es/fr
    for f in real[::step]:
        wave, _ = load_audio(f, SR)
        assert wave.numel() > 0, f


def test_config_files_are_bounded_utf8(tmp_path):
    from avsuite.recipes.clap import Config

    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="config files are limited"):
        load_config(Config, big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"data:\n  seed: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(Config, binary)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(Config, tmp_path)


def test_a_huge_manifest_line_is_skipped_without_holding_it(tmp_path):
    path = tmp_path / "m.jsonl"
    ok = json.dumps({"id": "a", "audio": "a.wav"}).encode()
    with open(path, "wb") as fh:
        fh.write(ok + b"\n" + b"x" * (3 * MAX_LINE_BYTES) + b"\n" + ok.replace(b'"a"', b'"b"', 1) + b"\n")
    with open(path, "rb") as fh:
        got = list(iter_lines(fh))
    assert [g[0] for g in got] == [1, 2, 3]
    assert got[1][2] == 3 * MAX_LINE_BYTES + 1 and got[2][1] == len(ok) + 1 + 3 * MAX_LINE_BYTES + 1  # offsets exact
    with pytest.raises(ManifestError, match="m.jsonl:2: line is 3.0 MB"):
        read_manifest(path)
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(ok + b"\n" + b'{"id": "\xe9", "audio": "x.wav"}\n')
    with pytest.raises(ManifestError, match="latin1.jsonl:2: invalid JSON"):
        read_manifest(bad)


def test_a_megabyte_caption_costs_what_its_first_tokens_cost():
    """A 1 MB caption (the longest a manifest line allows) is cut before tokenizing: same embedding
    as its first tokens, and no per-character work on the rest."""
    import torch

    from avsuite.models.text_encoders import HashTokenizer

    tok = HashTokenizer(vocab_size=512, max_tokens=16)
    long = "a dog barks loudly " * 60_000                                   # ~1.1 MB
    ids, mask = tok([long, "a dog barks loudly " * 8])
    assert torch.equal(ids[0], ids[1]) and torch.equal(mask[0], mask[1])


def test_a_text_tower_dir_with_only_a_pickled_bin_is_refused_unread(tmp_path):
    """Issue 11: a local HF text tower dir holding a pickled .bin (which could run code when
    unpickled) is refused before anything reads it; the real safetensors tower still loads."""
    import pickle
    import shutil

    from avsuite.models.text_encoders import HFTextEncoder, minilm_path

    src = minilm_path()
    d = tmp_path / "tower"
    d.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / name, d / name)

    class Boom:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / "pwned"),))

    (d / "pytorch_model.bin").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ValueError, match="no \\*.safetensors weights"):
        HFTextEncoder(d)
    assert not (tmp_path / "pwned").exists()
    assert HFTextEncoder(src, max_tokens=8).out_dim == 384
