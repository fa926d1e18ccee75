"""Model directories: ``model.safetensors`` + ``config.yaml``; atomic saves, safe loads.

A model dir is what ``avsuite train`` writes to ``OUT/model`` and what ``--model DIR`` reads.
``config.yaml`` holds ``kind`` (which builder makes the model) and the recipe's ``model`` and
``frontend`` sections, so a checkpoint fixes its exact features. Nothing here unpickles code:
safetensors for weights, ``torch.load(weights_only=True)`` for Lightning ``.ckpt`` files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
import yaml
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"


class CheckpointError(RuntimeError):
    """A model dir or checkpoint is missing, incomplete or not loadable."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync and rename it over ``path``.

    A crash at any point leaves either the old file or the new one, never a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())          # mkstemp makes 0600; honour the umask
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_model_dir(directory: str | Path, state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write weights then config atomically. ``config`` must contain ``kind``."""
    if "kind" not in config:
        raise CheckpointError("model config needs a 'kind' naming its builder")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared storage; clone so tied weights save as separate tensors
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "kind": str(config["kind"])})
    atomic_write_text(directory / CONFIG, yaml.safe_dump(config, sort_keys=False))
    return directory


def read_model_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    cfg_path = directory / CONFIG
    if not directory.is_dir():
        raise CheckpointError(f"model dir not found: {directory}")
    if not cfg_path.is_file():
        raise CheckpointError(f"{directory} is not a model dir: {CONFIG} is missing")
    from avsuite.config import ConfigError, safe_yaml

    try:
        config = safe_yaml(cfg_path.read_text()) or {}
    except (ConfigError, yaml.YAMLError, RecursionError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{cfg_path}: unreadable config ({str(exc)[:200]})") from None
    if not isinstance(config, dict) or "kind" not in config:
        raise CheckpointError(f"{cfg_path}: no 'kind' key; not an avsuite model dir")
    return config


def load_model_dir(directory: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return ``(state_dict, config)`` of a model dir."""
    config = read_model_config(directory)
    weights = Path(directory) / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{directory} is not a model dir: {WEIGHTS} is missing")
    try:
        state = load_file(str(weights), device=str(device))
    except Exception as exc:  # safetensors raises its own error types for truncated files
        raise CheckpointError(f"{weights}: unreadable weights ({exc})") from None
    return state, config


def load_ckpt(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Load a Lightning/torch checkpoint without executing pickled code (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a safe, loadable checkpoint ({exc})") from None
