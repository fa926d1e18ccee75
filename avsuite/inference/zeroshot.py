"""``avsuite zeroshot``: classify audio files against free-text labels with a CLAP model dir.

    results = run_zeroshot("runs/quickstart/model", ["dog", "rain", "trumpet"], ["a.wav", "b.ogg"],
                           as_json=True, top_k=3)

Every file gets exactly one result line: either ``{"file", "labels": [ranked], "scores": [...]}``
(scores are softmax probabilities over the given labels at the model's logit scale) or
``{"file", "error": "..."}``. Bad input — missing, empty, corrupt or non-audio files, silence,
clips shorter than :data:`MIN_SECONDS`, files longer than :data:`MAX_SECONDS` — is reported per
file and never stops the others. Stereo is down-mixed; any sample format libsndfile / ffmpeg
reads (8/16/24/32-bit int, float) is accepted; long audio is centre-cropped or fused by the model.
"""

from __future__ import annotations

import json
import math
import sys
import unicodedata
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TextIO

import torch

from avsuite.audio.io import AudioDecodeError, audio_duration, load_audio

MIN_SECONDS = 0.1
MAX_SECONDS = 600.0
#: peak below this (dBFS) counts as silence
SILENCE_DBFS = -60.0
BATCH = 16


def parse_labels(labels: Sequence[str] | str) -> list[str]:
    """``"a, b,c"`` or a list -> unique non-empty labels in order; clear error for fewer than 2."""
    if isinstance(labels, str):
        labels = labels.split(",")
    out: list[str] = []
    for lab in labels:
        lab = str(lab).strip()
        if lab and lab not in out:
            out.append(lab)
    if len(out) < 2:
        raise ValueError(f"zero-shot needs at least two distinct labels, got {out}")
    return out


def check_wave(wave: torch.Tensor, sr: int) -> str | None:
    """A reason the clip cannot be classified, or None."""
    seconds = wave.numel() / sr
    if seconds < MIN_SECONDS:
        return f"too short: {seconds:.3f} s (minimum {MIN_SECONDS} s)"
    peak = float(wave.abs().max())
    if peak <= 10 ** (SILENCE_DBFS / 20):
        return f"silent audio (peak {20 * torch.log10(torch.tensor(max(peak, 1e-12))).item():.0f} dBFS)"
    return None


def load_for_model(path: str | Path, sr: int) -> tuple[torch.Tensor | None, str | None]:
    """-> ``(wave, None)`` or ``(None, reason)``; never raises for a bad file."""
    try:
        wave, _ = load_audio(path, sr, max_seconds=MAX_SECONDS)
    except AudioDecodeError as exc:
        return None, exc.reason
    except Exception as exc:  # anything a decoder library throws: still one clear line
        return None, f"cannot read audio ({exc.__class__.__name__}: {exc})"
    reason = check_wave(wave, sr)
    return (None, reason) if reason else (wave, None)


def map_files(files: Sequence[str | Path], sr: int, fn: Callable[[torch.Tensor], dict[str, Any]]) -> list[dict[str, Any]]:
    """``{"file", **fn(wave)}`` per readable file, ``{"file", "error"}`` per bad one, in input order."""
    results: list[dict[str, Any]] = []
    for f in files:
        wave, reason = load_for_model(f, sr)
        results.append({"file": str(f), "error": reason} if wave is None else {"file": str(f), **fn(wave)})
    return results


def classify_files(model: Any, labels: list[str], files: Sequence[str | Path], *, top_k: int = 5,
                   templates: Sequence[str] | None = None, batch_size: int = BATCH) -> list[dict[str, Any]]:
    """One result dict per file, in input order (see module docstring)."""
    from avsuite.eval.zeroshot import DEFAULT_TEMPLATES, class_embeddings, embed_waves, nonfinite_reason

    with torch.no_grad():
        classes = class_embeddings(model, labels, templates or DEFAULT_TEMPLATES).float().cpu()
        scale = float(model.logit_scale.exp())
    if not (bool(torch.isfinite(classes).all()) and math.isfinite(scale)):
        raise ValueError("the model's text embeddings or logit scale are not finite: the model dir is broken")
    k = max(1, min(top_k, len(labels)))
    files = list(files)
    results: list[dict[str, Any]] = []
    for s in range(0, len(files), batch_size):
        chunk = [str(f) for f in files[s:s + batch_size]]
        loaded = [load_for_model(f, model.sample_rate) for f in chunk]
        ok = [i for i, (w, _) in enumerate(loaded) if w is not None]
        probs = None
        if ok:
            emb = embed_waves(model, [loaded[i][0] for i in ok], batch_size)
            probs = torch.softmax(scale * emb @ classes.T, dim=-1)
            finite = torch.isfinite(probs).all(dim=-1)
            for j in torch.nonzero(~finite).flatten().tolist():      # never a NaN score
                loaded[ok[j]] = (None, nonfinite_reason(loaded[ok[j]][0]))
            ok = [i for j, i in enumerate(ok) if finite[j]]
            probs = probs[finite]
        row_of = {i: j for j, i in enumerate(ok)}
        for i, f in enumerate(chunk):
            if i not in row_of:
                results.append({"file": f, "error": loaded[i][1]})
                continue
            p, idx = probs[row_of[i]].topk(k)
            results.append({"file": f, "labels": [labels[j] for j in idx.tolist()],
                            "scores": [round(float(v), 6) for v in p]})
    return results


def _scores(probs: torch.Tensor, labels: list[str], k: int) -> dict[str, Any]:
    p, idx = probs.topk(k)
    return {"labels": [labels[j] for j in idx.tolist()], "scores": [round(float(v), 6) for v in p]}


