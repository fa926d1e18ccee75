"""Offline text-to-speech shared by the corpus builders (``intents``, ``speech``).

A speaker is ``"<engine>:<voice>"``: ``espeak:en-gb-scotland+f2`` (espeak-ng accent + variant),
``flite:slt`` (flite's built-in voices), ``festival:kal_diphone`` (festival voices, through
``text2wave``). :func:`synthesize` speaks one text at a speed factor into a 16 kHz mono 16-bit wav
(peak-normalised to 0.9); :func:`run_jobs` speaks many in parallel: a thread pool whose threads
wait on the TTS subprocesses, so the engines themselves run as parallel processes (threads, not
forked workers: forking a process that already runs torch threads can deadlock the children).

Same text, speaker and speed give the same bytes (all three engines are deterministic).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

SAMPLE_RATE = 16000

ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029"]
ESPEAK_VARIANTS = ["m1", "f1", "m3", "f2", "m2", "f3", "m4", "f4", "m7", "f5", "klatt", "klatt3", "m5", "m6"]
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]
FESTIVAL_VOICES = ["kal_diphone", "cmu_us_slt_arctic_hts"]
SPEEDS = [0.85, 1.0, 1.15]
#: engine -> the executable it runs, and the Debian package that has it
ENGINE_EXE = {"espeak": "espeak-ng", "flite": "flite", "festival": "text2wave"}
ENGINE_PACKAGE = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival"}


class TTSError(RuntimeError):
    """A TTS engine is missing or failed on a text."""


def tts_command(speaker: str, text: str, speed: float, wav: str) -> tuple[list[str], str | None]:
    """``(argv, stdin text or None)`` that speaks ``text`` as ``speaker`` at ``speed`` into ``wav``."""
    engine, voice = speaker.split(":", 1) if ":" in speaker else (speaker, "")
    if engine == "espeak":
        return ["espeak-ng", "-v", voice, "-s", str(int(round(170 * speed))), "-w", wav, text], None
    if engine == "flite":
        return ["flite", "-voice", voice, "--setf", f"duration_stretch={1 / speed:.3f}", "-t", text, "-o", wav], None
    if engine == "festival":
        return (["text2wave", "-o", wav, "-eval", f"(voice_{voice})",
                 "-eval", f"(Parameter.set 'Duration_Stretch {1 / speed:.3f})"], text)
    raise TTSError(f"unknown TTS engine in speaker {speaker!r} (known: {', '.join(ENGINE_EXE)})")


def synthesize(speaker: str, text: str, speed: float, out_wav: Path) -> float:
    """Speak ``text`` with ``speaker`` into a 16 kHz mono wav; return its duration in seconds."""
    with tempfile.TemporaryDirectory(prefix="avsuite_tts_") as tmp:
        raw = os.path.join(tmp, "raw.wav")
        cmd, stdin = tts_command(speaker, text, speed, raw)
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not os.path.exists(raw):
            raise TTSError(f"{cmd[0]} failed for {speaker!r} on {text!r}: {proc.stderr.strip()[:300]}")
        return finish_wave(raw, out_wav)


def finish_wave(raw: str, out_wav: Path) -> float:
    """An engine's wav -> mono, 16 kHz, peak 0.9, 16-bit ``out_wav`` (written atomically); its seconds."""
    import numpy as np
    import soundfile as sf
    import torch

    from avsuite.audio.resample import resample

    data, sr = sf.read(raw, dtype="float32", always_2d=True)
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if sr != SAMPLE_RATE:
        wave = resample(wave, sr, SAMPLE_RATE)
    peak = float(wave.abs().max()) if wave.numel() else 0.0
    if peak > 0:
        wave = wave * (0.9 / peak)
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out_wav.with_suffix(".tmp.wav")
    sf.write(str(tmp_out), wave.numpy(), SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp_out, out_wav)
    return wave.numel() / SAMPLE_RATE


