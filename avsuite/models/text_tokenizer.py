"""Text tokenizers trained from a corpus and stored inside the model dir.

Ids ``0..3`` are reserved: ``0`` = CTC blank and padding, ``1`` = ``<unk>``, ``2`` = ``<s>``, ``3`` = ``</s>``.

- :class:`CharTokenizer`: one id per character seen in training (plus the reserved ids); its symbol
  list lives in the model's ``config.yaml``.
- :class:`SentencePieceTokenizer`: a SentencePiece unigram/BPE model trained in memory; its
  serialised proto is kept as a ``uint8`` tensor in the state dict, so the model dir stays
  ``model.safetensors`` + ``config.yaml``.

Text normalisation of transcripts and translations lives in :mod:`avsuite.data.text` (a data concern).
"""

from __future__ import annotations

import io
from typing import Any, Iterable

import torch
from torch import Tensor

BLANK, PAD, UNK, BOS, EOS = 0, 0, 1, 2, 3
N_SPECIAL = 4
_SPECIALS = ["<blank>", "<unk>", "<s>", "</s>"]


class CharTokenizer:
    """Characters -> ids; unknown characters map to ``<unk>`` (counted by :meth:`count_oov`)."""

    kind = "char"

    def __init__(self, symbols: list[str]):
        if symbols[:N_SPECIAL] != _SPECIALS:
            raise ValueError("a CharTokenizer symbol list must start with the reserved specials")
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def train(cls, texts: Iterable[str], min_count: int = 1) -> "CharTokenizer":
        counts: dict[str, int] = {}
        for t in texts:
            for ch in t:
                counts[ch] = counts.get(ch, 0) + 1
        chars = sorted(c for c, n in counts.items() if n >= min_count)
        if not chars:
            raise ValueError("cannot train a tokenizer: no training text")
        return cls(_SPECIALS + chars)

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(ch, UNK) for ch in text]

    def count_oov(self, text: str) -> int:
        return sum(ch not in self.index for ch in text)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.symbols[i] for i in ids if i >= N_SPECIAL and i < len(self.symbols))

    def to_config(self) -> dict[str, Any]:
        return {"type": "char", "symbols": self.symbols}

    def state(self) -> dict[str, Tensor]:
        return {}


class SentencePieceTokenizer:
    """SentencePiece subwords with the reserved ids mapped to ours."""

    kind = "sentencepiece"

    def __init__(self, proto: bytes):
        import sentencepiece as spm

        self.proto = proto
        self.sp = spm.SentencePieceProcessor(model_proto=proto)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 500, model_type: str = "unigram") -> "SentencePieceTokenizer":
        import sentencepiece as spm

        texts = [t for t in texts if t]
        if not texts:
            raise ValueError("cannot train a tokenizer: no training text")
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=buf, vocab_size=vocab_size,
                                       model_type=model_type, pad_id=0, unk_id=1, bos_id=2, eos_id=3,
                                       character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
        return cls(buf.getvalue())

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def count_oov(self, text: str) -> int:
        return sum(i == UNK for i in self.encode(text))

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([i for i in ids if i >= N_SPECIAL and i < len(self)])

    def to_config(self) -> dict[str, Any]:
        return {"type": "sentencepiece", "vocab_size": len(self)}

    def state(self) -> dict[str, Tensor]:
        return {"sp_model": torch.frombuffer(bytearray(self.proto), dtype=torch.uint8).clone()}


Tokenizer = CharTokenizer | SentencePieceTokenizer


def train_tokenizer(texts: list[str], kind: str = "char", vocab_size: int = 500) -> Tokenizer:
    if kind == "char":
        return CharTokenizer.train(texts)
    if kind == "sentencepiece":
        return SentencePieceTokenizer.train(texts, vocab_size=vocab_size)
    raise ValueError(f"unknown tokenizer kind {kind!r} (choose 'char' or 'sentencepiece')")


def tokenizer_from(config: dict[str, Any], state: dict[str, Tensor], prefix: str) -> Tokenizer:
    """Rebuild a tokenizer from its ``to_config()`` dict and the ``{prefix}sp_model`` state entry."""
    if config["type"] == "char":
        return CharTokenizer(list(config["symbols"]))
    if config["type"] == "sentencepiece":
        return SentencePieceTokenizer(bytes(state[prefix + "sp_model"].cpu().numpy().tobytes()))
    raise ValueError(f"unknown tokenizer type {config['type']!r}")
