"""The stateful reader's source: manifest rows by index without holding them in memory.

    rows = ManifestRows.from_path("data/sounds/manifest.jsonl")    # one validating pass
    len(rows), rows[17]["audio"], rows.durations[17], rows.label_names[rows.labels[17]]

The file is read once to validate every line (errors name the line, as :func:`read_manifest`)
and to record per row: the byte offset of its line, its duration (NaN when unknown) and its
label id (-1 when none). ``rows[i]`` seeks to the line, parses and resolves it again, so memory
grows by ~16 bytes per row whatever the size of the rows: a 100x larger manifest streams.
``ManifestRows.from_rows(list_of_dicts)`` wraps rows already in memory (tests, derived splits).
"""

from __future__ import annotations

import functools
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from avsuite.data.manifest import MAX_LINE_BYTES, ManifestError, iter_lines, parse_line, validate_row


@functools.lru_cache(maxsize=4096)
def _real_dir(path: str) -> str:
    return os.path.realpath(path)


def _resolve(row: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative ``audio``/``video`` paths -> absolute, as ``(base / p).resolve()`` gives them, with
    the folder's realpath cached (one ``lstat`` per row instead of one per path component)."""
    for key in ("audio", "video"):
        p = row.get(key)
        if p and not os.path.isabs(p):
            head, tail = os.path.split(os.path.join(base, p))
            full = os.path.join(_real_dir(head), tail)
            row[key] = os.path.realpath(full) if tail in ("", ".", "..") or os.path.islink(full) else full
    return row


class ManifestRows:
    """Indexable, validated manifest rows; see the module docstring."""

    def __init__(self, *, path: Path | None, offsets: np.ndarray | None, rows: list[dict] | None,
                 durations: np.ndarray, labels: np.ndarray, label_names: list[str]):
        self.path, self._offsets, self._rows = path, offsets, rows
        self.durations, self.labels, self.label_names = durations, labels, label_names
        self._local = threading.local()

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_path(cls, path: str | Path) -> "ManifestRows":
        path = Path(path)
        if not path.is_file():
            raise ManifestError(path, [(0, "manifest file not found")])
        offsets, durs, labs = [], [], []
        names: dict[str, int] = {}
        seen: dict[int, int] = {}               # hash(id) -> line (exact check on collision)
        errors: list[tuple[int, str]] = []
        with open(path, "rb") as fh:
            for lineno, start, raw in iter_lines(fh):
                if isinstance(raw, bytes) and not raw.strip():
                    continue
                row, problem = parse_line(raw)
                if problem:
                    errors.append((lineno, problem))
                    continue
                problems = validate_row(row)
                if not problems:
                    h = hash(row["id"])
                    if h in seen and cls._line_id(path, offsets, seen[h]) == row["id"]:
                        problems = [f"duplicate id {row['id']!r}"]
                    seen.setdefault(h, len(offsets))
                if problems:
                    errors.extend((lineno, p) for p in problems)
                    continue
                offsets.append(start)
                durs.append(_duration(row))
                labs.append(names.setdefault(row["label"], len(names)) if row.get("label") else -1)
        if errors:
            raise ManifestError(path, errors)
        return cls(path=path, offsets=np.asarray(offsets, np.int64), rows=None,
                   durations=np.asarray(durs, np.float64), labels=np.asarray(labs, np.int32),
                   label_names=list(names))

    @staticmethod
    def _line_id(path: Path, offsets: list[int], k: int) -> str:
        with open(path, "rb") as fh:
            fh.seek(offsets[k])
            return json.loads(fh.readline())["id"]

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, Any]]) -> "ManifestRows":
        rows = list(rows)
        errors = [(i, p) for i, r in enumerate(rows, 1) for p in validate_row(r)]
        ids = [r["id"] for r in rows] if not errors else []
        if len(set(ids)) != len(ids):
            errors.append((0, "duplicate ids"))
        if errors:
            raise ManifestError("<rows>", errors)
        names: dict[str, int] = {}
        labs = [names.setdefault(r["label"], len(names)) if r.get("label") else -1 for r in rows]
        return cls(path=None, offsets=None, rows=rows, durations=np.asarray([_duration(r) for r in rows], np.float64),
                   labels=np.asarray(labs, np.int32), label_names=list(names))

    @classmethod
    def of(cls, source: "str | Path | ManifestRows | Iterable[dict[str, Any]]") -> "ManifestRows":
        """A path, rows in memory or ManifestRows -> ManifestRows."""
        if isinstance(source, ManifestRows):
            return source
        if isinstance(source, (str, Path)):
            return cls.from_path(source)
        return cls.from_rows(source)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.durations)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self._rows is not None:
            return self._rows[i]
        fd = getattr(self._local, "fd", None)
        if fd is None:                                  # one descriptor per thread (pread is atomic)
            fd = self._local.fd = os.open(self.path, os.O_RDONLY)
        start = int(self._offsets[i])
        end = int(self._offsets[i + 1]) if i + 1 < len(self._offsets) else os.fstat(fd).st_size
        return _resolve(json.loads(os.pread(fd, end - start, start)), self.path.parent)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    def ids(self) -> list[str]:
        return [self[i]["id"] for i in range(len(self))]

    def label_of(self, i: int) -> str | None:
        k = int(self.labels[i])
        return self.label_names[k] if k >= 0 else None

    def select(self, keep: "Iterable[int]") -> "ManifestRows":
        """Rows at ``keep`` (in that order) as a new ManifestRows in memory."""
        return ManifestRows.from_rows(self[i] for i in keep)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_local")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()


def _duration(row: dict[str, Any]) -> float:
    d = row.get("duration")
    return float(d) if isinstance(d, (int, float)) and not isinstance(d, bool) else float("nan")
