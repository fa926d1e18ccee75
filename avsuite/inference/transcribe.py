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
    from avsuite.eval.asr import decode_batch
    from avsuite.inference.zeroshot import map_files

    if method not in ("beam", "greedy"):
        raise ValueError(f"unknown decoding method {method!r} (choose 'greedy' or 'beam')")
    model.eval()
    tok = model.target_tokenizer if hasattr(model, "decoder") else model.tokenizer
    fe = model.speech.frontend.cfg
    device = next(model.parameters()).device

    def one(wave: torch.Tensor) -> dict[str, Any]:
        with torch.no_grad():
            (ids,) = decode_batch(model, wave[None].to(device), torch.tensor([wave.numel()], device=device),
                                  method=method, beam=beam, max_len=max_len)
        return {"text": tok.decode(ids)}

    return map_files(files, fe.input_sample_rate or fe.sample_rate, one)