def festival_batch(jobs: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """Speak several festival jobs in ONE ``festival`` process (it spends ~1 s loading per call).

    Each utterance: ``(voice_X)`` when the voice changes, ``Duration_Stretch`` = 1/speed, then
    ``utt.synth`` of the text (the same Text -> Token -> Word path as ``text2wave``).
    """
    lines, voice = [], None
    with tempfile.TemporaryDirectory(prefix="avsuite_festival_") as tmp:
        for i, job in enumerate(jobs):
            engine, v = job["speaker"].split(":", 1)
            if engine != "festival" or not re.fullmatch(r"\w+", v):
                raise TTSError(f"festival_batch got speaker {job['speaker']!r}")
            if v != voice:
                lines.append(f"(voice_{v})")
                voice = v
            text = job["text"].replace("\\", " ").replace('"', " ")
            lines += [f"(Parameter.set 'Duration_Stretch {1 / job['speed']:.3f})",
                      f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{tmp}/{i}.wav" \'riff)']
        proc = subprocess.run(["festival", "--pipe"], input="\n".join(lines) + "\n", capture_output=True,
                              text=True, timeout=60 + 30 * len(jobs))
        out = []
        for i, job in enumerate(jobs):
            raw = os.path.join(tmp, f"{i}.wav")
            if proc.returncode != 0 or not os.path.exists(raw):
                raise TTSError(f"festival failed for {job['speaker']!r} on {job['text']!r}: "
                               f"{(proc.stderr or proc.stdout).strip()[:300]}")
            out.append((job["id"], finish_wave(raw, Path(job["path"]))))
    return out


def synth_job(job: dict[str, Any]) -> tuple[str, float]:
    """One job ``{"id", "path", "speaker", "text", "speed"}`` -> ``(id, seconds)``; a finished file is reused."""
    path = Path(job["path"])
    if path.is_file():
        import soundfile as sf
        return job["id"], sf.info(str(path)).duration
    return job["id"], synthesize(job["speaker"], job["text"], job["speed"], path)


def _task(batch: list[dict[str, Any]]) -> list[tuple[str, float]]:
    if len(batch) == 1:
        return [synth_job(batch[0])]
    return festival_batch(batch)


def _batches(jobs: list[dict[str, Any]], festival_chunk: int) -> list[list[dict[str, Any]]]:
    """Single jobs, except festival jobs still to speak: grouped by voice, ``festival_chunk`` per process."""
    single, fest = [], {}
    for job in jobs:
        if engine_of(job["speaker"]) == "festival" and festival_chunk > 1 and not Path(job["path"]).is_file():
            fest.setdefault(job["speaker"], []).append(job)
        else:
            single.append([job])
    grouped = [group[i:i + festival_chunk] for _, group in sorted(fest.items())
               for i in range(0, len(group), festival_chunk)]
    return grouped + single           # the slow batches first: they finish while the quick jobs run


def run_jobs(jobs: list[dict[str, Any]], workers: int, progress: bool = True, desc: str = "speaking",
             festival_chunk: int = 1) -> dict[str, float]:
    """Speak ``jobs`` with ``workers`` TTS processes at a time; ``{id: seconds}``.

    ``festival_chunk > 1`` speaks festival jobs in batches of that many per process
    (:func:`festival_batch`); other engines run one process per clip.
    """
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with the pinned set
        tqdm = None
    bar = tqdm(total=len(jobs), desc=desc, unit="clip") if tqdm and progress else None
    durations: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="avsuite-tts") as pool:
        for done in pool.map(_task, _batches(jobs, festival_chunk)):
            for cid, dur in done:
                durations[cid] = dur
            if bar is not None:
                bar.update(len(done))
    if bar is not None:
        bar.close()
    return durations


def engine_of(speaker: str) -> str:
    return speaker.split(":", 1)[0]


def missing_engines(engines: Iterable[str]) -> list[str]:
    """Human-readable notes for the engines of ``engines`` whose executable is not on PATH."""
    out = []
    for engine in sorted(set(engines)):
        exe = ENGINE_EXE.get(engine)
        if exe is None:
            out.append(f"unknown TTS engine {engine!r}")
        elif shutil.which(exe) is None:
            out.append(f"TTS engine {exe!r} not found (Debian package {ENGINE_PACKAGE[engine]}); or set n_{engine}=0")
    return out


def engines_installed() -> dict[str, bool]:
    """``{executable: on PATH}`` for every engine (part of a cached build's inputs)."""
    return {exe: bool(shutil.which(exe)) for exe in ENGINE_EXE.values()}
