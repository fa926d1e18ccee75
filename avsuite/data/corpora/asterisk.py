"""Corpus ``asterisk``: English telephone prompts with transcripts and French/Spanish translations.

Debian ``asterisk-core-sounds-en`` (+ ``-en-g722`` 16 kHz / ``-en-wav`` 8 kHz audio) are read by one
speaker; ``core-sounds-<lang>.txt.gz`` (``name: text``, under ``/usr/share/doc``) hold the transcripts.
The French and Spanish packages transcribe the same prompt names, which makes a small real
speech-translation corpus. Audio is decoded with ``load_audio`` (16 kHz G.722 preferred, else the
8 kHz wav), resampled to 16 kHz and written as 16-bit wav.

Row: ``id, audio, duration, sr, text, text_raw, translation {fr, es}, lang, split, speaker, source,
license, prompt``. ``text`` is lightly normalised: bracketed notes (``[beep]``, ``<beep>``,
``(emphase)``) are removed, spaces collapsed, fragment ellipses at the ends dropped; rows whose text
is then empty (tones, silence) are skipped and counted. Splits hash the prompt name (~80/10/10).
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path
from typing import Any

from avsuite.data.corpora.common import (ConvertJob, Summary, convert_all, debian_version, duration_of, order_row,
                                         split_for, table)

VERSION = 1
LICENSE = "CC-BY-SA-3.0"
SOUNDS_ROOT = Path("/usr/share/asterisk/sounds")
DOC_ROOT = Path("/usr/share/doc")
DEFAULTS: dict[str, Any] = {"lang": "en", "translations": ("fr", "es"), "prefer": ("g722", "wav"), "sr": 16000,
                            "valid": 0.1, "test": 0.1, "sounds_root": str(SOUNDS_ROOT), "doc_root": str(DOC_ROOT),
                            "workers": None, "progress": True}
_AUDIO_PACKAGE = {"g722": "asterisk-core-sounds-{lang}-g722", "wav": "asterisk-core-sounds-{lang}-wav",
                  "gsm": "asterisk-core-sounds-{lang}"}


# -- transcripts ------------------------------------------------------------------------------------

def find_transcripts(lang: str, doc_root: Path = DOC_ROOT, sounds_root: Path = SOUNDS_ROOT) -> Path | None:
    """``core-sounds-<lang>.txt[.gz]``: in the package's doc folder, the sounds folder, or anywhere below them."""
    name = f"core-sounds-{lang}.txt"
    for cand in (doc_root / f"asterisk-core-sounds-{lang}" / f"{name}.gz", doc_root / f"asterisk-core-sounds-{lang}" / name,
                 sounds_root / lang / name, sounds_root / lang / f"{name}.gz"):
        if cand.is_file():
            return cand
    for root in (doc_root, sounds_root):
        if root.is_dir():
            hits = sorted(root.glob(f"*/{name}*")) + sorted(root.glob(f"*/*/{name}*"))
            if hits:
                return hits[0]
    return None


