"""Corpus ``speech``: English sentences from installed text spoken by many offline TTS voices and rates,
with Apertium Spanish targets: ASR and speech-translation training data for ``ctc_ot``.

Sentences: :mod:`avsuite.data.corpora.speech_text` (Asterisk prompts, OVOS intents and dialogs,
tuxpaint captions, Python reference prose; 3-20 plain words). Targets: ``apertium eng-spa`` (rule-based,
deterministic), one process for all sentences. Voices (:mod:`avsuite.data.corpora.tts`): espeak-ng
accent x variant combos, flite and festival voices grouped in families of one recorded speaker
(``kal`` = flite kal/kal16 + festival kal_diphone; ``slt`` = flite slt + festival's slt HTS voice).

Splits, disjoint both ways: sentences hash into train / valid / test (a sentence whose human
Asterisk recording is in the ``asterisk`` corpus's valid / test split is forced into the same split,
so the human test set's texts are never trained on); voices split into train / valid / test pools
(whole families held out: ``valid_families``, ``test_families``, plus a share of the espeak combos).
Train sentences are spoken by train voices only, valid by valid voices, test by test voices: the
``test`` rows are UNSEEN SENTENCES IN UNSEEN VOICES. ``test_seen_voice`` rows (the test sentences
once more, each in one train voice) isolate the voice effect; they are also written, marked
``test``, to ``test_seen_voice.jsonl`` for ``data.test_manifest``.

Row: ``id, audio, duration, sr, text (normalised transcript), text_raw (what was spoken),
translation {es}, lang, split, speaker, engine, speed, sentence, source, license, origin``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from avsuite.data.corpora import speech_text, tts
from avsuite.data.corpora.common import debian_version, order_row, split_for, table

VERSION = 1
FAMILIES: dict[str, list[str]] = {
    "kal": ["flite:kal", "flite:kal16", "festival:kal_diphone"],
    "slt": ["flite:slt", "festival:cmu_us_slt_arctic_hts"],
    "awb": ["flite:awb"],
    "rms": ["flite:rms"],
}
#: share of a sentence's clips per engine (renormalised over the engines a pool has)
ENGINE_WEIGHTS = {"espeak": 0.55, "flite": 0.3, "festival": 0.15}
DEFAULTS: dict[str, Any] = {
    "seed": 0, "ovos_per_intent": 60, "max_sentences": 0, "sentence_valid": 0.08, "sentence_test": 0.1,
    "voices_per_sentence": 2, "seen_voice_test": True, "speeds": (0.8, 0.9, 1.0, 1.1, 1.25),
    "n_espeak": len(tts.ESPEAK_ACCENTS) * len(tts.ESPEAK_VARIANTS), "espeak_valid": 0.1, "espeak_test": 0.15,
    "families": tuple(FAMILIES), "valid_families": ("awb",), "test_families": ("slt",),
    "workers": 2, "progress": True}
SPLITS = ("train", "valid", "test")
#: festival clips spoken per festival process (it loads for ~1 s per call)
FESTIVAL_CHUNK = 24


class SpeechCorpusError(RuntimeError):
    """The speech corpus cannot be built (bad option, missing engine or translator)."""


# -- voices ------------------------------------------------------------------------------------------

def voice_pools(options: dict[str, Any]) -> dict[str, list[str]]:
    """``{"train"|"valid"|"test": [speaker, ...]}``, disjoint; raises when a pool is empty."""
    fams = list(options["families"])
    unknown = sorted((set(fams) | set(options["valid_families"]) | set(options["test_families"])) - set(FAMILIES))
    if unknown:
        raise SpeechCorpusError(f"unknown voice families {unknown}; known: {sorted(FAMILIES)}")
    if set(options["valid_families"]) & set(options["test_families"]):
        raise SpeechCorpusError("valid_families and test_families must not overlap")
    combos = [f"espeak:{a}+{v}" for v in tts.ESPEAK_VARIANTS for a in tts.ESPEAK_ACCENTS]
    n = int(options["n_espeak"])
    if not 0 <= n <= len(combos):
        raise SpeechCorpusError(f"n_espeak must be in 0..{len(combos)}")
    random.Random(f"speech-voices:{options['seed']}").shuffle(combos)
    combos = combos[:n]
    n_test = max(1, round(n * float(options["espeak_test"]))) if n >= 3 else 0
    n_valid = max(1, round(n * float(options["espeak_valid"]))) if n >= 3 else 0
    pools = {"test": combos[:n_test], "valid": combos[n_test:n_test + n_valid], "train": combos[n_test + n_valid:]}
    for fam in fams:
        split = "test" if fam in options["test_families"] else "valid" if fam in options["valid_families"] else "train"
        pools[split] += FAMILIES[fam]
    empty = [s for s in SPLITS if not pools[s]]
    if empty:
        raise SpeechCorpusError(f"no voice for split(s) {empty}: use n_espeak >= 3 or more families")
    return pools


def pick_voices(pool: list[str], k: int, rng: random.Random) -> list[str]:
    """``k`` distinct speakers of ``pool``: an engine by :data:`ENGINE_WEIGHTS`, then a voice of it."""
    left = list(pool)
    out: list[str] = []
    while left and len(out) < k:
        engines = sorted({tts.engine_of(s) for s in left})
        engine = rng.choices(engines, weights=[ENGINE_WEIGHTS.get(e, 0.1) for e in engines])[0]
        voice = rng.choice([s for s in left if tts.engine_of(s) == engine])
        out.append(voice)
        left.remove(voice)
    return out


# -- plan ----------------------------------------------------------------------------------------------

def sentence_split(entry: dict[str, Any], options: dict[str, Any]) -> str:
    return entry["forced"] or split_for(entry["text"], valid=float(options["sentence_valid"]),
                                        test=float(options["sentence_test"]), salt=f"speech:{options['seed']}")


def choose_sentences(sentences: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
    """All sentences with their ``split``; with ``max_sentences``, a hash-ordered subset holding every split."""
    for s in sentences:
        s["split"] = sentence_split(s, options)
    limit = int(options["max_sentences"])
    if not limit:
        return sentences
    if limit < 3:
        raise SpeechCorpusError("max_sentences must be 0 (all) or >= 3")
    ranked = sorted(sentences, key=lambda s: hashlib.sha1(f"{options['seed']}:{s['text']}".encode()).hexdigest())
    keep = [next(s for s in ranked if s["split"] == sp) for sp in SPLITS if any(s["split"] == sp for s in ranked)]
    keep += [s for s in ranked if s not in keep][: max(0, limit - len(keep))]
    return sorted(keep, key=lambda s: s["text"])


def plan_rows(sentences: list[dict[str, Any]], pools: dict[str, list[str]], options: dict[str, Any]) -> list[dict]:
    """Every clip to speak (no audio yet), deterministic in ``options['seed']``."""
    rows = []
    k = int(options["voices_per_sentence"])
    if k < 1:
        raise SpeechCorpusError("voices_per_sentence must be >= 1")
    for s in sentences:
        rng = random.Random(f"{options['seed']}:{s['text']}")
        sid = hashlib.sha1(s["text"].encode()).hexdigest()[:12]
        clips = [(v, s["split"]) for v in pick_voices(pools[s["split"]], k, rng)]
        if s["split"] == "test" and options["seen_voice_test"]:
            clips += [(v, "test_seen_voice") for v in pick_voices(pools["train"], 1, rng)]
        for voice, split in clips:
            speed = float(rng.choice(list(options["speeds"])))
            slug = re.sub(r"[^A-Za-z0-9_-]+", "-", voice)
            name = f"{slug}_{int(round(speed * 100))}"
            package, lic = speech_text.SOURCE_INFO[s["source"]]
            rows.append(order_row({
                "id": f"speech/{sid}/{name}", "audio": f"audio/{sid}/{name}.wav", "duration": 0.0,
                "sr": tts.SAMPLE_RATE, "text": s["text"], "text_raw": s["text_raw"],
                "translation": {"es": s["translation"]} if s.get("translation") else {}, "lang": "en",
                "split": split, "speaker": voice, "engine": tts.engine_of(voice), "speed": speed, "sentence": sid,
                "source": package, "license": lic, "origin": s["source"]}))
    return rows


# -- corpora table -------------------------------------------------------------------------------------

def inputs(options: dict[str, Any]) -> dict[str, Any]:
    found = speech_text.text_inputs()
    found.update(tts.engines_installed())
    found.update({p: debian_version(p) for p in ("espeak-ng-data", "flite", "festival", "festvox-kallpc16k",
                                                 "festvox-us-slt-hts")})
    return found


def build_rows(out: Path, options: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Collect, translate, plan and speak; write ``test_seen_voice.jsonl``; ``(rows, summary)``."""
    from avsuite.data.manifest import write_manifest

    if not options["speeds"] or any(not 0.5 <= float(v) <= 2.0 for v in options["speeds"]):
        raise SpeechCorpusError("speeds must be a non-empty list of factors in [0.5, 2]")
    pools = voice_pools(options)
    problems = tts.missing_engines(tts.engine_of(v) for p in pools.values() for v in p)
    if problems:
        raise SpeechCorpusError("; ".join(problems))
    t0 = time.monotonic()
    sentences = choose_sentences(speech_text.collect(options), options)
    if not sentences:
        raise SpeechCorpusError("no usable English sentence found in the installed packages")
    t1 = time.monotonic()
    try:
        spanish = speech_text.translate([s["text_raw"] for s in sentences])
    except (RuntimeError, ValueError) as exc:
        raise SpeechCorpusError(str(exc)) from None
    for s, es in zip(sentences, spanish):
        s["translation"] = es
    t2 = time.monotonic()
    rows = plan_rows(sentences, pools, options)
    jobs = [{"id": r["id"], "path": str(out / r["audio"]), "speaker": r["speaker"], "text": r["text_raw"],
             "speed": r["speed"]} for r in rows]
    durations = tts.run_jobs(jobs, int(options["workers"] or 1), options.get("progress", True), desc="speech: speaking",
                             festival_chunk=FESTIVAL_CHUNK)
    for r in rows:
        r["duration"] = round(durations[r["id"]], 4)
    seen = sorted((dict(r, split="test") for r in rows if r["split"] == "test_seen_voice"), key=lambda r: r["id"])
    write_manifest(seen, out / "test_seen_voice.jsonl")
    info = describe(rows, sentences, pools)
    info["seconds"] = {"collect": round(t1 - t0, 1), "translate": round(t2 - t1, 1),
                       "speak": round(time.monotonic() - t2, 1)}
    return rows, info


