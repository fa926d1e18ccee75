"""Decoding helpers for ``ctc_ot`` models: CTC greedy transcripts and seq2seq greedy / beam outputs.

Batches are dicts made by the recipe's collate: ``feats (B, M, F)``, ``n_frames (B,)``, ``refs``.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

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


@torch.no_grad()
def decode(model: Any, batches: Iterable[dict[str, Any]], *, method: str = "beam", beam: int = 5,
           max_len: int = 200, len_penalty: float = 1.0) -> tuple[list[str], list[str], list[str]]:
    """Run ``model`` (pre-trained siamese: CTC greedy; seq2seq: greedy or beam) -> ``(ids, hyps, refs)``."""
    model.eval()
    ids, hyps, refs = [], [], []
    seq2seq = hasattr(model, "decoder")
    tok = model.target_tokenizer if seq2seq else model.tokenizer
    for batch in batches:
        feats, n = batch["feats"], batch["n_frames"]
        if not seq2seq:
            enc = model.speech.encode_features(feats, n)
            out = ctc_greedy(enc["ctc_logits"].log_softmax(-1), enc["lengths"])
        elif method == "greedy":
            out = model.greedy(feats, n, max_len=max_len)
        elif method == "beam":
            out = model.beam_search(feats, n, beam=beam, max_len=max_len, len_penalty=len_penalty)
        else:
            raise ValueError(f"unknown decoding method {method!r} (choose 'greedy' or 'beam')")
        hyps += [tok.decode(o) for o in out]
        refs += list(batch["refs"])
        ids += list(batch["ids"])
    return ids, hyps, refs
