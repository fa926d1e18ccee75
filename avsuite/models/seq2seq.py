"""Speech encoder + Transformer decoder for ASR and speech translation fine-tuning.

:class:`SpeechSeq2Seq` reuses :class:`~avsuite.models.speech.SpeechEncoder` (initialised from a
CTC / CTC+OT pre-trained model) and adds a pre-norm Transformer decoder with tied input/output
embeddings. Decoding: :meth:`SpeechSeq2Seq.greedy` and batched :meth:`SpeechSeq2Seq.beam_search`
(length-normalised scores), all on waveforms ``(B, T)`` + lengths in samples (the frontend runs in
the encoder). :func:`average_state_dicts` averages checkpoints.

Model dirs of kind ``ctc_ot``: :func:`model_config` (the ``config.yaml`` dict), :func:`build_model`
(pre-trained siamese :class:`~avsuite.models.speech.SiameseCTCOT` or fine-tuned seq2seq) and
:func:`model_from_state` (the registry loader) live here, above both model classes.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avsuite.audio.frontend import FrontendConfig
from avsuite.models.speech import SiameseCTCOT, SpeechArch, SpeechEncoder, sinusoids
from avsuite.models.text_tokenizer import BOS, EOS, PAD, tokenizer_from


class TransformerDecoder(nn.Module):
    """``(B, S)`` target prefix + ``(B, T, D)`` memory -> ``(B, S, V)`` logits."""

    def __init__(self, arch: SpeechArch, vocab_size: int):
        super().__init__()
        self.d = arch.d_model
        self.embed = nn.Embedding(vocab_size, arch.d_model, padding_idx=PAD)
        nn.init.normal_(self.embed.weight, 0.0, arch.d_model ** -0.5)   # tied output: logits ~ unit scale
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        self.register_buffer("pos", sinusoids(arch.max_tokens, arch.d_model), persistent=False)
        layer = nn.TransformerDecoderLayer(arch.d_model, arch.n_heads, arch.ffn_dim, arch.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.layers = nn.TransformerDecoder(layer, arch.decoder_layers)
        self.norm = nn.LayerNorm(arch.d_model)
        self.drop = nn.Dropout(arch.dropout)
        self.max_tokens = arch.max_tokens

    def forward(self, prefix: Tensor, memory: Tensor, memory_mask: Tensor) -> Tensor:
        s = prefix.shape[1]
        if s > self.max_tokens:
            raise ValueError(f"target too long: {s} tokens > max_tokens={self.max_tokens}")
        x = self.drop(self.embed(prefix) * math.sqrt(self.d) + self.pos[:s])
        causal = torch.triu(torch.ones(s, s, dtype=torch.bool, device=prefix.device), diagonal=1)
        x = self.layers(x, memory, tgt_mask=causal, tgt_key_padding_mask=prefix == PAD,
                        memory_key_padding_mask=~memory_mask)
        return self.norm(x) @ self.embed.weight.T


class SpeechSeq2Seq(nn.Module):
    """Encoder-decoder speech model; ``ctc_vocab`` keeps the pre-trained CTC head (unused in the loss)."""

    def __init__(self, arch: SpeechArch, frontend: FrontendConfig, vocab_size: int, ctc_vocab: int = 0):
        super().__init__()
        self.speech = SpeechEncoder(arch, frontend, ctc_vocab)
        self.decoder = TransformerDecoder(arch, vocab_size)

    def output_lengths(self, wave_lengths: Tensor) -> Tensor:
        """``(B,)`` samples -> ``(B,)`` encoder frames."""
        return self.speech.output_lengths(wave_lengths)

    def encode(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``wave (B, T)``, ``lengths (B,)`` samples -> memory ``(B, T', D)`` and its mask ``(B, T')``."""
        enc = self.speech(wave, lengths)
        return enc["out"], enc["mask"]

    def forward(self, wave: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor,
                label_smoothing: float = 0.1) -> dict[str, Tensor]:
        """Teacher-forced loss. ``targets (B, S)`` ids without BOS/EOS (0-padded) -> ``{"loss", "ce", "acc"}``."""
        memory, mask = self.encode(wave, lengths)
        b = targets.shape[0]
        bos = torch.full((b, 1), BOS, dtype=targets.dtype, device=targets.device)
        prefix = torch.cat([bos, targets], 1)
        gold = torch.cat([targets, torch.zeros_like(bos)], 1)
        gold[torch.arange(b), target_lengths] = EOS
        logits = self.decoder(prefix, memory, mask)
        ce = F.cross_entropy(logits.transpose(1, 2), gold, ignore_index=PAD, label_smoothing=label_smoothing)
        valid = gold != PAD
        acc = ((logits.argmax(-1) == gold) & valid).sum() / valid.sum().clamp(min=1)
        return {"loss": ce, "ce": ce, "acc": acc.detach()}

    def _max_len(self, mask: Tensor, max_len: int) -> int:
        return min(max_len, int(mask.sum(1).max()) * 4 + 10, self.decoder.max_tokens - 1)

    @torch.no_grad()
    def greedy(self, wave: Tensor, lengths: Tensor, max_len: int = 200) -> list[list[int]]:
        """``wave (B, T)``, ``lengths (B,)`` -> token ids per item (no BOS/EOS)."""
        memory, mask = self.encode(wave, lengths)
        b = wave.shape[0]
        seq = torch.full((b, 1), BOS, dtype=torch.long, device=wave.device)
        done = torch.zeros(b, dtype=torch.bool, device=wave.device)
        for _ in range(self._max_len(mask, max_len)):
            nxt = _no_specials(self.decoder(seq, memory, mask)[:, -1]).argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, EOS), nxt)
            seq = torch.cat([seq, nxt[:, None]], 1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        return [_strip(row) for row in seq[:, 1:].tolist()]

    @torch.no_grad()
    def beam_search(self, wave: Tensor, lengths: Tensor, beam: int = 5, max_len: int = 200,
                    len_penalty: float = 1.0) -> list[list[int]]:
        """Batched beam search on ``wave (B, T)``; hypotheses scored by ``logp / length^len_penalty``."""
        memory, mask = self.encode(wave, lengths)
        b, k = wave.shape[0], beam
        memory, mask = memory.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
        seq = torch.full((b * k, 1), BOS, dtype=torch.long, device=wave.device)
        scores = torch.full((b, k), float("-inf"), device=wave.device)
        scores[:, 0] = 0.0
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
        steps = self._max_len(mask, max_len)
        for t in range(steps):
            logp = _no_specials(self.decoder(seq, memory, mask)[:, -1]).log_softmax(-1)   # (B*K, V)
            vocab = logp.shape[-1]
            cand = (scores.reshape(-1, 1) + logp).view(b, k * vocab)
            top, idx = cand.topk(2 * k, dim=1)
            rows, new_scores = [], torch.full_like(scores, float("-inf"))
            for i in range(b):
                alive = []
                for s, j in zip(top[i].tolist(), idx[i].tolist()):
                    src, tok = i * k + j // vocab, j % vocab
                    if s == float("-inf"):
                        break
                    if tok == EOS or t == steps - 1:
                        if len(finished[i]) < k:
                            hyp = seq[src, 1:].tolist() + ([] if tok == EOS else [tok])
                            finished[i].append((s / max(len(hyp) + 1, 1) ** len_penalty, hyp))
                    elif len(alive) < k:
                        alive.append((s, src, tok))
                    if len(alive) == k:
                        break
                while len(alive) < k:                      # pad with dead beams
                    alive.append((float("-inf"), i * k, EOS))
                for slot, (s, src, tok) in enumerate(alive):
                    new_scores[i, slot] = s
                    rows.append((src, tok))
            src_idx = torch.tensor([r[0] for r in rows], device=seq.device)
            toks = torch.tensor([r[1] for r in rows], device=seq.device)
            seq = torch.cat([seq[src_idx], toks[:, None]], 1)
            scores = new_scores
            if all(len(f) >= k for f in finished):
                break
        return [max(f)[1] if f else [] for f in finished]


def _no_specials(logits: Tensor) -> Tensor:
    """Never emit padding or BOS while decoding."""
    logits = logits.clone()
    logits[:, PAD] = float("-inf")
    logits[:, BOS] = float("-inf")
    return logits


def _strip(ids: list[int]) -> list[int]:
    return ids[: ids.index(EOS)] if EOS in ids else ids


def average_state_dicts(states: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Element-wise mean of floating-point tensors (others taken from the last state)."""
    if not states:
        raise ValueError("no checkpoints to average")
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = torch.stack([s[key].float() for s in states]).mean(0).to(last.dtype)
        else:
            out[key] = last.clone()
    return out



# ----------------------------------------------------------------------------- model dirs
def model_config(stage: str, arch: SpeechArch, frontend: FrontendConfig, tokenizer: dict[str, Any],
                 target_tokenizer: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The ``config.yaml`` dict of a ``ctc_ot`` model dir (no shared objects: YAML would alias them)."""
    cfg = {"kind": "ctc_ot", "stage": stage, "arch": asdict(arch), "frontend": asdict(frontend),
           "tokenizer": copy.deepcopy(tokenizer), **copy.deepcopy(extra)}
    if target_tokenizer is not None:
        cfg["target_tokenizer"] = copy.deepcopy(target_tokenizer)
    return cfg


def build_model(config: dict[str, Any], state: dict[str, Tensor] | None = None) -> nn.Module:
    """Build (untrained) the module a ``ctc_ot`` config dict describes; tokenizers attached."""
    arch = SpeechArch(**config["arch"])
    frontend = FrontendConfig(**config["frontend"])
    state = state or {}
    src_tok = tokenizer_from(config["tokenizer"], state, "src_tokenizer.")
    if config["stage"] == "pretrain":
        model: nn.Module = SiameseCTCOT(arch, frontend, len(src_tok))
        model.tokenizer = src_tok
        return model
    tgt_tok = tokenizer_from(config["target_tokenizer"], state, "tgt_tokenizer.")
    model = SpeechSeq2Seq(arch, frontend, len(tgt_tok), ctc_vocab=len(src_tok))
    model.tokenizer, model.target_tokenizer = src_tok, tgt_tok
    model.task = config["stage"]
    return model


def model_from_state(state: dict[str, Tensor], config: dict[str, Any]) -> nn.Module:
    """Registry loader: ``kind: ctc_ot`` model dir -> module in eval mode."""
    model = build_model(config, state)
    weights = {k: v for k, v in state.items() if not k.endswith("tokenizer.sp_model")}
    model.load_state_dict(weights)
    return model.eval()
