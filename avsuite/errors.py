"""Exceptions the CLI maps to exit codes (importing this module costs nothing)."""

from __future__ import annotations

import signal
from pathlib import Path


class TrainingInterrupted(Exception):
    """SIGTERM / SIGINT stopped training at a step boundary after ``last.ckpt`` was written;
    the CLI exits ``128 + signum`` (143 / 130)."""

    def __init__(self, signum: int, step: int, ckpt: Path):
        self.signum, self.step, self.ckpt = signum, step, ckpt
        name = signal.Signals(signum).name
        super().__init__(f"{name} received: stopped at step {step}; saved {ckpt}. "
                         f"Continue with the same command plus --resume")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class NonFiniteLoss(ValueError):
    """The training loss (or weights to export) became NaN/inf; nothing is exported, the last
    good ``last.ckpt`` is kept. A ValueError, so the CLI prints one error line and exits 2."""
