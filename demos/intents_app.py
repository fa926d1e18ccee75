"""Spoken-intent demo for ``continual_slu`` model dirs: say or upload a command, see the top intents.

    avsuite demo intents --model runs/continual/model       # then open http://127.0.0.1:7860

Uses the public avsuite API only: ``load_model`` and ``predict_intents`` (one result per file,
``{"file", "labels", "scores"}`` or ``{"file", "error"}``, like ``classify_files``). Bad audio is a
message in the page, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

import avsuite

TOP_K = 5


def predict(model: Any, audio_path: str | None) -> tuple[Any, str]:
    """-> (``{intent: probability}`` for gr.Label, status markdown)."""
    if not audio_path:
        return None, "**Error:** Upload or record a spoken command first."
    try:
        (res,) = avsuite.predict_intents(model, [audio_path], top_k=TOP_K)
    except Exception as exc:  # a model/runtime failure: still a message, not a traceback
        return None, f"**Error:** Prediction failed: {exc}"
    if "error" in res:
        reason = str(res["error"]).replace(str(audio_path), Path(audio_path).name)  # hide the temp folder
        return None, f"**Error:** Could not use this audio: {reason}"
    return dict(zip(res["labels"], res["scores"])), f"Intent: **{res['labels'][0]}** ({res['scores'][0]:.1%})."


def build_app(model_dir: Path) -> gr.Blocks:
    """Load the intent model once; one input (upload or microphone), ranked intents out."""
    if not hasattr(avsuite, "predict_intents"):
        raise ValueError("this avsuite has no predict_intents (the continual_slu inference API); update avsuite")
    model = avsuite.load_model(model_dir)
    with gr.Blocks(title="avsuite spoken-intent demo") as app:
        gr.Markdown(f"# avsuite spoken-intent demo\nModel: `{model_dir}`")
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Spoken command",
                                 elem_id="it-audio")
                button = gr.Button("Recognise intent", variant="primary", elem_id="it-run")
            with gr.Column():
                status = gr.Markdown(elem_id="it-status")
                ranked = gr.Label(label=f"Top {TOP_K} intents", num_top_classes=TOP_K, elem_id="it-label")
        button.click(lambda a: predict(model, a), [audio], [ranked, status])
    return app
