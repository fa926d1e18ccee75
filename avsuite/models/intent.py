"""Spoken-intent model for continual SLU: frontend -> small CNN (+Transformer) encoder -> intent head.

    model = IntentModel(IntentModelConfig(preset="tiny", num_classes=40), kaldi_fbank(n_mels=40))
    logits = model(wave, lengths)                  # (B, T) -> (B, num_classes)
    h = model.hidden(wave, lengths)                # (B, T) -> (B, H): frontend + encoder

Besides the classifier, the model has the heads COCONUT needs: ``project`` (embedding for the
supervised contrastive loss on rehearsal data) and ``audio_text`` + ``encode_text`` (a shared
space with transcripts for the multimodal loss). The text tower is either a small bag-of-hashed-
words encoder (``text_encoder="hash"``) or a projection of precomputed, frozen sentence
embeddings (``"minilm"``: 384-d all-MiniLM-L6-v2 vectors computed by the recipe).
Architectures are named presets; the config holds values only.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from avsuite.audio.frontend import AudioFrontend, FrontendConfig
from avsuite.audio.masks import lengths_to_mask, masked_mean


@dataclass(frozen=True, kw_only=True)
class IntentModelConfig:
    preset: Literal["tiny", "base"] = "tiny"
    num_classes: int = 2
    #: class names in output order (the scenario's order)
    classes: list[str] = field(default_factory=list)
    embed_dim: int = 128
    text_encoder: Literal["hash", "minilm", "none"] = "hash"
    hash_buckets: int = 4096
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError("num_classes must be >= 1")
        if self.classes and len(self.classes) != self.num_classes:
            raise ValueError(f"{len(self.classes)} class names for num_classes={self.num_classes}")


#: preset -> (channels per conv block, transformer layers, hidden size)
PRESETS: dict[str, tuple[tuple[int, ...], int, int]] = {
    "tiny": ((64, 96, 128), 0, 128),
    "base": ((128, 192, 256), 2, 256),
}
MINILM_DIM = 384


def hash_tokens(texts: list[str], buckets: int) -> tuple[Tensor, Tensor]:
    """Words (lower-cased) and word bigrams -> bucket ids for ``nn.EmbeddingBag``: ``(ids, offsets)``."""
    ids, offsets = [], []
    for text in texts:
        offsets.append(len(ids))
        words = text.lower().split() or ["<empty>"]
        grams = words + [f"{a}_{b}" for a, b in zip(words, words[1:])]
        ids.extend(zlib.crc32(g.encode()) % buckets for g in grams)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


class ConvEncoder(nn.Module):
    """``(B, M, F)`` features -> ``(B, H)``: strided conv blocks, optional Transformer, masked mean+max pool."""

    def __init__(self, n_mels: int, channels: tuple[int, ...], layers: int, hidden: int, dropout: float):
        super().__init__()
        blocks, c_in = [], n_mels
        for c in channels:
            blocks += [nn.Conv1d(c_in, c, 5, stride=2, padding=2), nn.GroupNorm(1, c), nn.GELU(), nn.Dropout(dropout)]
            c_in = c
        self.convs = nn.Sequential(*blocks)
        self.n_strides = len(channels)
        self.transformer = (nn.TransformerEncoder(nn.TransformerEncoderLayer(c_in, 4, 2 * c_in, dropout,
                                                                             batch_first=True), layers)
                            if layers else None)
        self.out = nn.Sequential(nn.Linear(2 * c_in, hidden), nn.GELU())

    def forward(self, feats: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = self.convs(feats)                                          # (B, C, F')
        if lengths is None:
            lengths = torch.full((feats.shape[0],), feats.shape[-1], device=feats.device)
        for _ in range(self.n_strides):
            lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
        mask = lengths_to_mask(lengths, x.shape[-1], min_len=1)
        x = x.transpose(1, 2)                                          # (B, F', C)
        if self.transformer is not None:
            x = self.transformer(x, src_key_padding_mask=~mask)
        mean = masked_mean(x, mask)
        mx = x.masked_fill(~mask[..., None], float("-inf")).amax(1)
        return self.out(torch.cat([mean, mx], dim=-1))


class IntentModel(nn.Module):
    def __init__(self, cfg: IntentModelConfig, frontend: FrontendConfig):
        super().__init__()
        self.cfg, self.frontend_cfg = cfg, frontend
        channels, layers, hidden = PRESETS[cfg.preset]
        self.frontend = AudioFrontend(frontend)
        self.encoder = ConvEncoder(frontend.n_mels, channels, layers, hidden, cfg.dropout)
        self.head = nn.Linear(hidden, cfg.num_classes)
        self.proj = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, cfg.embed_dim))
        self.audio_proj = nn.Linear(hidden, cfg.embed_dim)
        if cfg.text_encoder == "hash":
            self.text_bag = nn.EmbeddingBag(cfg.hash_buckets, cfg.embed_dim, mode="mean")
            self.text_proj = nn.Sequential(nn.GELU(), nn.Linear(cfg.embed_dim, cfg.embed_dim))
        elif cfg.text_encoder == "minilm":
            self.text_proj = nn.Sequential(nn.Linear(MINILM_DIM, cfg.embed_dim), nn.GELU(),
                                           nn.Linear(cfg.embed_dim, cfg.embed_dim))

    # ---------------------------------------------------------------- audio
    def featurize(self, wave: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(B, T)`` wave -> frontend features ``(B, M, F)`` and frame lengths ``(B,)`` (no parameters)."""
        if lengths is None:
            lengths = torch.full((wave.shape[0],), wave.shape[-1], device=wave.device, dtype=torch.long)
        return self.frontend(wave, lengths)

    def hidden(self, wave: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``wave (B, T)`` [+ sample ``lengths (B,)``] -> utterance embedding ``(B, H)`` (frontend inside)."""
        feats, n = self.featurize(wave, lengths)
        return self.encoder(feats, n)

    def classify(self, h: Tensor, num_seen: int | None = None) -> Tensor:
        """``(B, H)`` -> logits ``(B, C)``; classes past ``num_seen`` are masked to -inf."""
        logits = self.head(h)
        if num_seen is not None and num_seen < logits.shape[1]:
            logits = logits.clone()
            logits[:, num_seen:] = float("-inf")
        return logits

    def project(self, h: Tensor) -> Tensor:
        return self.proj(h)

    def audio_text(self, h: Tensor) -> Tensor:
        return self.audio_proj(h)

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``wave (B, T)`` [+ ``lengths (B,)``] -> logits ``(B, C)``."""
        return self.classify(self.hidden(wave, lengths))

    # ---------------------------------------------------------------- text
    def encode_text(self, texts: list[str] | None = None, sentence_emb: Tensor | None = None) -> Tensor:
        """Transcripts -> ``(B, embed_dim)``: hashed words (``texts``) or MiniLM vectors ``(B, 384)``."""
        if self.cfg.text_encoder == "hash":
            if texts is None:
                raise ValueError("the hash text encoder needs the transcripts")
            ids, offsets = hash_tokens(texts, self.cfg.hash_buckets)
            dev = self.head.weight.device
            return self.text_proj(self.text_bag(ids.to(dev), offsets.to(dev)))
        if self.cfg.text_encoder == "minilm":
            if sentence_emb is None:
                raise ValueError("the minilm text encoder needs precomputed sentence embeddings (B, 384)")
            return self.text_proj(sentence_emb)
        raise ValueError("this model has no text encoder (text_encoder='none')")

    def export_config(self) -> dict[str, Any]:
        from avsuite.config import to_dict
        return {"kind": "continual_slu", "model": to_dict(self.cfg), "frontend": to_dict(self.frontend_cfg)}


def model_from_state(state: dict[str, Tensor], config: dict[str, Any]) -> IntentModel:
    """Loader for model dirs of kind ``continual_slu``."""
    from avsuite.config import from_dict
    model = IntentModel(from_dict(IntentModelConfig, config["model"]), from_dict(FrontendConfig, config["frontend"]))
    model.load_state_dict(state)
    return model.eval()

