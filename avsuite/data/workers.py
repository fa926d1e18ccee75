"""Loader threads: each runs torch ops with ONE intra-op thread, as a DataLoader worker process does."""

from __future__ import annotations

import threading
from typing import Any

import torch

_worker = threading.local()


def one_op_thread() -> None:
    """Give this loader thread one intra-op (OpenMP) thread, as a DataLoader worker process has.

    Each loader thread otherwise runs every torch op (pad, conv1d of the resampler) with its own
    team of ``torch.get_num_threads()`` OpenMP threads: N loader threads x that many threads
    oversubscribe the cores, and small ops wait on their teams (10-50x slower per op on a busy
    2-core machine). ``torch.set_num_threads`` would change the whole process (the training
    thread too), so this sets only the calling thread's OpenMP value; the main thread is never
    touched. Results are unchanged (the ops do not split reductions across threads).
    """
    if getattr(_worker, "done", False):
        return
    _worker.done = True
    if threading.current_thread() is threading.main_thread():
        return
    gomp = _libgomp()
    if gomp is not None:
        torch.get_num_threads()                # torch's per-thread lazy init first (it would reset it)
        gomp.omp_set_num_threads(1)


_GOMP: list[Any] = []


def _libgomp() -> Any:
    """torch's own OpenMP runtime (ctypes), or None when torch does not use libgomp."""
    if not _GOMP:
        lib = None
        try:
            import ctypes

            with open("/proc/self/maps") as fh:
                paths = {line.split()[-1] for line in fh if "libgomp" in line}
            if len(paths) == 1 and "OpenMP" in torch.__config__.parallel_info():
                lib = ctypes.CDLL(paths.pop())
        except OSError:
            lib = None
        _GOMP.append(lib)
    return _GOMP[0]