def describe(rows: list[dict[str, Any]], sentences: list[dict[str, Any]], pools: dict[str, list[str]]) -> dict:
    hours = Counter()
    for r in rows:
        hours[r["split"]] += r["duration"] / 3600
    return {"clips": len(rows), "hours": round(sum(hours.values()), 3),
            "hours_per_split": {k: round(v, 3) for k, v in sorted(hours.items())},
            "clips_per_split": dict(sorted(Counter(r["split"] for r in rows).items())),
            "sentences_per_split": dict(sorted(Counter(s["split"] for s in sentences).items())),
            "sentences_per_origin": dict(sorted(Counter(s["source"] for s in sentences).items())),
            "clips_per_engine": dict(sorted(Counter(r["engine"] for r in rows).items())),
            "voices_per_split": {k: len(v) for k, v in pools.items()},
            "test_voices": sorted(pools["test"]), "valid_voices": sorted(pools["valid"]),
            "with_translation": sum(1 for r in rows if r["translation"]),
            "mean_words": round(sum(len(s["text"].split()) for s in sentences) / max(1, len(sentences)), 2)}


def format_summary(info: dict[str, Any]) -> str:
    return "\n".join([
        f"speech: {info['clips']} clips, {info['hours']:.2f} h, {sum(info['sentences_per_split'].values())} sentences "
        f"({info['mean_words']} words on average), {info['with_translation']} with a Spanish target",
        table("clips / hours per split", {k: f"{v} / {info['hours_per_split'].get(k, 0):.2f} h"
                                          for k, v in info["clips_per_split"].items()}, ("split", "clips")),
        table("sentences per split", info["sentences_per_split"], ("split", "sentences")),
        table("voices per split", info["voices_per_split"], ("split", "voices")),
        table("sentences per origin", info["sentences_per_origin"], ("origin", "sentences")),
        table("clips per engine", info["clips_per_engine"], ("engine", "clips")),
        f"timings (s): {json.dumps(info.get('seconds', {}))}"])
