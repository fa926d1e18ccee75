"""Per-file licences from a Debian machine-readable ``copyright`` file (DEP-5).

Each ``Files:`` stanza lists glob patterns (``*`` matches across ``/``, ``?`` one character) and a
``License:`` line; for a given path the LAST matching stanza wins. Licence names are mapped to
SPDX identifiers where one exists::

    lic = Dep5("/usr/share/doc/gcompris-qt-data/copyright")
    lic.license_for("src/activities/instruments/resource/piano.ogg")   # 'CC-BY-SA-3.0'
"""

from __future__ import annotations

import re
from pathlib import Path

#: Debian short names -> SPDX (or SPDX-like where SPDX has none).
SPDX = {
    "GPL-2": "GPL-2.0-only", "GPL-2+": "GPL-2.0-or-later",
    "GPL-3": "GPL-3.0-only", "GPL-3+": "GPL-3.0-or-later",
    "LGPL-2.1": "LGPL-2.1-only", "LGPL-2.1+": "LGPL-2.1-or-later", "LGPL-3": "LGPL-3.0-only",
    "LGPL-3+": "LGPL-3.0-or-later",
    "free-art": "LAL-1.3", "public-domain": "LicenseRef-public-domain", "Expat": "MIT",
}


def spdx(name: str) -> str:
    """Map a DEP-5 licence expression (``"CC0-1.0 and CC-BY-3.0"``) to SPDX-like form."""
    parts = re.split(r"\s+(and|or)\s+", name.strip())
    out = []
    for p in parts:
        if p in ("and", "or"):
            out.append(p.upper())
        else:
            out.append(SPDX.get(p, p))
    return " ".join(out)


def _glob_to_regex(pattern: str) -> re.Pattern:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z")


class Dep5:
    """The ``Files:`` stanzas of one copyright file; :meth:`license_for` answers per path."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.stanzas: list[tuple[list[re.Pattern], str]] = []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        for block in re.split(r"\n\s*\n", text):
            fields = _fields(block)
            if "files" in fields and "license" in fields:
                patterns = [_glob_to_regex(p) for p in fields["files"].split()]
                self.stanzas.append((patterns, fields["license"].splitlines()[0].strip()))

    def license_for(self, path: str, default: str | None = None) -> str | None:
        found = None
        for patterns, lic in self.stanzas:
            if any(p.match(path) for p in patterns):
                found = lic
        return spdx(found) if found is not None else default


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and key is not None:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields
