"""Shared fixtures. Every test runs with the network blocked: opening a socket to anything but a
loopback address fails the test (no downloads, ever). GPU tests skip when CUDA is absent."""

from __future__ import annotations

import ipaddress
import os
import socket

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class NetworkAccessError(RuntimeError):
    pass


def _is_loopback(address) -> bool:
    if isinstance(address, tuple):
        address = address[0]
    if isinstance(address, (bytes, str)) and str(address) in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(address).split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: it would need DNS, so it is not local


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(fn):
        def wrapped(self, address, *args, **kwargs):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
                raise NetworkAccessError(f"test tried to open a network connection to {address!r}")
            return fn(self, address, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(socket.socket, "connect", guard(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guard(real_connect_ex))
    yield


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def tone():
    """``tone(freq, seconds, sr)`` -> float32 sine at -6 dBFS."""
    def make(freq: float = 440.0, seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
        t = np.arange(int(seconds * sr)) / sr
        return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return make


@pytest.fixture(scope="session")
def real_clips():
    """A few real sound-event clips shipped by Debian's tuxpaint-stamps-default (skip if absent)."""
    import glob

    files = sorted(glob.glob("/usr/share/tuxpaint/stamps/animals/**/*.ogg", recursive=True))
    if len(files) < 8:
        pytest.skip("tuxpaint-stamps-default is not installed (run tools/setup.sh)")
    return files[:12]
