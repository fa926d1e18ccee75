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
    from avsuite.inference.zeroshot import load_for_model

    if method not in ("beam", "greedy"):
        raise ValueError(f"unknown decoding method {method!r} (choose 'greedy' or 'beam')")
    frontend = model.speech.frontend
    sr = frontend.cfg.input_sample_rate or frontend.cfg.sample_rate
    results: list[dict[str, Any]] = []
    for f in files:
        wave, reason = load_for_model(f, sr)
        if wave is None:
            results.append({"file": str(f), "error": reason})
            continue
        with torch.no_grad():
            feats, n = frontend(wave[None], torch.tensor([wave.numel()]))
        batch = {"feats": feats, "n_frames": n, "ids": [str(f)], "refs": [""]}
        _, hyps, _ = decode(model, [batch], method=method, beam=beam, max_len=max_len)
        results.append({"file": str(f), "text": hyps[0]})
    return results
