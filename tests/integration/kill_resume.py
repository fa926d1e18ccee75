"""Kill -9 a real ``avsuite train`` run mid-training, ``--resume`` it, compare with an uninterrupted run.

    killed, full = kill_and_resume(["train", "clap", "--config", cfg, *overrides], tmp_path, kill_step=3)
    assert same_weights(killed, full)

The run is a subprocess of the installed CLI (``python -c 'from avsuite.cli import main; main()'``);
it is killed with SIGKILL as soon as its ``last.ckpt`` holds ``global_step >= kill_step`` (so the
kill lands at some step after that, while the process is mid-step or mid-write), then resumed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

CLI = [sys.executable, "-c", "import sys; from avsuite.cli import main; sys.exit(main())"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    return env


def run(args: list[str], out: Path, *, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args, "--out", str(out)], capture_output=True, text=True, timeout=timeout,
                          env=_env())
    assert proc.returncode == 0, f"avsuite {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def ckpt_step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False).get("global_step", -1))
    except Exception:           # being replaced right now: try again later
        return -1


def run_killed(args: list[str], out: Path, kill_step: int, *, timeout: float = 600) -> int:
    """Start the run, SIGKILL it once ``last.ckpt`` reaches ``kill_step``; -> the checkpoint's step."""
    proc = subprocess.Popen([*CLI, *args, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=_env())
    ckpt, seen, deadline = out / "last.ckpt", 0.0, time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                mtime = ckpt.stat().st_mtime
            except OSError:                    # not written yet (or being replaced)
                mtime = seen
            if mtime != seen:
                step = ckpt_step(ckpt)
                if step >= 0:              # a file caught mid-write is read again (its mtime can stay put)
                    seen = mtime
                if step >= kill_step:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            time.sleep(0.05)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL, (
        f"the run was not killed mid-training (rc {proc.returncode}); make it longer:\n{err[-3000:]}")
    return ckpt_step(ckpt)


def kill_and_resume(args: list[str], tmp: Path, kill_step: int, *, timeout: float = 600) -> tuple[Path, Path, int]:
    """-> (resumed run dir, uninterrupted run dir, step of the checkpoint it resumed from)."""
    killed, full = tmp / "killed", tmp / "full"
    step = run_killed(args, killed, kill_step, timeout=timeout)
    run([*args, "--resume"], killed, timeout=timeout)
    run(args, full, timeout=timeout)
    return killed, full, step


def same_weights(a: Path, b: Path) -> bool:
    """Every tensor of the two model dirs is equal bit for bit (safetensors' header order is not
    deterministic across processes, so the files' bytes may differ)."""
    from safetensors.torch import load_file

    x, y = (load_file(str(d / "model" / "model.safetensors")) for d in (a, b))
    return x.keys() == y.keys() and all(x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]) for k in x)
