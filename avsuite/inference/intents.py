"""Predict spoken intents with a ``continual_slu`` model dir.

One result per file, in order, like :func:`avsuite.inference.zeroshot.classify_files`:
``{"file", "labels": [ranked intents], "scores": [probabilities]}`` or ``{"file", "error"}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch


def predict_intents(model: Any, files: Sequence[str | Path], *, top_k: int = 5) -> list[dict[str, Any]]:
    from avsuite.inference.zeroshot import map_files

    cfg = model.frontend_cfg
    names = list(model.cfg.classes) or [f"class_{i}" for i in range(model.cfg.num_classes)]
    k = max(1, min(top_k, len(names)))

    def one(wave: torch.Tensor) -> dict[str, Any]:
        with torch.no_grad():
            p, idx = model(wave[None]).softmax(-1)[0].topk(k)
        return {"labels": [names[i] for i in idx.tolist()], "scores": [round(float(v), 6) for v in p]}

    return map_files(files, cfg.input_sample_rate or cfg.sample_rate, one)
