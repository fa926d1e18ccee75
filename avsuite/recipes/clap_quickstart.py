"""``avsuite quickstart``: the clap main job on the real offline sound-event corpus, on CPU.

1. build (or reuse) the ``sounds`` corpus (``avsuite.data.corpora``, cached);
2. split it by CLASS: a seeded quarter of the labels (with >= 2 clips) is held out entirely —
   never seen in training, neither audio nor caption; the other labels' clips are split by the
   corpus' own ``split`` field (train vs. held-out clips of seen classes);
3. train CLAP (frozen pretrained MiniLM text tower + tiny CNN14 audio tower) within a time budget;
4. report zero-shot top-1/top-5 on the UNSEEN classes next to chance, the same on held-out clips
   of seen classes, retrieval R@K / mAP@10 on the unseen-class clips, and (when
   ``avsuite.data.compose`` is available) the compositional / temporal 2x2 scores built from
   unseen-class clips; writes ``OUT/model/``, ``OUT/metrics.json``, plots under ``OUT/``.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Any, Sequence


from avsuite.audio.frontend import FrontendConfig
from avsuite.data.manifest import read_manifest, write_manifest
from avsuite.data.pipeline import DataConfig
from avsuite.losses import ContrastiveObjective
from avsuite.models.clap import ClapModelConfig
from avsuite.recipes import clap_data
from avsuite.recipes.common import OptimConfig, TrainerConfig, write_metrics

#: fraction of the labels held out as unseen classes
UNSEEN_FRACTION = 0.25
SPLIT_SEED = 0


def quickstart_config(train_manifest: Path, *, max_minutes: float = 6.0, max_steps: int = 300, **model_kw: Any):
    """The quickstart's training config (also the reference for ``configs/clap/tiny.yaml``)."""
    from avsuite.recipes.clap import Config

    model = {"audio": "cnn14_tiny", "text": "minilm", "freeze_text": True, "embed_dim": 384,
             "text_projection": "identity", "max_seconds": 3.0, "spec_time_mask": 10, "spec_freq_mask": 8, **model_kw}
    return Config(
        frontend=FrontendConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=320, n_mels=64,
                                f_min=50.0, f_max=8000.0, log="db", top_db=80.0),
        data=DataConfig(manifest=str(train_manifest), sample_rate=16000, max_seconds=3.0, batch_size=32, seed=0),
        model=ClapModelConfig(**model),
        loss=ContrastiveObjective(clap=1.0),
        optim=OptimConfig(lr=1e-3, weight_decay=0.01, warmup_steps=50, scheduler="cosine", min_lr_ratio=0.05),
        trainer=TrainerConfig(max_steps=max_steps, accelerator="cpu", devices=1, log_every_n_steps=10,
                              checkpoint_every_n_steps=200, seed=0),
        max_minutes=max_minutes,
    )


def _split(row: dict) -> str:
    """The row's own split, else a stable 1-in-8 hash hold-out of its id."""
    return row.get("split") or ("train" if zlib.crc32(str(row["id"]).encode()) % 8 else "valid")


def split_corpus(rows: list[dict], out: Path, *, seed: int = SPLIT_SEED) -> dict[str, Path]:
    """Write ``train.jsonl`` (seen classes, train split), ``seen_heldout.jsonl`` (seen classes,
    other splits) and ``unseen.jsonl`` (held-out classes) under ``out``."""
    seen, unseen = clap_data.class_disjoint_split(rows, UNSEEN_FRACTION, seed=seed)
    train = [r for r in seen if _split(r) == "train"]
    heldout = [r for r in seen if _split(r) != "train"]
    paths = {"train": out / "train.jsonl", "seen_heldout": out / "seen_heldout.jsonl", "unseen": out / "unseen.jsonl"}
    for name, part in (("train", train), ("seen_heldout", heldout), ("unseen", unseen)):
        write_manifest(part, paths[name])
    return paths


def compositional_scores(model: Any, rows: list[dict], n: int = 32, seed: int = SPLIT_SEED) -> dict[str, float]:
    """CompA-order / attribute and TeminAL temporal 2x2 scores on sets built from ``rows``."""
    from avsuite.eval.benchmarks import compositional_eval

    return compositional_eval(model, rows, n=n, seed=seed, clip_seconds=1.5)


