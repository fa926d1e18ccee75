"""CLAP demo: zero-shot audio classification and text-to-audio retrieval.

    avsuite demo clap --model runs/quickstart/model          # then open http://127.0.0.1:7860

Uses the public avsuite API only (``load_model``, ``classify_files``, ``read_manifest``,
``index_clips``, ``rank_clips``, ``load_audio``). Bad input is shown as a message in the page, never a traceback.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

import avsuite

MAX_LABELS = 50
MAX_HITS = 5
PLAYBACK_SR = 32000
EXAMPLE_LABELS = "dog barking, cat meowing, rain, trumpet, bird singing"


def parse_labels(text: str) -> list[str]:
    """``"a, b,,a"`` -> ``["a", "b"]`` (stripped, unique, in order)."""
    out: list[str] = []
    for lab in (text or "").split(","):
        lab = lab.strip()
        if lab and lab not in out:
            out.append(lab)
    return out


def _no_result(message: str) -> tuple[Any, pd.DataFrame, str]:
    return None, pd.DataFrame({"label": [], "score": []}), f"**Error:** {message}"


def classify(model: Any, audio_path: str | None, labels_text: str) -> tuple[Any, pd.DataFrame, str]:
    """-> (``{label: score}`` for gr.Label, bar-plot frame, status markdown)."""
    labels = parse_labels(labels_text)
    if not audio_path:
        return _no_result("Upload or record a clip first.")
    if len(labels) < 2:
        return _no_result("Type at least two comma-separated labels, e.g. `dog barking, rain`.")
    if len(labels) > MAX_LABELS:
        return _no_result(f"Too many labels ({len(labels)}); use at most {MAX_LABELS}.")
    try:
        (res,) = avsuite.classify_files(model, labels, [audio_path], top_k=len(labels))
    except Exception as exc:  # a model/runtime failure: still a message, not a traceback
        return _no_result(f"Classification failed: {exc}")
    if "error" in res:
        reason = str(res["error"]).replace(str(audio_path), Path(audio_path).name)  # hide the temp folder
        return _no_result(f"Could not use this audio: {reason}")
    scores = dict(zip(res["labels"], res["scores"]))
    frame = pd.DataFrame({"label": res["labels"], "score": res["scores"]})
    best = res["labels"][0]
    return scores, frame, f"Top label: **{best}** ({scores[best]:.1%}) among {len(labels)} labels."


def _players(hits: list[dict]) -> list[Any]:
    updates = []
    for i in range(MAX_HITS):
        if i >= len(hits):
            updates.append(gr.update(value=None, visible=False))
            continue
        hit = hits[i]
        try:
            wave, sr = avsuite.load_audio(hit["audio"], PLAYBACK_SR)
            value = (sr, wave.numpy() if hasattr(wave, "numpy") else wave)
        except Exception:
            value = None
        updates.append(gr.update(value=value, visible=True, label=f"#{hit['rank']} {hit['id']} ({hit['score']:.3f})"))
    return updates


def retrieve(model: Any, manifest: str, query: str, audio_query: str | None, top_k: int,
             indexes: dict | None = None, allowed: dict[str, Path] | None = None) -> list[Any]:
    """Text (or example-audio) query -> [hits table, status markdown, MAX_HITS audio player updates].

    ``manifest`` must be a key of ``allowed`` (the manifests given on the command line, by
    display name): the page can never make the server open another path. ``indexes`` keeps one
    clip index per (manifest, modification time): a manifest is embedded on its first query only."""
    empty = pd.DataFrame(columns=["rank", "score", "id", "label", "caption"])
    query = (query or "").strip()
    allowed = allowed or {}
    if not allowed:
        return [empty, "**Error:** No manifest to search: start the demo with `--manifest FILE.jsonl`.",
                *_players([])]
    if manifest not in allowed:
        return [empty, f"**Error:** Not one of this demo's manifests; choose one of: "
                       f"{', '.join(f'`{k}`' for k in allowed)}", *_players([])]
    path = allowed[manifest]
    if not path.is_file():
        return [empty, f"**Error:** Manifest `{manifest}` is no longer readable on the server.", *_players([])]
    if not audio_query and not query:
        return [empty, "**Error:** Type a text query, e.g. `a dog barking`, or give an example clip.", *_players([])]
    if not audio_query and Path(query).expanduser().exists():  # rank_clips would read it as an audio file
        return [empty, "**Error:** The text query is a file path; use the example-audio box instead.", *_players([])]
    start = time.perf_counter()
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns)
        index = (indexes or {}).get(key) or avsuite.index_clips(model, avsuite.read_manifest(path))
        if indexes is not None:
            indexes[key] = index
        hits, skipped = avsuite.rank_clips(model, index, audio_query or query, int(top_k))
    except Exception as exc:
        reason = str(exc).replace(str(audio_query), Path(audio_query).name) if audio_query else str(exc)
        return [empty, f"**Error:** {reason}", *_players([])]
    table = pd.DataFrame([{k: h[k] for k in ("rank", "score", "id", "label", "caption")} for h in hits])
    what = f"the example clip {Path(audio_query).name}" if audio_query else f"“{query}”"
    note = f" ({skipped} clip{'s' * (skipped != 1)} skipped: not decodable)" if skipped else ""
    took = time.perf_counter() - start
    total = len(index.rows) + index.skipped
    return [table, f"{len(hits)} of {total} clips for {what}{note}, in {took:.1f} s.", *_players(hits)]


def manifest_names(manifests: list[Path]) -> dict[str, Path]:
    """Display name -> path: the file name, or the full path where two names collide."""
    names = [Path(m).name for m in manifests]
    return {(n if names.count(n) == 1 else str(m)): Path(m) for n, m in zip(names, manifests)}


def build_app(model_dir: Path, manifests: list[Path] | tuple[Path, ...] = ()) -> gr.Blocks:
    """Load the CLAP model once and lay out the two tabs; the retrieval tab searches only
    ``manifests`` (given on the command line with ``--manifest``)."""
    model = avsuite.load_model(model_dir)
    allowed = manifest_names(list(manifests))
    if not callable(getattr(model, "encode_text", None)):
        raise ValueError(f"{model_dir} is not a CLAP model dir (no text tower)")
    with gr.Blocks(title="avsuite CLAP demo") as app:
        gr.Markdown(f"# avsuite CLAP demo\nModel: `{model_dir}`")
        with gr.Tab("Zero-shot classification"):
            with gr.Row():
                with gr.Column():
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio clip",
                                     elem_id="zs-audio")
                    labels = gr.Textbox(label="Labels (comma-separated)", value=EXAMPLE_LABELS, elem_id="zs-labels")
                    button = gr.Button("Classify", variant="primary", elem_id="zs-run")
                with gr.Column():
                    status = gr.Markdown(elem_id="zs-status")
                    ranked = gr.Label(label="Ranked labels", num_top_classes=MAX_LABELS, elem_id="zs-label")
                    plot = gr.BarPlot(x="label", y="score", sort="-y", y_lim=[0, 1], label="Scores",
                                      elem_id="zs-plot")
            button.click(lambda a, t: classify(model, a, t), [audio, labels], [ranked, plot, status])
        with gr.Tab("Retrieval"):
            with gr.Row():
                manifest = gr.Dropdown(choices=list(allowed), value=next(iter(allowed), None), scale=3,
                                       label="Manifest (the ones this demo was started with)",
                                       allow_custom_value=False, elem_id="rt-manifest")
                query = gr.Textbox(label="Text query", value="a dog barking", elem_id="rt-query", scale=3)
                top_k = gr.Slider(1, MAX_HITS, value=MAX_HITS, step=1, label="Top k", scale=1)
            example = gr.Audio(sources=["upload", "microphone"], type="filepath", elem_id="rt-example",
                               label="…or search by an example clip (optional; replaces the text query)")
            search = gr.Button("Search", variant="primary", elem_id="rt-run")
            rt_status = gr.Markdown(elem_id="rt-status")
            table = gr.Dataframe(label="Top clips", interactive=False, elem_id="rt-table")
            with gr.Row():
                players = [gr.Audio(visible=False, interactive=False, elem_id=f"rt-audio-{i}") for i in range(MAX_HITS)]
            indexes: dict = {}
            search.click(lambda m, q, e, k: retrieve(model, m, q, e, k, indexes, allowed), [manifest, query, example, top_k],
                         [table, rt_status, *players])
    return app
