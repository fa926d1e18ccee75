"""Decoding helpers for ``ctc_ot`` models: CTC greedy transcripts (or CTC prefix beam search with a
character n-gram LM, ``beam_lm``: :mod:`avsuite.eval.ctc_lm`) and seq2seq greedy / beam outputs.

Batches are the recipe's collated dicts: ``audio (B, T)`` waveforms, ``lengths (B,)`` in samples,
``ids`` and ``refs``; the model runs its own frontend.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from avsuite.eval.ctc_lm import CharNgramLM, beam_lm_batch
from avsuite.models.text_tokenizer import BLANK


def ctc_greedy(log_probs: Tensor, lengths: Tensor) -> list[list[int]]:
    """Best path: argmax per frame ``(B, T, V)``, merge repeats, drop blanks -> token ids per item."""
    best = log_probs.argmax(-1).tolist()
    out = []
    for row, n in zip(best, lengths.tolist()):
        ids, prev = [], None
        for tok in row[:n]:
            if tok != prev and tok != BLANK:
                ids.append(tok)
            prev = tok
        out.append(ids)
    return out


def decode_batch(model: Any, audio: Tensor, lengths: Tensor, *, method: str = "beam", beam: int = 5,
                 max_len: int = 200, len_penalty: float = 1.0, lm: CharNgramLM | None = None,
                 lm_weight: float = 0.5, lm_bonus: float = 0.0) -> list[list[int]]:
    """``audio (B, T)``, ``lengths (B,)`` -> token ids per item: for a pre-trained siamese model CTC
    greedy, or with ``method="beam_lm"`` the CTC prefix beam search (``beam`` prefixes) scored with
    ``lm`` (``lm_weight``, ``lm_bonus`` per character); greedy or beam search for a seq2seq one."""
    if not hasattr(model, "decoder"):
        enc = model.speech(audio, lengths)
        log_probs = enc["ctc_logits"].log_softmax(-1)
        if method != "beam_lm":
            return ctc_greedy(log_probs, enc["lengths"])
        symbols = getattr(model.tokenizer, "symbols", None)
        if lm is None or symbols is None:
            raise ValueError("decode.method=beam_lm needs a character tokenizer and a character LM "
                             "(the model dir's lm_text.txt, written by pre-training)")
        return beam_lm_batch(log_probs, enc["lengths"], symbols, lm, beam=beam, lm_weight=lm_weight, bonus=lm_bonus)
    if method == "beam_lm":
        raise ValueError("decode.method=beam_lm decodes CTC (pre-trained) models; use greedy or beam here")
    if method == "greedy":
        return model.greedy(audio, lengths, max_len=max_len)
    if method == "beam":
        return model.beam_search(audio, lengths, beam=beam, max_len=max_len, len_penalty=len_penalty)
    raise ValueError(f"unknown decoding method {method!r} (choose 'greedy', 'beam' or 'beam_lm')")


@torch.no_grad()
def decode(model: Any, batches: Iterable[dict[str, Any]], *, method: str = "beam", beam: int = 5,
           max_len: int = 200, len_penalty: float = 1.0, **lm: Any) -> tuple[list[str], list[str], list[str]]:
    """Run ``model`` over ``batches`` -> ``(ids, hyps, refs)`` (see :func:`decode_batch`; ``lm``:
    its ``lm``, ``lm_weight``, ``lm_bonus``)."""
    model.eval()
    ids, hyps, refs = [], [], []
    tok = model.target_tokenizer if hasattr(model, "decoder") else model.tokenizer
    device = next(model.parameters()).device
    for batch in batches:
        out = decode_batch(model, batch["audio"].to(device), batch["lengths"].to(device), method=method, beam=beam,
                           max_len=max_len, len_penalty=len_penalty, **lm)
        hyps += [tok.decode(o) for o in out]
        refs += list(batch["refs"])
        ids += list(batch["ids"])
    return ids, hyps, refs