def read_windows(path: str | Path, sr: int, seconds: float) -> Iterator[tuple[float, torch.Tensor]]:
    """``(start s, wave (T,))`` for consecutive ``seconds``-long windows of ``path``, each read on
    its own (``load_audio(segment=...)``: a seek, never the whole file); the last may be shorter."""
    total = audio_duration(path)
    for k in range(max(1, math.ceil(total / seconds - 1e-9))):
        wave, _ = load_audio(path, sr, segment=(k * seconds, seconds), max_seconds=seconds + 1.0)
        yield k * seconds, wave


def classify_long(model: Any, labels: Sequence[str], path: str | Path, *, window_seconds: float | None = None,
                  windows_per_batch: int = 8, top_k: int = 5, templates: Sequence[str] | None = None
                  ) -> Iterator[dict[str, Any]]:
    """Streamed zero-shot of a long file: windows of ``window_seconds`` (default the model's
    ``max_seconds``) are read one by one, embedded (``windows_per_batch`` at a time, the first
    alone so that a result comes early) and fused by the mean of their embeddings.

    Yields, after each batch of windows, ``{"file", "labels", "scores", "windows", "seconds",
    "final": False}`` (the fused result so far), and last the same with ``"final": True``; or one
    ``{"file", "error", "final": True}``. Windows too short or silent to classify are skipped.
    """
    from avsuite.eval.zeroshot import DEFAULT_TEMPLATES, class_embeddings, embed_waves

    labels = parse_labels(list(labels))
    seconds = float(window_seconds or model.cfg.max_seconds)
    with torch.no_grad():
        classes = class_embeddings(model, labels, templates or DEFAULT_TEMPLATES).float().cpu()
        scale = float(model.logit_scale.exp())
    k, acc, used, done = max(1, min(top_k, len(labels))), None, 0, 0.0
    pending: list[torch.Tensor] = []
    try:
        for start, wave in read_windows(path, model.sample_rate, seconds):
            done = start + wave.numel() / model.sample_rate
            if check_wave(wave, model.sample_rate) is None:
                pending.append(wave)
            if len(pending) < (1 if used == 0 else windows_per_batch):
                continue
            emb = embed_waves(model, pending, len(pending))
            acc, used, pending = (emb.sum(0) if acc is None else acc + emb.sum(0)), used + len(pending), []
            yield {"file": str(path), **_scores(torch.softmax(scale * _unit(acc) @ classes.T, -1), labels, k),
                   "windows": used, "seconds": round(done, 3), "final": False}
    except AudioDecodeError as exc:
        yield {"file": str(path), "error": exc.reason, "final": True}
        return
    if pending:
        emb = embed_waves(model, pending, len(pending))
        acc, used = (emb.sum(0) if acc is None else acc + emb.sum(0)), used + len(pending)
    if acc is None:
        yield {"file": str(path), "error": "no window could be classified (too short or silent)", "final": True}
        return
    yield {"file": str(path), **_scores(torch.softmax(scale * _unit(acc) @ classes.T, -1), labels, k),
           "windows": used, "seconds": round(done, 3), "final": True}


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Mean of unit embeddings -> unit vector (the fused clip embedding)."""
    return torch.nn.functional.normalize(x, dim=-1)


def display_name(name: str) -> str:
    """A file name safe for one-line-per-file text output: names holding control characters
    (newline, tab, escape, ...) or ": " are printed JSON-quoted and escaped; others as they are."""
    if any(unicodedata.category(c) == "Cc" for c in name) or ": " in name or name != name.strip():
        return json.dumps(name)
    return name


def one_line(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``), so it stays on one line."""
    return "".join(json.dumps(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in text)


def format_result(res: dict[str, Any]) -> str:
    name = display_name(res["file"])
    if "error" in res:
        return f"{name}: ERROR: {one_line(str(res['error']))}"
    top = ", ".join(f"{one_line(lab)} ({sc:.3f})" for lab, sc in zip(res["labels"], res["scores"]))
    return f"{name}: {top}"


def run_zeroshot(model_dir: str | Path, labels: Sequence[str] | str, files: Sequence[str | Path], *,
                 as_json: bool = False, top_k: int = 5, templates: Sequence[str] | None = None,
                 batch_size: int = BATCH, stream: TextIO | None = None, window_seconds: float | None = None) -> int:
    """Load ``model_dir``, classify ``files`` against ``labels``, print one line per file.

    With ``window_seconds``, every file is streamed (:func:`classify_long`: windows read one by one
    and fused), so a long recording is never held in memory; with ``as_json`` the interim fused
    results are printed too (``"final": false``) as soon as each batch of windows is done.

    Returns the exit status: 0 when every file got a result, 1 when some file got an error
    line (the other files are still classified). Use :func:`classify_files` for the results.
    """
    from avsuite.models.registry import load_model

    labels = parse_labels(labels)
    if not files:
        raise ValueError("no audio files given")
    if window_seconds is not None and not (math.isfinite(window_seconds) and window_seconds > 0):
        raise ValueError(f"window seconds must be a positive number, got {window_seconds}")
    model = load_model(model_dir)
    stream = stream or sys.stdout
    if window_seconds is not None:
        failed = False
        for path in files:
            for res in classify_long(model, labels, path, window_seconds=window_seconds, top_k=top_k,
                                     templates=templates, windows_per_batch=batch_size):
                if as_json:
                    print(json.dumps(res, allow_nan=False), file=stream, flush=True)
                elif res["final"]:
                    print(format_result(res), file=stream, flush=True)
                failed |= "error" in res
        return 1 if failed else 0
    results = classify_files(model, labels, files, top_k=top_k, templates=templates, batch_size=batch_size)
    for res in results:
        print(json.dumps(res, allow_nan=False) if as_json else format_result(res), file=stream, flush=True)
    return 1 if any("error" in r for r in results) else 0