def run(out: Path, *, max_minutes: float = 6.0, max_steps: int = 300, manifest: Path | None = None,
        overrides: Sequence[str] = (), split_seed: int = SPLIT_SEED, **model_kw: Any) -> dict[str, float]:
    """The whole quickstart; returns the flat metrics also written to ``out/metrics.json``.

    ``manifest``: use this sounds manifest instead of building the corpus; ``overrides``: dotted
    config overrides (``loss.cwcl=1.0`` ...) for ablations."""
    from avsuite.recipes.clap import evaluate_model, train

    out = Path(out)
    t0 = time.monotonic()
    if manifest is None:
        from avsuite.data.corpora import build, default_corpus_dir

        manifest = build("sounds", default_corpus_dir("sounds"))
    rows = read_manifest(manifest)
    paths = split_corpus(rows, out / "data", seed=split_seed)
    cfg = quickstart_config(paths["train"], max_minutes=max_minutes, max_steps=max_steps, **model_kw)
    if overrides:
        from avsuite.config import from_dict, to_dict, apply_overrides
        from avsuite.recipes.clap import Config

        cfg = from_dict(Config, apply_overrides(to_dict(cfg), list(overrides)))
    train_metrics = train(cfg, out)
    from avsuite.models.registry import load_model

    model = load_model(out / "model")
    unseen = evaluate_model(model, read_manifest(paths["unseen"]), out, templates=cfg.templates)
    metrics: dict[str, float] = {k: v for k, v in unseen.items()}
    seen_rows = read_manifest(paths["seen_heldout"])
    if len({r.get("label") for r in seen_rows}) >= 2:
        seen = evaluate_model(model, seen_rows, out / "seen_heldout", templates=cfg.templates)
        metrics.update({f"seen_{k}": v for k, v in seen.items() if k.startswith("zeroshot")})
    metrics.update(compositional_scores(model, read_manifest(paths["unseen"]), seed=split_seed))
    metrics.update({"train_loss": train_metrics.get("train_loss", float("nan")),
                    "train_steps": train_metrics.get("steps", 0.0), "train_clips": train_metrics.get("train_clips", 0.0),
                    "unseen_classes": metrics.get("zeroshot_classes", 0.0), "corpus_clips": float(len(rows)),
                    "wall_minutes": (time.monotonic() - t0) / 60})
    write_metrics(out, metrics)
    _print_summary(metrics, out)
    return metrics


def _print_summary(m: dict[str, float], out: Path) -> None:
    def pct(k: str) -> str:
        return f"{100 * m[k]:5.1f}%" if k in m else "   n/a"

    lines = [
        f"quickstart: {int(m.get('corpus_clips', 0))} clips; trained {int(m.get('train_steps', 0))} steps on "
        f"{int(m.get('train_clips', 0))} clips in {m.get('wall_minutes', 0):.1f} min (total)",
        f"zero-shot on {int(m.get('unseen_classes', 0))} UNSEEN classes ({int(m.get('zeroshot_n', 0))} clips): "
        f"top-1 {pct('zeroshot_top1')} (chance {pct('zeroshot_chance')}), top-5 {pct('zeroshot_top5')} "
        f"(chance {pct('zeroshot_chance_top5')})",
        f"zero-shot on held-out clips of seen classes: top-1 {pct('seen_zeroshot_top1')} "
        f"(chance {pct('seen_zeroshot_chance')})",
        f"retrieval (unseen-class clips): R@1/5/10 audio->text {pct('r1_a2t')} {pct('r5_a2t')} {pct('r10_a2t')}; "
        f"text->audio {pct('r1_t2a')} {pct('r5_t2a')} {pct('r10_t2a')}",
    ]
    for kind in ("order", "attribute", "temporal"):
        if f"{kind}_text_score" in m:
            lines.append(f"{kind:>9} ({int(m[f'{kind}_sets'])} 2x2 sets, unseen-class clips): text "
                         f"{pct(f'{kind}_text_score')} audio {pct(f'{kind}_audio_score')} group "
                         f"{pct(f'{kind}_group_score')} (chance 25.0% / 25.0% / 16.7%)")
    lines.append(f"wrote {out}/model, {out}/metrics.json, {out}/confusion.png, {out}/loss_curve.png, "
                 f"{out}/similarity.png")
    print("\n".join(lines), flush=True)


__all__ = ["run", "quickstart_config", "split_corpus"]
