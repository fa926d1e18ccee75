"""Evaluation sets from a LOCAL path: ESC-50, UrbanSound8K, class-per-folder trees, manifests.

Nothing is downloaded. :func:`load_eval_rows` detects the layout:

- a ``.jsonl`` manifest -> its rows;
- ESC-50: ``ROOT/meta/esc50.csv`` (filename, fold, target, category, ...) + ``ROOT/audio/``;
- UrbanSound8K: ``ROOT/metadata/UrbanSound8K.csv`` (slice_file_name, fold, class, ...) +
  ``ROOT/audio/fold<N>/``;
- any directory whose sub-directories are class names holding audio files;
- a CSV with ``filename``/``file``/``path`` and ``category``/``label``/``class`` columns
  (paths relative to the CSV's directory or to ``ROOT/audio``).

Rows come out as manifest rows: ``{"id", "audio", "label", "captions", "split": "fold<N>"?}``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

AUDIO_EXT = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aiff", ".aif"}
_FILE_COLS = ("filename", "slice_file_name", "file", "path", "audio")
_LABEL_COLS = ("category", "class", "label")


class BenchmarkError(ValueError):
    """An evaluation path has no recognisable layout."""


def _row(path: Path, label: str, ident: str, fold: str | None = None) -> dict[str, Any]:
    words = label.replace("_", " ").replace("-", " ")
    row = {"id": ident, "audio": str(path), "label": label, "captions": [f"the sound of {words}"]}
    if fold is not None:
        row["split"] = f"fold{fold}"
    return row


def read_csv_rows(csv_path: Path, audio_root: Path | None = None) -> list[dict[str, Any]]:
    """A metadata CSV -> rows; audio paths resolve against ``audio_root`` (a fold sub-dir is tried)."""
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        fcol = next((c for c in _FILE_COLS if c in cols), None)
        lcol = next((c for c in _LABEL_COLS if c in cols), None)
        if fcol is None or lcol is None:
            raise BenchmarkError(f"{csv_path}: need a file column ({'/'.join(_FILE_COLS)}) and a label "
                                 f"column ({'/'.join(_LABEL_COLS)}); found {cols}")
        roots = [audio_root or csv_path.parent]
        rows = []
        for rec in reader:
            name, fold = rec[fcol], rec.get("fold")
            cands = [r / f"fold{fold}" / name for r in roots if fold] + [r / name for r in roots]
            path = next((p for p in cands if p.is_file()), cands[-1])
            rows.append(_row(path, rec[lcol].strip(), Path(name).stem, fold))
    return rows


def read_folder_rows(root: Path) -> list[dict[str, Any]]:
    rows = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(sub.rglob("*")):
            if f.suffix.lower() in AUDIO_EXT:
                rows.append(_row(f, sub.name, f"{sub.name}/{f.relative_to(sub).with_suffix('')}"))
    return rows


def load_eval_rows(path: str | Path) -> list[dict[str, Any]]:
    """Detect the layout of ``path`` (see module docstring) and return manifest-like rows."""
    path = Path(path).expanduser()
    if not path.exists():
        raise BenchmarkError(f"evaluation data not found: {path}")
    if path.is_file():
        if path.suffix == ".csv":
            audio = path.parent.parent / "audio"
            return read_csv_rows(path, audio if audio.is_dir() else None)
        from avsuite.data.manifest import read_manifest

        return read_manifest(path)
    if (path / "meta" / "esc50.csv").is_file():
        return read_csv_rows(path / "meta" / "esc50.csv", path / "audio")
    if (path / "metadata" / "UrbanSound8K.csv").is_file():
        return read_csv_rows(path / "metadata" / "UrbanSound8K.csv", path / "audio")
    if (path / "manifest.jsonl").is_file():
        from avsuite.data.manifest import read_manifest

        return read_manifest(path / "manifest.jsonl")
    rows = read_folder_rows(path)
    if not rows:
        raise BenchmarkError(f"{path}: not a manifest, ESC-50, UrbanSound8K or class-per-folder directory")
    return rows


# ----------------------------------------------------------------------------- compositional / temporal
BENCHMARK_KINDS = ("order", "attribute", "temporal")


def compositional_eval(model: Any, rows: list[dict[str, Any]], n: int = 64, *, seed: int = 0,
                       kinds: tuple[str, ...] = BENCHMARK_KINDS, clip_seconds: float = 2.0) -> dict[str, float]:
    """Winoground-style 2x2 sets built from ``rows`` by :func:`avsuite.data.compose.build_benchmark`
    (CompA-order ``order``, CompA-attribute ``attribute``, TeminAL ``temporal``) ->
    ``{<kind>_text_score, <kind>_audio_score, <kind>_group_score, <kind>_*_chance, <kind>_sets}`` plus
    the diagnostics ``<kind>_text_cos`` / ``<kind>_audio_cos``: the mean cosine between a set's two
    captions / two audios (near 1: that tower cannot tell the swap apart, and the scores fall to ~0).

    ``n`` is capped by the number of distinct clip pairs with different events."""
    import numpy as np
    import torch

    from avsuite.data.compose import build_benchmark, event_name
    from avsuite.eval.metrics_compositional import compositional_metrics
    from avsuite.eval.zeroshot import embed_waves

    names = [event_name(r) for r in rows]
    pairs = sum(1 for i in range(len(rows)) for j in range(i + 1, len(rows)) if names[i] != names[j])
    n = min(n, pairs)
    if n < 1:
        return {}
    out: dict[str, float] = {}
    for kind in kinds:
        sets = build_benchmark(rows, n, seed, kind, sr=model.sample_rate, clip_seconds=clip_seconds)
        with torch.no_grad():
            audio = embed_waves(model, [w for s in sets for w in s["audios"]]).view(n, 2, -1)
            text = model.encode_text([t for s in sets for t in s["texts"]]).float().cpu().view(n, 2, -1)
        sims = torch.einsum("nad,ntd->nat", audio, text).numpy().astype(np.float64)
        out.update(compositional_metrics(sims, prefix=f"{kind}_"))
        out[f"{kind}_text_cos"] = float((text[:, 0] * text[:, 1]).sum(-1).mean())
        out[f"{kind}_audio_cos"] = float((audio[:, 0] * audio[:, 1]).sum(-1).mean())
        out[f"{kind}_sets"] = float(n)
    return out
