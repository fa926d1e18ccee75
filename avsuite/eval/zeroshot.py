"""Zero-shot audio classification with a CLAP model: prompt templates, template ensembles,
top-1/top-5, confusion matrix (+ PNG plot).

    emb, kept, errors = embed_rows(model, rows)              # (N, D) unit-norm audio embeddings
    metrics, cm, classes = zeroshot_eval(model, emb, [r["label"] for r in kept])

Template ensemble (as CLIP/LAION-CLAP): each class is the renormalised mean of its prompts'
unit-norm text embeddings; scores are cosine similarities ``(N, C)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avsuite.audio.io import AudioDecodeError, load_audio
from avsuite.eval.metrics_zeroshot import confusion_matrix, zeroshot_metrics

DEFAULT_TEMPLATES: tuple[str, ...] = ("{}", "the sound of {}", "a recording of {}", "this is the sound of {}",
                                      "{} can be heard")
#: longest audio decoded for evaluation (the model then centre-crops or fuses it)
EVAL_MAX_SECONDS = 120.0


def label_text(label: str) -> str:
    """``"car_horn"`` / ``"car-horn"`` -> ``"car horn"`` (the words a prompt should contain)."""
    return " ".join(str(label).replace("_", " ").replace("-", " ").split())


@torch.no_grad()
def class_embeddings(model: Any, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES) -> Tensor:
    """-> ``(C, D)`` unit-norm ensemble embeddings of ``labels`` under ``templates`` (each has ``{}``)."""
    if not templates:
        raise ValueError("need at least one prompt template")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise ValueError(f"prompt templates must contain '{{}}': {bad}")
    acc = None
    for t in templates:
        e = model.encode_text([t.format(label_text(lab)) for lab in labels])
        acc = e if acc is None else acc + e
    return F.normalize(acc, dim=-1)


@torch.no_grad()
def embed_waves(model: Any, waves: Sequence[Tensor], batch_size: int = 16) -> Tensor:
    """``waves`` (each ``(T,)`` at ``model.sample_rate``) -> ``(N, D)``; batched by similar length,
    returned in input order (padding never changes an item: lengths are passed)."""
    device = next(model.parameters()).device
    order = sorted(range(len(waves)), key=lambda i: waves[i].numel())
    out: list[Tensor | None] = [None] * len(waves)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        lengths = torch.tensor([waves[i].numel() for i in idx])
        audio = torch.zeros(len(idx), int(lengths.max()))
        for j, i in enumerate(idx):
            audio[j, : waves[i].numel()] = waves[i]
        emb = model.encode_audio(audio.to(device), lengths.to(device)).float().cpu()
        for j, i in enumerate(idx):
            out[i] = emb[j]
    return torch.stack(out) if out else torch.zeros(0, 0)


def load_rows_audio(rows: Sequence[dict], sr: int) -> tuple[list[Tensor], list[dict], list[dict]]:
    """Decode rows at ``sr``; -> (waves, kept rows, errors ``{"id", "audio", "error"}``)."""
    waves, kept, errors = [], [], []
    for row in rows:
        try:
            wave, _ = load_audio(row["audio"], sr, max_seconds=EVAL_MAX_SECONDS)
        except AudioDecodeError as exc:
            errors.append({"id": row.get("id"), "audio": row.get("audio"), "error": exc.reason})
            continue
        waves.append(wave)
        kept.append(row)
    return waves, kept, errors


#: per-clip error when a clip's features/embedding are NaN/inf (e.g. float samples near 1e20)
NONFINITE = "the model's features for this clip are not finite (NaN/inf)"


def nonfinite_reason(wave: Tensor) -> str:
    """Why a clip's embedding is not finite, for the per-file error line."""
    peak = float(wave.abs().max()) if wave.numel() else 0.0
    hint = f": sample peak {peak:.3g}, far above full scale" if peak > 1e3 else ""
    return NONFINITE + hint


def finite_rows(emb: Tensor) -> Tensor:
    """``(N, D)`` -> ``(N,)`` bool: rows with only finite values."""
    return torch.isfinite(emb).all(dim=-1) if emb.numel() else torch.ones(len(emb), dtype=torch.bool)


def embed_rows(model: Any, rows: Sequence[dict], batch_size: int = 16, chunk: int = 256
               ) -> tuple[Tensor, list[dict], list[dict]]:
    """Decode at ``model.sample_rate`` (the rate it was trained at) and embed ``chunk`` rows at a
    time (memory bounded by the chunk) -> (``(N, D)`` embeddings, kept rows, errors). A clip whose
    embedding is not finite goes to the errors (never into scores)."""
    embs, kept, errors = [], [], []
    for s in range(0, len(rows), chunk):
        waves, k, e = load_rows_audio(rows[s:s + chunk], model.sample_rate)
        if waves:
            emb = embed_waves(model, waves, batch_size)
            ok = finite_rows(emb)
            for i in torch.nonzero(~ok).flatten().tolist():
                e.append({"id": k[i].get("id"), "audio": k[i].get("audio"), "error": nonfinite_reason(waves[i])})
            embs.append(emb[ok])
            k = [r for r, good in zip(k, ok.tolist()) if good]
        kept += k
        errors += e
    return (torch.cat(embs) if embs else torch.zeros(0, 0)), kept, errors


@torch.no_grad()
def zeroshot_eval(model: Any, audio_emb: Tensor, labels: Sequence[str], *,
                  templates: Sequence[str] = DEFAULT_TEMPLATES, classes: Sequence[str] | None = None
                  ) -> tuple[dict[str, float], Tensor, list[str]]:
    """-> (``{zeroshot_top1, zeroshot_top5 (if >= 5 classes), zeroshot_chance, zeroshot_balanced_acc,
    zeroshot_classes, zeroshot_n}``, confusion ``(C, C)``, class names). ``classes`` defaults to
    the sorted labels present; the numbers come from :mod:`avsuite.eval.metrics_zeroshot`."""
    classes = sorted(set(labels)) if classes is None else list(classes)
    if len(classes) < 2:
        raise ValueError("zero-shot evaluation needs at least two classes")
    index = {c: i for i, c in enumerate(classes)}
    targets = np.asarray([index[lab] for lab in labels])
    scores = (audio_emb @ class_embeddings(model, classes, templates).float().cpu().T).numpy()
    raw = zeroshot_metrics(scores, targets)
    metrics = {f"zeroshot_{k}": v for k, v in raw.items()}
    metrics.update({"zeroshot_chance_top5": min(5, len(classes)) / len(classes),
                    "zeroshot_classes": float(len(classes)), "zeroshot_n": float(len(labels))})
    return metrics, torch.from_numpy(confusion_matrix(scores, targets)), classes


