"""English sentences for the ``speech`` corpus, from installed text, and their Apertium Spanish.

Sources (each sentence records one; the first source of a duplicate wins):

- ``asterisk``: the English Asterisk prompt transcripts (``asterisk-core-sounds-en``, CC-BY-SA-3.0). A
  prompt whose human recording is in the ``asterisk`` corpus's valid / test split puts its sentence
  in the same held-out sentence split here, so the human test set's texts are never trained on.
- ``ovos-intents``: expanded OVOS intent templates with slots filled (``intents.py``), at most
  ``ovos_per_intent`` per intent.
- ``ovos-dialogs``: the OVOS skills' English ``*.dialog`` answers, slots filled from small word lists.
- ``tuxpaint``: the English captions of ``tuxpaint-stamps-default`` (first line of each stamp ``.txt``).
- ``python-docs``: prose sentences of the Python language reference that ships with the interpreter
  (``pydoc_data.topics``, PSF-2.0).

:func:`clean_sentence` keeps a sentence only when it is plain spoken English: 3-20 words, letters and
light punctuation only (no digits, symbols, acronyms or non-ASCII letters, which TTS engines read in
ways the transcript would not say). :func:`translate` runs ``apertium eng-spa`` ONCE over all
sentences (blank-line separated, which Apertium keeps as segment boundaries) and strips its
unknown-word marks (``*``, ``#``, ``@``).
"""

from __future__ import annotations

import importlib.metadata as md
import random
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

from avsuite.data.corpora import asterisk, intents
from avsuite.data.corpora.common import debian_version, split_for

MIN_WORDS, MAX_WORDS = 3, 20
TUXPAINT_ROOT = Path("/usr/share/tuxpaint/stamps")
#: held-out order: a sentence seen in several places takes its most held-out split
_RANK = {"train": 0, "valid": 1, "test": 2}

DIALOG_SLOTS: dict[str, list[str]] = {
    "location": intents.SLOTS["location"],
    "day": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "tomorrow", "today"],
    "weekday": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
    "time": ["noon", "midnight", "seven thirty", "half past nine", "a quarter to six", "ten o'clock"],
    "condition": ["light rain", "clear skies", "snow", "fog", "thunderstorms", "scattered clouds", "drizzle"],
    "temperature": ["twenty", "seventy two", "minus five", "thirty one", "fifteen", "eighty"],
    "low_temperature": ["three", "ten", "forty", "fifty five"], "high_temperature": ["twelve", "twenty six", "ninety"],
    "speed": ["ten", "fifteen", "twenty five", "forty"], "speed_unit": ["miles per hour", "kilometers per hour"],
    "direction": ["north", "south", "east", "west", "north west", "south east"],
    "percent": ["ten", "forty", "sixty five", "ninety"], "name": ["lunch", "the meeting", "the dentist", "yoga"],
    "kind": ["alarm", "timer", "reminder", "event"], "precipitation": ["rain", "snow", "sleet"],
    "date": intents.SLOTS["date"], "month": ["january", "april", "june", "october", "december"],
}


# -- cleaning ----------------------------------------------------------------------------------------

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": None, "\u201d": None, '"': None, "`": None,
                         "(": None, ")": None, "\u2014": ", ", "\u2013": ", "})


def clean_sentence(text: str) -> str | None:
    """The sentence as it will be spoken (case and light punctuation kept), or None when unusable."""
    t = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    t = re.sub(r"\s+", " ", t).strip()
    t = re.sub(r"\s+([,.;:!?])", r"\1", t)
    if not t or re.search(r"[^A-Za-z ,.;:!?'-]", t) or re.search(r"\b[A-Z]{2,}\b", t):
        return None
    if re.search(r"--|\.\.|-\s|\s-|^-|''", t):
        return None
    words = normalize(t).split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS or not all(re.search(r"[a-z]", w) for w in words):
        return None
    return t


_PROPER = {w: w.capitalize() for w in DIALOG_SLOTS["weekday"] + DIALOG_SLOTS["month"] + [
    "christmas", "easter", "halloween", "thanksgiving", "valentine's", "paris", "london", "tokyo", "berlin",
    "chicago", "madrid", "sydney", "toronto", "lisbon", "seattle", "boston", "dublin", "rome", "denver", "cairo"]}
_PROPER.update({"i": "I", "i'm": "I'm", "i'd": "I'd", "i'll": "I'll", "i've": "I've", "new york": "New York"})
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "tenth")


def true_case(text: str) -> str:
    """Capitalise the first letter, ``I`` and known names of a lower-case template sentence (Apertium
    translates ``Sunday`` and ``I'd``, not ``sunday`` and ``i'd``); ``march`` / ``may`` only after ``of``
    or before an ordinal."""
    t = re.sub(r"\bnew york\b", "New York", text)
    words = t.split(" ")
    for i, w in enumerate(words):
        if w in ("march", "may"):
            if (i and words[i - 1] == "of") or (i + 1 < len(words) and words[i + 1] in _ORDINALS):
                words[i] = w.capitalize()
        elif w in _PROPER:
            words[i] = _PROPER[w]
    t = " ".join(words)
    return t[:1].upper() + t[1:]


def normalize(text: str) -> str:
    """The transcript: lower case, words and apostrophes only (as ``ctc_ot`` normalises)."""
    from avsuite.data.text import normalize_transcript

    return normalize_transcript(text)


# -- sources -----------------------------------------------------------------------------------------

