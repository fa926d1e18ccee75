import os

import pytest
import torch

from avsuite.checkpoint import (CheckpointError, atomic_path, load_ckpt, load_model_dir, read_model_config,
                                save_model_dir)


def test_model_dir_round_trip(tmp_path):
    state = {"w": torch.randn(3, 4), "b": torch.zeros(4)}
    save_model_dir(tmp_path / "m", state, {"kind": "clap", "model": {"dim": 4}})
    loaded, cfg = load_model_dir(tmp_path / "m")
    assert cfg["model"]["dim"] == 4 and torch.equal(loaded["w"], state["w"])
    assert sorted(os.listdir(tmp_path / "m")) == ["config.yaml", "model.safetensors"]


def test_tied_weights_save():
    w = torch.randn(2, 2)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        save_model_dir(d, {"a": w, "b": w}, {"kind": "x"})
        assert torch.equal(load_model_dir(d)[0]["b"], w)


def test_crash_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("simulated crash")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp litter


def test_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_model_config(tmp_path / "missing")
    (tmp_path / "d").mkdir()
    with pytest.raises(CheckpointError, match="config.yaml is missing"):
        read_model_config(tmp_path / "d")
    (tmp_path / "d" / "config.yaml").write_text("kind: clap\n")
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_model_dir(tmp_path / "d")
    (tmp_path / "d" / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_model_dir(tmp_path / "d")
    with pytest.raises(CheckpointError, match="needs a 'kind'"):
        save_model_dir(tmp_path / "e", {}, {})


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_ckpt_loading_never_unpickles_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="not a safe"):
        load_ckpt(path)
    torch.save({"state_dict": {"w": torch.ones(1)}, "epoch": 3}, tmp_path / "ok.ckpt")
    assert load_ckpt(tmp_path / "ok.ckpt")["epoch"] == 3


def _toy_loader(state, config):
    m = torch.nn.Linear(config["d"], 1)
    m.load_state_dict(state)
    return m


def test_model_dir_errors_are_one_clear_checkpoint_error(tmp_path, monkeypatch):
    from avsuite.checkpoint import CheckpointError, save_model_dir
    from avsuite.models import registry

    monkeypatch.setitem(registry.LOADERS, "toy", "tests.unit.test_checkpoint:_toy_loader")
    state = torch.nn.Linear(3, 1).state_dict()
    good = save_model_dir(tmp_path / "good", state, {"kind": "toy", "d": 3})
    assert isinstance(registry.load_model(good, kind="toy"), torch.nn.Linear)
    with pytest.raises(CheckpointError, match="is a 'toy' model dir; this command needs a 'clap' model"):
        registry.load_model(good, kind="clap")
    wrong = save_model_dir(tmp_path / "wrong", state, {"kind": "toy", "d": 5})
    with pytest.raises(CheckpointError, match="config.yaml does not match model.safetensors"):
        registry.load_model(wrong)
    nan = save_model_dir(tmp_path / "nan", {k: v * float("nan") for k, v in state.items()}, {"kind": "toy", "d": 3})
    with pytest.raises(CheckpointError, match="non-finite"):
        registry.load_model(nan)
    (good / "config.yaml").write_text("kind: toy\nd: [unclosed\n")
    with pytest.raises(CheckpointError, match="unreadable config"):
        registry.load_model(good)
