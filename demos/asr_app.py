"""Speech demo for ``ctc_ot`` model dirs: transcribe (ASR) or translate (ST) a recorded or uploaded clip.

    avsuite demo asr --model runs/ctc_ot-asr/model          # then open http://127.0.0.1:7860

Uses the public avsuite API only: ``load_model`` and ``transcribe_files`` (one result per file,
``{"file", "text"}`` or ``{"file", "error"}``, like ``classify_files``). Bad audio is a message in
the page, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

import avsuite

TASKS = {"asr": "transcript", "st": "translation", "pretrain": "CTC transcript"}


def transcribe(model: Any, audio_path: str | None, method: str, beam: int) -> tuple[str, str]:
    """-> (text, status markdown)."""
    if not audio_path:
        return "", "**Error:** Upload or record a clip first."
    try:
        (res,) = avsuite.transcribe_files(model, [audio_path], method=method, beam=int(beam))
    except Exception as exc:  # a model/runtime failure: still a message, not a traceback
        return "", f"**Error:** Decoding failed: {exc}"
    if "error" in res:
        reason = str(res["error"]).replace(str(audio_path), Path(audio_path).name)  # hide the temp folder
        return "", f"**Error:** Could not use this audio: {reason}"
    if not res["text"].strip():
        return "", "The model produced no words for this clip."
    return res["text"], f"Decoded with {method}" + (f" (beam {int(beam)})." if method == "beam" else ".")


def build_app(model_dir: Path) -> gr.Blocks:
    """Load the speech model once; one input (upload or microphone), one text output."""
    if not hasattr(avsuite, "transcribe_files"):
        raise ValueError("this avsuite has no transcribe_files (the ctc_ot inference API); update avsuite")
    model = avsuite.load_model(model_dir)
    if not hasattr(model, "speech"):
        raise ValueError(f"{model_dir} is not a ctc_ot speech model dir")
    task = getattr(model, "task", "pretrain")
    with gr.Blocks(title="avsuite speech demo") as app:
        gr.Markdown(f"# avsuite speech demo ({TASKS.get(task, task)})\nModel: `{model_dir}`")
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech",
                                 elem_id="asr-audio")
                with gr.Row():
                    method = gr.Radio(["beam", "greedy"], value="beam", label="Decoding", elem_id="asr-method")
                    beam = gr.Slider(1, 10, value=5, step=1, label="Beam size", elem_id="asr-beam")
                button = gr.Button("Transcribe" if task != "st" else "Translate", variant="primary",
                                   elem_id="asr-run")
            with gr.Column():
                status = gr.Markdown(elem_id="asr-status")
                text = gr.Textbox(label=TASKS.get(task, "output").capitalize(), lines=4, interactive=False,
                                  elem_id="asr-text")
        button.click(lambda a, m, b: transcribe(model, a, m, b), [audio, method, beam], [text, status])
    return app
