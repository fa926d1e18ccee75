"""Builders of the real offline corpora (see DATA.md): one module per source, one table here.

    from avsuite.data.corpora import build
    manifest = build("sounds", Path("data/sounds"))              # -> data/sounds/manifest.jsonl
    manifest = build("sounds", out, gm_renders=2)                # options per corpus (see DEFAULTS)
    manifest = build("asterisk")                                 # out defaults to default_corpus_dir()

A build writes ``out/manifest.jsonl`` (rows sorted by id), ``out/audio/...``, ``out/summary.json``
and last the stamp ``out/.complete`` (builder version, options, installed input versions). A second
call with the same stamp returns at once; different options, a new builder version or a changed
input package rebuild; ``force=True`` always rebuilds. Same inputs give a byte-identical manifest.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from avsuite.data.corpora import asterisk, av, intents, sounds, speech_tts
from avsuite.data.corpora.common import RUNTIME_OPTIONS, clear_outputs, write_json

log = logging.getLogger("avsuite.data.corpora")

MANIFEST = "manifest.jsonl"
STAMP = ".complete"
SUMMARY = "summary.json"
_OUTPUTS = (STAMP, MANIFEST, SUMMARY, "audio", "video", ".work")


@dataclass(frozen=True)
class Corpus:
    """One buildable corpus: ``corpus(out, **options) -> (rows, summary)``."""

    name: str
    version: int
    defaults: dict[str, Any]
    build_rows: Callable[[Path, dict[str, Any]], tuple[list[dict[str, Any]], dict[str, Any]]]
    inputs: Callable[[dict[str, Any]], dict[str, Any]]
    format_summary: Callable[[dict[str, Any]], str]
    doc: str = ""

    def resolve(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise TypeError(f"corpus {self.name!r} has no option(s) {unknown}; options: {sorted(self.defaults)}")
        return {**self.defaults, **options}

    def stamp(self, options: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in sorted(options.items()) if k not in RUNTIME_OPTIONS}
        return json.loads(json.dumps({"corpus": self.name, "version": self.version, "options": kept,
                                      "inputs": self.inputs(options)}, sort_keys=True, default=list))

    def __call__(self, out: Path, **options: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return self.build_rows(Path(out), self.resolve(options))


CORPORA: dict[str, Corpus] = {
    "sounds": Corpus("sounds", sounds.VERSION, sounds.DEFAULTS, sounds.build_rows, sounds.inputs,
                     sounds.format_summary, "named sound events: animals, instruments, everyday and game sounds"),
    "asterisk": Corpus("asterisk", asterisk.VERSION, asterisk.DEFAULTS, asterisk.build_rows, asterisk.inputs,
                       asterisk.format_summary, "English telephone prompts with transcripts + fr/es translations"),
    "intents": Corpus("intents", intents.VERSION, intents.DEFAULTS, intents.build_rows, intents.inputs,
                      intents.format_summary, "spoken intents: OVOS templates x offline TTS voices"),
    "av": Corpus("av", av.VERSION, av.DEFAULTS, av.build_rows, av.inputs, av.format_summary,
                 "synthetic talking faces: espeak-ng speech driving rendered mouths (H.264+AAC, 25 fps)"),
    "speech": Corpus("speech", speech_tts.VERSION, speech_tts.DEFAULTS, speech_tts.build_rows, speech_tts.inputs,
                     speech_tts.format_summary, "English sentences x offline TTS voices/rates + Apertium Spanish"),
}


def default_corpus_dir(name: str) -> Path:
    """``${AVSUITE_DATA:-~/.cache/avsuite/corpora}/<name>``."""
    base = os.environ.get("AVSUITE_DATA") or str(Path.home() / ".cache" / "avsuite" / "corpora")
    return Path(base).expanduser() / name


def _corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(sorted(CORPORA))}")
    return CORPORA[name]


def is_built(name: str, out: Path | None = None, **options: Any) -> bool:
    """Whether ``out`` holds a complete build of ``name`` with these options and inputs."""
    corpus = _corpus(name)
    out = Path(out) if out is not None else default_corpus_dir(name)
    return _stamp_matches(out, corpus.stamp(corpus.resolve(options)))


def _stamp_matches(out: Path, want: dict[str, Any]) -> bool:
    stamp, manifest = out / STAMP, out / MANIFEST
    if not (stamp.is_file() and manifest.is_file()):
        return False
    try:
        have = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(have, dict) and {k: have.get(k) for k in want} == want


def build(name: str, out: Path | str | None = None, *, force: bool = False, **options: Any) -> Path:
    """Build corpus ``name`` into ``out`` (default :func:`default_corpus_dir`); return the manifest path.

    Cached: returns at once when ``out/.complete`` matches this builder version, these options
    and the installed inputs. Only the builder's own outputs in ``out`` are replaced.
    """
    corpus = _corpus(name)
    out = Path(out) if out is not None else default_corpus_dir(name)
    opts = corpus.resolve(options)
    want = corpus.stamp(opts)
    manifest = out / MANIFEST
    if not force and _stamp_matches(out, want):
        log.info("%s: up to date in %s", name, out)
        return manifest
    from avsuite.data.manifest import write_manifest  # imports torch: only when building

    t0 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    clear_outputs(out, _OUTPUTS)
    rows, info = corpus.build_rows(out, opts)
    rows = sorted(rows, key=lambda r: r["id"])
    write_manifest(rows, manifest)
    write_json(out / SUMMARY, info)
    elapsed = time.monotonic() - t0
    write_json(out / STAMP, {**want, "built_seconds": round(elapsed, 1), "rows": len(rows)})
    if opts.get("progress", True):
        print(corpus.format_summary(info))
        print(f"{name}: built in {elapsed:.0f} s -> {manifest}")
    return manifest


__all__ = ["CORPORA", "Corpus", "build", "default_corpus_dir", "is_built"]
