"""JSONL manifests: one example per line, validated against one schema.

Required: ``id`` (str), ``audio`` (path; relative paths resolve against the manifest's folder).
Known optional fields are type-checked; any other key is kept as is (e.g. ``translation``,
``intent``, ``task``, ``phonemes``)::

    {"id": "tux/kangaroo", "audio": "audio/kangaroo.ogg", "duration": 2.1, "sr": 44100,
     "captions": ["A red kangaroo."], "label": "kangaroo", "split": "train",
     "source": "tuxpaint-stamps-default", "license": "GPL-2.0"}

Validation errors name the line: ``train.jsonl:12: 'duration' must be a number >= 0``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from avsuite.checkpoint import atomic_path

REQUIRED = ("id", "audio")
#: longest manifest line accepted (a row is metadata: a 100 MB caption is an error, not data)
MAX_LINE_BYTES = 1 << 20
_STR_FIELDS = ("id", "audio", "text", "label", "lang", "video", "split", "source", "license", "speaker")


def iter_lines(fh: Any) -> Iterable[tuple[int, int, bytes | int]]:
    """``(line number, byte offset, raw line)`` of a binary file; a line longer than
    :data:`MAX_LINE_BYTES` comes as its length (an int) and is never held in memory whole."""
    lineno, pos = 0, 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        lineno += 1
        start, pos = pos, pos + len(raw)
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):       # drain the rest of the long line
                raw = fh.readline(1 << 20)
                pos += len(raw)
            yield lineno, start, pos - start
            continue
        yield lineno, start, raw


def parse_line(raw: bytes | int) -> tuple[Any, str | None]:
    """-> ``(row, None)`` or ``(None, problem)`` for one manifest line (see :func:`iter_lines`)."""
    if isinstance(raw, int) or len(raw) > MAX_LINE_BYTES:
        size = raw if isinstance(raw, int) else len(raw)
        return None, f"line is {size / 2**20:.1f} MB; rows are limited to 1 MB"
    try:
        return json.loads(raw), None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        return None, f"invalid JSON ({getattr(exc, 'msg', None) or type(exc).__name__})"


class ManifestError(ValueError):
    """A manifest cannot be read or has invalid rows; ``errors`` lists ``(line, message)``."""

    def __init__(self, path: str | Path, errors: list[tuple[int, str]]):
        self.path = str(path)
        self.errors = errors
        shown = "\n".join(f"  {path}:{line}: {msg}" for line, msg in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} invalid row(s) in {path}:\n{shown}{more}")


def validate_row(row: Any) -> list[str]:
    """Return the list of problems with one row (empty when valid)."""
    if not isinstance(row, dict):
        return [f"row must be a JSON object, got {type(row).__name__}"]
    errors = [f"missing required field {k!r}" for k in REQUIRED if k not in row]
    errors += [f"{k!r} must be a non-empty string, got {row[k]!r}" for k in REQUIRED
               if k in row and (not isinstance(row[k], str) or not row[k].strip())]
    for key in _STR_FIELDS:
        if key in row and key not in REQUIRED and row[key] is not None and not isinstance(row[key], str):
            errors.append(f"{key!r} must be a string, got {row[key]!r}")
    if "duration" in row and (isinstance(row["duration"], bool) or not isinstance(row["duration"], (int, float))
                              or not math.isfinite(row["duration"]) or row["duration"] < 0):
        errors.append(f"'duration' must be a number >= 0, got {row['duration']!r}")
    if "sr" in row and (isinstance(row["sr"], bool) or not isinstance(row["sr"], int) or row["sr"] <= 0):
        errors.append(f"'sr' must be a positive integer, got {row['sr']!r}")
    if "captions" in row:
        caps = row["captions"]
        if not isinstance(caps, list) or not caps or not all(isinstance(c, str) and c for c in caps):
            errors.append("'captions' must be a non-empty list of non-empty strings")
    return errors


def read_manifest(path: str | Path, *, resolve: bool = True) -> list[dict[str, Any]]:
    """Read and validate a JSONL manifest; raise :class:`ManifestError` listing every bad line.

    With ``resolve``, relative ``audio``/``video`` paths become absolute (relative to the file).
    Duplicate ids are an error: ids key checkpoints, caches and results.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, [(0, "manifest file not found")])
    rows, errors, seen = [], [], {}
    with open(path, "rb") as fh:
        for lineno, _, raw in iter_lines(fh):
            if isinstance(raw, bytes) and not raw.strip():
                continue
            row, problem = parse_line(raw)
            if problem:
                errors.append((lineno, problem))
                continue
            problems = validate_row(row)
            if not problems and row["id"] in seen:
                problems = [f"duplicate id {row['id']!r} (first on line {seen[row['id']]})"]
            if problems:
                errors.extend((lineno, p) for p in problems)
                continue
            seen[row["id"]] = lineno
            if resolve:
                for key in ("audio", "video"):
                    if row.get(key) and not Path(row[key]).is_absolute():
                        row[key] = str((path.parent / row[key]).resolve())
            rows.append(row)
    if errors:
        raise ManifestError(path, errors)
    return rows


def write_manifest(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Validate and write rows as JSONL, atomically."""
    rows = list(rows)
    errors = [(i, p) for i, row in enumerate(rows, 1) for p in validate_row(row)]
    if errors:
        raise ManifestError(path, errors)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)


def split_rows(rows: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("split") == split]
