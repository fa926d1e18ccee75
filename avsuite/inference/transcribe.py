"""Transcribe (ASR) or translate (ST) audio files with a ``ctc_ot`` model dir.

One result per file, in order, like :func:`avsuite.inference.zeroshot.classify_files`:
``{"file", "text"}`` or ``{"file", "error"}``; a bad file never stops the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch


def transcribe_files(model: Any, files: Sequence[str | Path], *, method: str = "beam", beam: int = 5,
                     max_len: int = 200) -> list[dict[str, Any]]:
    """Decode each file: CTC greedy for a pre-trained siamese model, greedy/beam for seq2seq."""
    from avsuite.eval.asr import decode
    from avsuite.inference.zeroshot import map_files

    if method not in ("beam", "greedy"):
        raise ValueError(f"unknown decoding method {method!r} (choose 'greedy' or 'beam')")
    frontend = model.speech.frontend

    def one(wave: torch.Tensor) -> dict[str, Any]:
        with torch.no_grad():
            feats, n = frontend(wave[None], torch.tensor([wave.numel()]))
        batch = {"feats": feats, "n_frames": n, "ids": [""], "refs": [""]}
        return {"text": decode(model, [batch], method=method, beam=beam, max_len=max_len)[1][0]}

    return map_files(files, frontend.cfg.input_sample_rate or frontend.cfg.sample_rate, one)