def read_transcripts(path: Path) -> dict[str, str]:
    """``{prompt name: raw text}`` from a ``name: text`` file (``;`` comments; the last duplicate wins)."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";") or ":" not in line:
            continue
        name, value = line.split(":", 1)
        if name.strip() and " " not in name.strip():
            out[name.strip()] = value.strip()
    return out


_BRACKETS = re.compile(r"\[[^\]]*\]|<[^>]*>")
_PARENS = re.compile(r"\(([^()]*)\)")
_NOTE = re.compile(r"silence|note:|tone|sound|beep|plays|emphas", re.IGNORECASE)


def _paren(m: re.Match) -> str:
    inner = m.group(1)
    return " " if len(inner.split()) <= 2 or _NOTE.search(inner) else f" {inner} "


def normalize_text(text: str) -> str:
    """Strip bracketed notes and markup, collapse spaces; ``""`` when nothing spoken is left.

    ``[ascending tones]`` and ``<beep>`` go; a parenthesis goes when it is a note: one or two words
    (``(emphase)``, ``(beep)``) or a description (``(2 seconds of silence)``, ``(note: ...)``); any
    other parenthesis is spoken text (``(ne m'appelez plus, jamais)``) and keeps its words.
    """
    t = _BRACKETS.sub(" ", text)
    t = _PARENS.sub(_paren, t)
    t = re.sub(r"\s+", " ", t).strip()
    t = re.sub(r"\s+([,.;:!?])", r"\1", t)
    t = re.sub(r"^(\.\.\.|…)\s*", "", t)
    t = re.sub(r"\s*(\.\.\.|…)$", "", t)
    return t.strip() if re.search(r"\w", t) else ""


# -- audio ------------------------------------------------------------------------------------------

def voice_dir(lang: str, sounds_root: Path = SOUNDS_ROOT) -> Path | None:
    """The folder of ``lang``'s prompts (``sounds/en`` is a symlink to ``en_US_f_Allison``)."""
    d = sounds_root / lang
    if d.is_dir():
        return d.resolve()
    hits = sorted(p for p in sounds_root.glob(f"{lang}_*") if p.is_dir()) if sounds_root.is_dir() else []
    return hits[0].resolve() if hits else None


def find_audio(voice: Path, name: str, prefer: tuple[str, ...]) -> tuple[Path, str] | None:
    for ext in prefer:
        p = voice / f"{name}.{ext}"
        if p.is_file():
            return p, ext
    return None


def inputs(options: dict[str, Any]) -> dict[str, Any]:
    lang = options["lang"]
    pkgs = [f"asterisk-core-sounds-{lang}"] + [_AUDIO_PACKAGE[e].format(lang=lang) for e in options["prefer"]
                                               if e in _AUDIO_PACKAGE] + \
           [f"asterisk-core-sounds-{t}" for t in options["translations"]]
    return {p: debian_version(p) for p in dict.fromkeys(pkgs)}


def build_rows(out: Path, options: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lang, sr = options["lang"], int(options["sr"])
    doc_root, sounds_root = Path(options["doc_root"]), Path(options["sounds_root"])
    summary = Summary()
    tpath = find_transcripts(lang, doc_root, sounds_root)
    voice = voice_dir(lang, sounds_root)
    if tpath is None or voice is None:
        raise RuntimeError(f"asterisk: no {lang} transcripts ({tpath}) or prompts ({voice}); install "
                           f"asterisk-core-sounds-{lang} and asterisk-core-sounds-{lang}-g722 (tools/setup.sh)")
    texts = read_transcripts(tpath)
    translations = {}
    for t in options["translations"]:
        p = find_transcripts(t, doc_root, sounds_root)
        if p is None:
            summary.skip("translation transcripts missing", t)
            continue
        translations[t] = {k: normalize_text(v) for k, v in read_transcripts(p).items()}
    items = []
    for name in sorted(texts):
        text = normalize_text(texts[name])
        if not text:
            summary.skip("empty transcript", name)
            continue
        found = find_audio(voice, name, tuple(options["prefer"]))
        if found is None:
            summary.skip("no audio for transcript", name)
            continue
        items.append((name, text, *found))
    jobs = [ConvertJob(str(src), str(out / "audio" / f"{name}.wav"), sr) for name, _, src, _ in items]
    results = convert_all(jobs, workers=options["workers"], desc="asterisk: convert", progress=options["progress"])
    rows = []
    for (name, text, src, ext), res in zip(items, results):
        if not res["ok"]:
            summary.skip(res["reason"], f"{name}: {res.get('detail', '')}")
            continue
        trans = {t: d[name] for t, d in translations.items() if d.get(name)}
        rows.append(order_row({
            "id": f"asterisk/{lang}/{name}", "audio": f"audio/{name}.wav", "duration": duration_of(res["frames"], sr),
            "sr": res["sr"], "text": text, "text_raw": texts[name], "translation": trans, "lang": lang,
            "split": split_for(name, valid=float(options["valid"]), test=float(options["test"]), salt="asterisk"),
            "speaker": voice.name, "source": _AUDIO_PACKAGE.get(ext, "asterisk-core-sounds-{lang}").format(lang=lang),
            "license": LICENSE, "prompt": name}))
    if not rows:
        raise RuntimeError(f"asterisk: no usable prompt (skipped: {dict(summary.skipped)})")
    return rows, describe(rows, summary)


def describe(rows: list[dict[str, Any]], summary: Summary) -> dict[str, Any]:
    pairs = Counter(t for r in rows for t in r["translation"])
    return {"clips": len(rows), "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
            "per_split": dict(sorted(Counter(r["split"] for r in rows).items())),
            "translation_pairs": dict(sorted(pairs.items())),
            "per_source": dict(sorted(Counter(r["source"] for r in rows).items())), **summary.to_dict()}


def format_summary(info: dict[str, Any]) -> str:
    parts = [f"asterisk: {info['clips']} prompts, {info['hours'] * 60:.1f} min",
             table("prompts per split", info["per_split"], ("split", "prompts")),
             table("with a translation", info["translation_pairs"], ("language", "prompts"))]
    if info["skipped"]:
        parts.append(table("skipped", info["skipped"], ("reason", "count")))
    return "\n".join(parts)
