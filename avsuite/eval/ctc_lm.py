"""CTC prefix beam search with a character n-gram language model (``decode.method: beam_lm``).

- :class:`CharNgramLM`: an interpolated Witten-Bell character n-gram over normalised transcripts
  (sentence start padded with ``order - 1`` start marks, an end-of-sentence symbol). Trained only on
  the text it is given (the training split's transcripts): characters, not words, so it scores
  unseen sentences and unseen words.
- :func:`prefix_beam_search`: the CTC prefix beam search (Hannun et al., 2014) over one utterance's
  ``(T, V)`` log-posteriors; a prefix extended by a character gains ``lm_weight * log P_lm(c | prefix)
  + bonus``; the end-of-sentence probability is added before the final ranking. With
  ``lm_weight=0, bonus=0`` it is the plain CTC prefix beam search (most probable labelling).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable, Sequence

from torch import Tensor

from avsuite.models.text_tokenizer import BLANK, N_SPECIAL

BOS_MARK, EOS_MARK = "\x02", "\x03"
#: the file of a pre-trained model dir holding its training transcripts (one per line)
LM_TEXT = "lm_text.txt"
_NEG_INF = float("-inf")


class CharNgramLM:
    """Interpolated Witten-Bell character n-gram of order ``order`` over ``texts``.

    ``P(c | h) = (C(h c) + T(h) P(c | h')) / (C(h) + T(h))`` with ``T(h)`` the number of distinct
    characters seen after ``h`` and ``h'`` the history without its first character; a history never
    seen backs off fully; the order-0 base is add-one over the alphabet (+ end of sentence).
    """

    def __init__(self, texts: Iterable[str], order: int = 6):
        if order < 1:
            raise ValueError(f"lm order must be >= 1, got {order}")
        self.order = order
        self.counts: dict[str, Counter] = defaultdict(Counter)   # history (len < order) -> next char counts
        alphabet: set[str] = set()
        n = 0
        for text in texts:
            alphabet.update(text)
            padded = BOS_MARK * (order - 1) + text + EOS_MARK
            for i in range(order - 1, len(padded)):
                for k in range(order):                            # histories of length 0..order-1
                    self.counts[padded[i - k:i]][padded[i]] += 1
            n += 1
        if n == 0:
            raise ValueError("cannot train a character LM: no text")
        self.alphabet = sorted(alphabet) + [EOS_MARK]
        self.totals = {h: sum(c.values()) for h, c in self.counts.items()}
        self._cache: dict[tuple[str, str], float] = {}

    def prob(self, history: str, char: str) -> float:
        """``P(char | history)``; ``history`` is the text so far (start marks are added here)."""
        h = self._context(history)
        p = (self.counts[""][char] + 1.0) / (self.totals[""] + len(self.alphabet))
        for k in range(1, len(h) + 1):
            ctx = h[len(h) - k:]
            seen = self.counts.get(ctx)
            if not seen:
                break
            types = len(seen)
            p = (seen[char] + types * p) / (self.totals[ctx] + types)
        return p

    def _context(self, history: str) -> str:
        """The last ``order - 1`` characters of the start-padded history."""
        return (BOS_MARK * (self.order - 1) + history)[len(history):] if self.order > 1 else ""

    def logprob(self, history: str, char: str) -> float:
        """``log P(char | history)``, memoised on the last ``order - 1`` characters."""
        key = (self._context(history), char)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = math.log(self.prob(history, char))
        return out


def _lse(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))``."""
    if a < b:
        a, b = b, a
    if b == _NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


def prefix_beam_search(log_probs: Tensor, symbols: Sequence[str], lm: CharNgramLM | None = None, *, beam: int = 8,
                       lm_weight: float = 0.0, bonus: float = 0.0, prune: float = -8.0,
                       max_tokens: int = 8) -> list[int]:
    """``log_probs (T, V)`` CTC log-posteriors of one utterance -> best token ids.

    ``symbols[i]`` is token ``i``'s text (one character for a char tokenizer); ids below
    :data:`N_SPECIAL` other than the blank are never emitted. Per frame, only the ``max_tokens``
    most probable tokens with ``log p >= prune`` (always the best one) extend a prefix.
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be (T, V), got {tuple(log_probs.shape)}")
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    use_lm = lm is not None and lm_weight != 0.0
    lp = log_probs.detach().double().cpu()
    top_lp, top_ids = lp.topk(min(max_tokens, lp.shape[1]), dim=-1)
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, _NEG_INF]}     # prefix -> [log p_blank, log p_nonblank]
    text: dict[tuple[int, ...], str] = {(): ""}
    ext_cache: dict[tuple[tuple[int, ...], int], float] = {}
    for t in range(lp.shape[0]):
        blank = float(lp[t, BLANK])
        cands = [(c, v) for j, (c, v) in enumerate(zip(top_ids[t].tolist(), top_lp[t].tolist()))
                 if c >= N_SPECIAL and (v >= prune or j == 0)]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [_NEG_INF, _NEG_INF])
        for prefix, (pb, pnb) in beams.items():
            cur = nxt[prefix]
            cur[0] = _lse(cur[0], _lse(pb, pnb) + blank)
            for c, v in cands:
                new = prefix + (c,)
                ext = ext_cache.get((prefix, c))
                if ext is None:
                    if new not in text:
                        text[new] = text[prefix] + symbols[c]
                    ext = ext_cache[(prefix, c)] = bonus + (
                        lm_weight * _lm_score(lm, text[prefix], symbols[c]) if use_lm else 0.0)
                entry = nxt[new]
                if prefix and c == prefix[-1]:                 # a repeat needs a blank in between
                    entry[1] = _lse(entry[1], pb + v + ext)
                    cur[1] = _lse(cur[1], pnb + v)
                else:
                    entry[1] = _lse(entry[1], _lse(pb, pnb) + v + ext)
        beams = dict(sorted(nxt.items(), key=lambda kv: -_lse(*kv[1]))[:beam])
    final = {p: _lse(*s) + (lm_weight * lm.logprob(text.get(p, ""), EOS_MARK) if use_lm else 0.0)
             for p, s in beams.items()}
    return list(max(final, key=final.__getitem__))


def _lm_score(lm: CharNgramLM, history: str, piece: str) -> float:
    score = 0.0
    for ch in piece:
        score += lm.logprob(history, ch)
        history += ch
    return score


def beam_lm_batch(log_probs: Tensor, lengths: Tensor, symbols: Sequence[str], lm: CharNgramLM | None, *,
                  beam: int = 8, lm_weight: float = 0.5, bonus: float = 0.0) -> list[list[int]]:
    """``log_probs (B, T, V)``, ``lengths (B,)`` -> token ids per item (see :func:`prefix_beam_search`)."""
    return [prefix_beam_search(log_probs[i, :n], symbols, lm, beam=beam, lm_weight=lm_weight, bonus=bonus)
            for i, n in enumerate(lengths.tolist())]


def read_lm_text(path) -> list[str]:
    """Transcripts written by the recipe (``lm_text.txt``: one per line) -> list."""
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh if line.strip()]


