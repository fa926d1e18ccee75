"""Importers for speech-translation corpora a user already has on disk (nothing is downloaded).

- :func:`import_covost_tsv`: a CoVoST 2 / Common Voice TSV (``path``, ``sentence``, ``translation``,
  optional ``client_id``) plus the folder of clips.
- :func:`import_mustc`: a MuST-C ``en-XX`` folder: ``data/<split>/txt/<split>.{yaml,en,XX}`` and
  ``data/<split>/wav/*.wav``; each segment becomes a row with ``offset`` / ``duration`` (seconds)
  into its talk's wav (the ``ctc_ot`` recipe reads only that span).

Rows follow the manifest schema (:mod:`avsuite.data.manifest`): ``id``, ``audio``, ``text`` (English
transcript), ``translation`` ``{lang: text}``, ``split``, ``lang``, ``source``. Missing files or
malformed lines raise :class:`~avsuite.data.manifest.ManifestError` naming the line.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from avsuite.data.manifest import ManifestError


def import_covost_tsv(tsv: str | Path, clips_dir: str | Path, tgt_lang: str, split: str,
                      *, check_audio: bool = True) -> list[dict[str, Any]]:
    """Rows of a CoVoST-style TSV; ``tgt_lang`` names the ``translation`` column's language."""
    tsv, clips_dir = Path(tsv), Path(clips_dir)
    if not tsv.is_file():
        raise FileNotFoundError(f"CoVoST TSV not found: {tsv}")
    rows, errors = [], []
    with tsv.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"path", "sentence", "translation"} - set(reader.fieldnames or [])
        if missing:
            raise ManifestError(tsv, [(1, f"header lacks column(s) {sorted(missing)}")])
        for line, rec in enumerate(reader, start=2):
            audio = clips_dir / (rec["path"] or "")
            if not rec["path"] or (check_audio and not audio.is_file()):
                errors.append((line, f"audio file not found: {audio}"))
                continue
            rows.append({"id": f"covost/{split}/{Path(rec['path']).stem}", "audio": str(audio),
                         "text": rec["sentence"] or "", "translation": {tgt_lang: rec["translation"] or ""},
                         "split": split, "lang": "en", "speaker": rec.get("client_id") or None,
                         "source": "covost2", "license": "CC0-1.0"})
    if errors:
        raise ManifestError(tsv, errors)
    return rows


def import_mustc(root: str | Path, tgt_lang: str, split: str, *, check_audio: bool = True) -> list[dict[str, Any]]:
    """Segments of a MuST-C ``en-<tgt_lang>`` split (e.g. ``train``, ``dev``, ``tst-COMMON``)."""
    import yaml

    base = Path(root) / "data" / split
    txt = base / "txt"
    files = [txt / f"{split}.yaml", txt / f"{split}.en", txt / f"{split}.{tgt_lang}"]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"MuST-C file not found: {f}")
    segments = yaml.load(files[0].read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    src = files[1].read_text(encoding="utf-8").splitlines()
    tgt = files[2].read_text(encoding="utf-8").splitlines()
    if not (len(segments) == len(src) == len(tgt)):
        raise ManifestError(files[0], [(0, f"{len(segments)} segments but {len(src)} English and "
                                           f"{len(tgt)} {tgt_lang} lines")])
    rows, errors = [], []
    for i, (seg, en, xx) in enumerate(zip(segments, src, tgt), start=1):
        wav = base / "wav" / str(seg.get("wav", ""))
        if check_audio and not wav.is_file():
            errors.append((i, f"audio file not found: {wav}"))
            continue
        rows.append({"id": f"mustc/{split}/{wav.stem}/{i}", "audio": str(wav), "offset": float(seg["offset"]),
                     "duration": float(seg["duration"]), "text": en, "translation": {tgt_lang: xx},
                     "split": split, "lang": "en", "speaker": str(seg.get("speaker_id", "")) or None,
                     "source": "must-c", "license": "CC-BY-NC-ND-4.0"})
    if errors:
        raise ManifestError(files[0], errors)
    return rows
