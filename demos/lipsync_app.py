"""Lip-sync demo for ``lipsync`` model dirs: a face video + a speech clip -> the lip-synced mp4.

    avsuite demo lipsync --model runs/lipsync/model                      # then open http://127.0.0.1:7860
    avsuite demo lipsync --model runs/lipsync/model --syncnet runs/syncnet-eval/model   # + LSE-C / LSE-D

Upload (or record with the webcam / microphone) a face video and a speech clip, choose DDIM steps,
guidance and seed: the page shows the result (H.264 + AAC, plays in the browser), a status line
(frames, faces found / passed through, seconds) and, with ``--syncnet DIR`` (an evaluator SyncNet
model dir), the result's LSE-C / LSE-D. A progress bar follows the DDIM steps.

Uses the public avsuite API only: ``load_model``, ``lipsync_defaults`` and ``lipsync_file``
(``LipSyncPipeline`` with the demo limits and LSE). Bad input (no face, unreadable files, audio or
video over the limits) is a message in the page, never a traceback.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import torch

import avsuite

MAX_STEPS = 50
KEEP_OUTPUTS = 4          # results kept on disk by the app (Gradio serves its own cached copy)


class Outputs:
    """Numbered output files in one temp folder; only the last ``KEEP_OUTPUTS`` are kept."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="avsuite-lipsync-"))
        self.count = 0

    def next(self) -> Path:
        self.count += 1
        old = sorted(self.dir.glob("lipsync-*.mp4"))
        for path in old[:max(0, len(old) - KEEP_OUTPUTS + 1)]:
            path.unlink(missing_ok=True)
        return self.dir / f"lipsync-{self.count:05d}.mp4"


def _hide(text: str, *paths: str | None) -> str:
    """Replace server-side temp paths by their file names."""
    for p in paths:
        if p:
            text = text.replace(str(p), Path(p).name)
    return text


def _error(message: str) -> tuple[Any, str, Any, Any, str]:
    return None, f"**Error:** {message}", None, None, ""


def lipsync(model: Any, video: str | None, audio: str | None, steps: float, guidance: float, seed: float | None,
            detector: str, *, syncnet: Any = None, outputs: Outputs | None = None,
            progress: Any = None) -> tuple[Any, str, Any, Any, str]:
    """-> (output video path, status markdown, LSE-C, LSE-D, sync note markdown)."""
    if not video:
        return _error("Upload or record a face video first.")
    if not audio:
        return _error("Upload or record a speech clip first.")
    if seed is None or not float(seed).is_integer() or not 0 <= seed < 2 ** 63:
        return _error("The seed must be a whole number >= 0.")
    out = (outputs or Outputs()).next()

    def on_step(done: int, total: int) -> None:
        if progress is not None:
            progress((done, total), desc="DDIM steps", unit="steps")

    if progress is not None:
        progress(0.0, desc="Reading the video and finding faces")
    try:
        stats = avsuite.lipsync_file(model, video, audio, out, steps=int(steps), guidance=float(guidance),
                                     seed=int(seed), detector=detector, syncnet=syncnet, on_step=on_step)
    except ValueError as exc:              # bad input: the message is meant for the user
        return _error(_hide(str(exc), video, audio, str(out)))
    except Exception as exc:               # a model/runtime failure: still a message, not a traceback
        return _error(_hide(f"Lip sync failed: {type(exc).__name__}: {exc}", video, audio, str(out)))
    passed = stats["no_face_frames"]
    status = (f"{stats['frames']} frames at {stats['fps']:g} fps for {stats['seconds']:.2f} s of audio: "
              f"{stats['face_frames']} with a face, {passed} without (passed through); "
              f"{stats['ddim_steps']} DDIM steps in {stats['wall_s']:.1f} s.")
    if syncnet is None:
        return str(out), status, None, None, "Start the demo with `--syncnet DIR` to grade the result (LSE-C / LSE-D)."
    if "lse_error" in stats:
        return str(out), status, None, None, f"No LSE: {_hide(stats['lse_error'], str(out))}"
    note = (f"AV offset {stats['av_offset']:+.0f} frames over {stats['n_windows']:.0f} windows "
            f"({stats['lse_frames']:.0f} face frames). A self-trained SyncNet: compare runs graded by the same one, "
            "not published LSE values.")
    return str(out), status, round(stats["lse_c"], 4), round(stats["lse_d"], 4), note


def build_app(model_dir: Path, syncnet: Path | None = None) -> gr.Blocks:
    """Load the lip-sync model (and the evaluator SyncNet) once; inputs on the left, result on the right."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = avsuite.load_model(model_dir, device, kind="lipsync")
    grader = avsuite.load_model(syncnet, device, kind="syncnet") if syncnet is not None else None
    opts = avsuite.lipsync_defaults(model_dir)
    outputs = Outputs()
    with gr.Blocks(title="avsuite lip-sync demo") as app:
        gr.Markdown(f"# avsuite lip-sync demo\nModel: `{model_dir}`"
                    + (f" · evaluator SyncNet: `{syncnet}`" if syncnet is not None else ""))
        with gr.Row():
            with gr.Column():
                video = gr.Video(sources=["upload", "webcam"], label="Face video", elem_id="ls-video-in")
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech",
                                 elem_id="ls-audio")
                with gr.Row():
                    steps = gr.Slider(1, MAX_STEPS, value=min(opts["steps"], MAX_STEPS), step=1, label="DDIM steps",
                                      elem_id="ls-steps")
                    guidance = gr.Slider(1.0, 5.0, value=opts["guidance"], step=0.1, label="Guidance",
                                         elem_id="ls-guidance")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="ls-seed")
                    detector = gr.Dropdown(opts["detectors"], value=opts["detector"], label="Face detector",
                                           allow_custom_value=False, elem_id="ls-detector")
                button = gr.Button("Lip-sync", variant="primary", elem_id="ls-run")
            with gr.Column():
                status = gr.Markdown(elem_id="ls-status")
                result = gr.Video(label="Lip-synced video", interactive=False, elem_id="ls-video-out")
                with gr.Row():
                    lse_c = gr.Number(label="LSE-C (higher = better sync)", interactive=False, elem_id="ls-lse-c")
                    lse_d = gr.Number(label="LSE-D (lower = better sync)", interactive=False, elem_id="ls-lse-d")
                sync_note = gr.Markdown(elem_id="ls-sync-note")

        def run(v, a, s, g, sd, det, progress=gr.Progress()):
            return lipsync(model, v, a, s, g, sd, det, syncnet=grader, outputs=outputs, progress=progress)

        button.click(run, [video, audio, steps, guidance, seed, detector], [result, status, lse_c, lse_d, sync_note])
    return app
