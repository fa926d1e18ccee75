"""Corpus ``sounds``: named sound events (animals, instruments, everyday and game sounds).

Sources (each optional; a missing one is reported, not fatal): Debian ``tuxpaint-stamps-default``,
Debian ``gcompris-qt-data`` (rcc files), the PyPI ``arcade`` wheel (Kenney), and General MIDI
renders with Debian ``fluidsynth`` + ``fluid-soundfont-gm``. Every clip is decoded with
``load_audio``, mixed to mono, resampled to 32 kHz and written as 16-bit wav under ``audio/``;
undecodable and silent clips are skipped and counted, exact duplicates are kept once.

Row: ``id, audio, duration, sr, label, captions, category, source, license, origin`` (+ ``midi`` for
renders). ``label`` is a short class name for zero-shot prompts; ``captions`` holds the source's
caption(s) and two templates.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from avsuite.data.corpora import sounds_arcade, sounds_fluidsynth, sounds_gcompris, sounds_tuxpaint
from avsuite.data.corpora.common import (ClipSpec, ConvertJob, Summary, convert_all, debian_version, duration_of,
                                         order_row, table, with_article)

log = logging.getLogger("avsuite.data.corpora.sounds")

VERSION = 1
SR = 32000
SOURCES = ("tuxpaint", "gcompris", "arcade", "fluidsynth")
DEFAULTS: dict[str, Any] = {"sources": SOURCES, "gm_renders": 4, "gm_programs": None, "gm_drums": True,
                            "workers": None, "progress": True}

#: Labels read without an article ("the sound of rain", not "a rain").
MASS_NOUNS = frozenset({
    "applause", "rain", "thunder", "fireworks", "machinery", "coins", "bubbles", "footsteps", "pouring water",
    "water flowing", "crunching", "paper rustling", "breathing", "ocean waves", "bongo drums", "castanets",
    "maracas", "timpani", "bagpipes", "tubular bells", "synth strings", "pizzicato strings", "tremolo strings",
    "synth brass", "guitar harmonics", "guitar fret noise",
})


def np_label(label: str) -> str:
    """The label as a noun phrase: ``"a dog"``, ``"an owl"``, ``"rain"``."""
    return label if label in MASS_NOUNS else with_article(label)


def template_captions(label: str, category: str) -> list[str]:
    """Two generic captions for a clip of ``label`` (after the source's own captions)."""
    if category == "sfx":  # game sounds: "a hurt sound effect", "a short game over sound"
        return [with_article(f"{label} sound effect"), f"a short {label} sound"]
    x = np_label(label)
    second = "{x} being played" if category == "instrument" else "a recording of {x}"
    return [f"the sound of {x}", second.format(x=x)]


def inputs(options: dict[str, Any]) -> dict[str, Any]:
    """What the build reads, with versions: a change here (a package installed or upgraded) rebuilds."""
    found: dict[str, Any] = {}
    for source in options["sources"]:
        if source == "tuxpaint":
            found[source] = debian_version(sounds_tuxpaint.PACKAGE) if sounds_tuxpaint.available() else None
        elif source == "gcompris":
            found[source] = debian_version(sounds_gcompris.PACKAGE) if sounds_gcompris.available() else None
        elif source == "arcade":
            found[source] = sounds_arcade.version() if sounds_arcade.available() else None
        elif source == "fluidsynth":
            found[source] = (f"{debian_version('fluidsynth')}/{debian_version(sounds_fluidsynth.PACKAGE)}"
                             if sounds_fluidsynth.available() else None)
        else:
            raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    return found


def _collect(work: Path, options: dict[str, Any], summary: Summary) -> list[ClipSpec]:
    specs: list[ClipSpec] = []
    for source, ok in inputs(options).items():
        if ok is None:
            log.warning("sounds: source %r is not installed; skipping it (tools/setup.sh installs it)", source)
            summary.skip("source not installed", source)
            continue
        if source == "tuxpaint":
            specs += sounds_tuxpaint.collect(summary=summary)
        elif source == "gcompris":
            (work / "gcompris").mkdir(parents=True, exist_ok=True)
            specs += sounds_gcompris.collect(work / "gcompris", summary=summary)
        elif source == "arcade":
            specs += sounds_arcade.collect(summary=summary)
        elif source == "fluidsynth":
            (work / "fluidsynth").mkdir(parents=True, exist_ok=True)
            specs += sounds_fluidsynth.collect(work / "fluidsynth", renders=int(options["gm_renders"]),
                                               programs=options["gm_programs"], drums=bool(options["gm_drums"]),
                                               workers=options["workers"], progress=options["progress"],
                                               summary=summary)
    ids = Counter(s.id for s in specs)
    dup = [i for i, c in ids.items() if c > 1]
    if dup:
        raise RuntimeError(f"duplicate clip ids from the sources: {dup[:5]}")
    return sorted(specs, key=lambda s: s.id)


def build_rows(out: Path, options: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Collect, convert and describe every clip; returns ``(rows, summary)``."""
    summary = Summary()
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    try:
        specs = _collect(work, options, summary)
        jobs = [ConvertJob(s.src, str(out / "audio" / f"{s.id}.wav"), SR) for s in specs]
        results = convert_all(jobs, workers=options["workers"], desc="sounds: convert", progress=options["progress"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows, seen = [], {}
    for spec, job, res in zip(specs, jobs, results):
        if not res["ok"]:
            summary.skip(res["reason"], f"{spec.id}: {res.get('detail', '')}")
            continue
        if res["digest"] in seen:
            summary.skip("duplicate", f"{spec.id} = {seen[res['digest']]}")
            Path(job.dst).unlink(missing_ok=True)
            continue
        seen[res["digest"]] = spec.id
        captions = list(dict.fromkeys(spec.captions + template_captions(spec.label, spec.category)))
        row = {"id": spec.id, "audio": f"audio/{spec.id}.wav", "duration": duration_of(res["frames"], res["sr"]),
               "sr": res["sr"], "label": spec.label, "captions": captions, "category": spec.category,
               "source": spec.source, "license": spec.license, "origin": spec.origin, **spec.extra}
        rows.append(order_row(row))
    if not rows:
        raise RuntimeError("sounds: no clip could be built; install the sources with tools/setup.sh "
                           f"(skipped: {dict(summary.skipped)})")
    return rows, describe(rows, summary)


def describe(rows: list[dict[str, Any]], summary: Summary) -> dict[str, Any]:
    labels = Counter(r["label"] for r in rows)
    info = {
        "clips": len(rows), "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
        "labels": len(labels), "labels_with_2_or_more": sum(1 for c in labels.values() if c >= 2),
        "per_source": dict(sorted(Counter(r["source"] for r in rows).items())),
        "per_category": dict(sorted(Counter(r["category"] for r in rows).items())),
        "per_label": dict(sorted(labels.items())),
        **summary.to_dict(),
    }
    return info


def format_summary(info: dict[str, Any]) -> str:
    parts = [f"sounds: {info['clips']} clips, {info['hours'] * 60:.1f} min, {info['labels']} labels "
             f"({info['labels_with_2_or_more']} with >= 2 clips)",
             table("clips per source", info["per_source"], ("source", "clips")),
             table("clips per category", info["per_category"], ("category", "clips"))]
    if info["skipped"]:
        parts.append(table("skipped", info["skipped"], ("reason", "clips")))
    return "\n".join(parts)
