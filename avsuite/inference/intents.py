"""Predict spoken intents with a ``continual_slu`` model dir.

One result per file, in order, like :func:`avsuite.inference.zeroshot.classify_files`:
``{"file", "labels": [ranked intents], "scores": [probabilities]}`` or ``{"file", "error"}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch


def predict_intents(model: Any, files: Sequence[str | Path], *, top_k: int = 5) -> list[dict[str, Any]]:
    from avsuite.inference.zeroshot import load_for_model

    cfg = model.frontend_cfg
    sr = cfg.input_sample_rate or cfg.sample_rate
    names = list(model.cfg.classes) or [f"class_{i}" for i in range(model.cfg.num_classes)]
    k = max(1, min(top_k, len(names)))
    results: list[dict[str, Any]] = []
    for f in files:
        wave, reason = load_for_model(f, sr)
        if wave is None:
            results.append({"file": str(f), "error": reason})
            continue
        with torch.no_grad():
            probs = model(wave[None]).softmax(-1)[0]
        p, idx = probs.topk(k)
        results.append({"file": str(f), "labels": [names[i] for i in idx.tolist()],
                        "scores": [round(float(v), 6) for v in p]})
    return results