def asterisk_sentences(options: dict[str, Any]) -> list[tuple[str, str | None]]:
    """``(text, forced split)`` of every English prompt; forced = the prompt's ``asterisk`` corpus split."""
    opts = asterisk.DEFAULTS
    path = asterisk.find_transcripts("en", Path(opts["doc_root"]), Path(opts["sounds_root"]))
    if path is None:
        return []
    out = []
    for name, raw in sorted(asterisk.read_transcripts(path).items()):
        split = split_for(name, valid=float(opts["valid"]), test=float(opts["test"]), salt="asterisk")
        out.append((asterisk.normalize_text(raw), split))
    return out


def ovos_intent_sentences(options: dict[str, Any], rng: random.Random) -> list[str]:
    try:
        templates = intents.load_templates()
    except intents.IntentCorpusError:
        return []
    out = []
    for label in sorted(templates):
        pool = sorted(templates[label]["sentences"])
        rng.shuffle(pool)
        out += [intents.fill_slots(s, rng) for s in pool[: int(options["ovos_per_intent"])]]
    return out


def ovos_dialog_sentences(options: dict[str, Any], rng: random.Random) -> list[str]:
    out = []
    for dist_name in intents.SKILLS:
        try:
            files = md.distribution(dist_name).files or []
        except md.PackageNotFoundError:
            continue
        for f in sorted((f for f in files if "/locale/en-us/" in f"/{f}" and str(f).endswith(".dialog")), key=str):
            for line in f.read_text(encoding="utf-8").splitlines():
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                for s in intents.expand_template(line, limit=50):
                    slots = re.findall(r"\{\s*(\w+)\s*\}", s)
                    if all(k.lower() in DIALOG_SLOTS for k in slots):
                        out.append(intents.fill_slots(s, rng, DIALOG_SLOTS))
    return out


def tuxpaint_sentences(root: Path = TUXPAINT_ROOT) -> list[str]:
    out = []
    for p in sorted(root.rglob("*.txt")) if root.is_dir() else []:
        first = p.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].strip()
        if first and "=" not in first:
            out.append(first)
    return out


def python_doc_sentences() -> list[str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return []
    text = re.sub(r"\s+", " ", " ".join(topics[k] for k in sorted(topics)))
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s[:1].isupper()]


def collect(options: dict[str, Any]) -> list[dict[str, Any]]:
    """Unique usable sentences ``{"text_raw", "text", "source", "forced"}`` sorted by ``text``."""
    rng = random.Random(f"speech:{options['seed']}")
    cands: list[tuple[str, str, str | None]] = [(s, "asterisk", f) for s, f in asterisk_sentences(options)]
    cands += [(true_case(s), "ovos-intents", None) for s in ovos_intent_sentences(options, rng)]
    cands += [(true_case(s), "ovos-dialogs", None) for s in ovos_dialog_sentences(options, rng)]
    cands += [(s, "tuxpaint", None) for s in tuxpaint_sentences()]
    cands += [(s, "python-docs", None) for s in python_doc_sentences()]
    seen: dict[str, dict[str, Any]] = {}
    for raw, source, forced in cands:
        spoken = clean_sentence(raw)
        if spoken is None:
            continue
        key = normalize(spoken)
        entry = seen.setdefault(key, {"text_raw": spoken, "text": key, "source": source, "forced": forced})
        if forced and _RANK[forced] > _RANK.get(entry["forced"] or "train", 0):
            entry["forced"] = forced
    return [seen[k] for k in sorted(seen)]


SOURCE_INFO = {"asterisk": ("asterisk-core-sounds-en", "CC-BY-SA-3.0"),
               "ovos-intents": ("ovos-skill-* intent templates", "Apache-2.0/BSD-3-Clause"),
               "ovos-dialogs": ("ovos-skill-* dialogs", "Apache-2.0/BSD-3-Clause"),
               "tuxpaint": ("tuxpaint-stamps-default", "GPL-2.0"),
               "python-docs": ("python pydoc_data.topics", "PSF-2.0")}


def text_inputs() -> dict[str, Any]:
    """Versions of the installed text sources and the translator (a cached build depends on them)."""
    import sys

    found: dict[str, Any] = {p: debian_version(p) for p in ("asterisk-core-sounds-en", "tuxpaint-stamps-default",
                                                          "apertium", "apertium-eng-spa")}
    for d in intents.SKILLS:
        try:
            found[d] = md.version(d)
        except md.PackageNotFoundError:
            found[d] = None
    found["python"] = ".".join(map(str, sys.version_info[:3]))
    return found


# -- translation -------------------------------------------------------------------------------------

#: Apertium's marks: ``*`` unknown word, ``#`` generation error, ``@`` untranslated lemma (the source
#: text never holds these characters: :func:`clean_sentence` refuses them)
_UNKNOWN_MARK = re.compile(r"[*#@~]")


def translate(sentences: list[str], pair: str = "eng-spa", timeout: float = 1800) -> list[str]:
    """Apertium ``pair`` translations of ``sentences``, in order, from ONE ``apertium`` process."""
    if shutil.which("apertium") is None:
        raise RuntimeError("apertium not found: install the Debian packages apertium apertium-eng-spa "
                           "(tools/setup.sh)")
    if not sentences:
        return []
    if any("\n" in s for s in sentences):
        raise ValueError("sentences must be single lines")
    src = "\n\n".join(s.strip() for s in sentences) + "\n"
    proc = subprocess.run(["apertium", pair], input=src, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"apertium {pair} failed: {proc.stderr.strip()[:300]}")
    out = [re.sub(r"\s+", " ", _UNKNOWN_MARK.sub("", seg)).strip() for seg in re.split(r"\n\s*\n", proc.stdout.strip())]
    if len(out) != len(sentences):
        raise RuntimeError(f"apertium returned {len(out)} segments for {len(sentences)} sentences")
    return out

