"""``avsuite retrieve``: rank the clips of a manifest for a text query (or an audio-file query).

    run_retrieve("runs/quickstart/model", "corpus/manifest.jsonl", "a dog barking", top_k=5)
    run_retrieve(model_dir, manifest, "query.wav", top_k=5)      # audio -> audio

A query that names an existing file is an audio query (decoded like any clip); anything else is
text. Clips that fail to decode are skipped and counted (``skipped`` in the JSON header line).
Output: one line per hit (``rank``, ``score`` = cosine similarity, ``id``, ``audio``, ``label``,
``caption``); with ``as_json`` one JSON object per line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Any, TextIO

import torch
from torch import Tensor


@dataclass(frozen=True)
class ClipIndex:
    """Embeddings of a manifest's decodable clips, computed once: ``emb (N, D)`` L2-normalised,
    ``rows`` the N clips in order, ``skipped`` how many rows did not decode."""
    emb: Tensor
    rows: list[dict]
    skipped: int


def index_clips(model: Any, rows: list[dict]) -> ClipIndex:
    """Decode and embed every clip of ``rows`` once; pass the result to :func:`rank_clips` for
    as many queries as you like (the Gradio demo keeps one per manifest)."""
    from avsuite.eval.zeroshot import embed_rows

    emb, kept, errors = embed_rows(model, rows)
    if not kept:
        raise ValueError("no decodable clips in the manifest")
    return ClipIndex(emb, kept, len(errors))


def rank_clips(model: Any, rows: list[dict] | ClipIndex, query: str, top_k: int = 10
               ) -> tuple[list[dict[str, Any]], int]:
    """-> (hits best first, number of skipped clips). ``rows`` is a manifest's rows (embedded now)
    or a :class:`ClipIndex`. Raises ValueError for an unusable query."""
    from avsuite.eval.zeroshot import embed_waves, nonfinite_reason
    from avsuite.inference.zeroshot import load_for_model

    if not str(query).strip():
        raise ValueError("empty query")
    index = rows if isinstance(rows, ClipIndex) else index_clips(model, rows)
    emb, kept = index.emb, index.rows
    with torch.no_grad():
        if Path(query).is_file():
            wave, reason = load_for_model(query, model.sample_rate)
            if wave is None:
                raise ValueError(f"audio query {query}: {reason}")
            q = embed_waves(model, [wave])[0]
            if not bool(torch.isfinite(q).all()):
                raise ValueError(f"audio query {query}: {nonfinite_reason(wave)}")
        else:
            q = model.encode_text([query])[0].float().cpu()
            if not bool(torch.isfinite(q).all()):
                raise ValueError("the model's text embedding of the query is not finite: the model dir is broken")
    scores = emb @ q
    top = scores.topk(min(top_k, len(kept)))
    hits = []
    for rank, (sc, i) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
        row = kept[i]
        caps = row.get("captions") or ([row["text"]] if row.get("text") else [])
        hits.append({"rank": rank, "score": round(sc, 6), "id": row.get("id"), "audio": row.get("audio"),
                     "label": row.get("label"), "caption": caps[0] if caps else None})
    return hits, index.skipped


def run_retrieve(model_dir: str | Path, manifest: str | Path, query: str, top_k: int = 10, as_json: bool = False,
                 stream: TextIO | None = None) -> int:
    """Print the ``top_k`` clips of ``manifest`` for ``query``; returns the exit status (0).
    Use :func:`rank_clips` for the hits as data."""
    from avsuite.eval.benchmarks import load_eval_rows
    from avsuite.inference.zeroshot import one_line
    from avsuite.models.registry import load_model

    model = load_model(model_dir)
    hits, skipped = rank_clips(model, load_eval_rows(manifest), query, top_k)
    stream = stream or sys.stdout
    if skipped:
        print(json.dumps({"skipped": skipped}, allow_nan=False) if as_json else f"({skipped} clips skipped: not decodable)",
              file=stream)
    for h in hits:
        print(json.dumps(h, allow_nan=False) if as_json else f"{h['rank']:>3}  {h['score']:.3f}  {one_line(str(h['id']))}  "
              f"[{one_line(str(h['label']))}]  {one_line(h['caption'] or '')}", file=stream)
    return 0
