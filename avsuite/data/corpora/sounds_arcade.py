"""Game sound effects (Kenney, CC0) shipped in the PyPI ``arcade`` wheel.

``arcade/resources/assets/sounds/<class><n>.wav``: ~55 clips in ~14 classes. The package is located
with ``importlib.util.find_spec`` (importing arcade itself opens an audio device). When a stem exists
as ``.wav`` and ``.ogg``/``.mp3`` only the ``.wav`` is used (they are re-encodings of each other).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path

from avsuite.data.corpora.common import ClipSpec

PACKAGE = "arcade"
LICENSE = "CC0-1.0"
SUBDIR = Path("resources/assets/sounds")

#: file-name class -> (label, caption)
CLASSES = {
    "coin": ("coin", "a coin pickup sound in a video game"),
    "error": ("error", "an error buzz in a video game"),
    "explosion": ("explosion", "an explosion in a video game"),
    "fall": ("falling", "a falling whistle in a video game"),
    "gameover": ("game over", "a game over jingle"),
    "hit": ("hit", "something being hit in a video game"),
    "hurt": ("hurt", "a character getting hurt in a video game"),
    "jump": ("jump", "a character jumping in a video game"),
    "laser": ("laser", "a laser gun shot in a video game"),
    "lose": ("lose", "a losing sound in a video game"),
    "phasejump": ("teleport", "a phase jump or teleport in a video game"),
    "rockhit": ("rock hit", "a rock being hit"),
    "secret": ("secret", "a secret discovered in a video game"),
    "upgrade": ("power-up", "a power-up or upgrade sound in a video game"),
}
_AUDIO_EXT = (".wav", ".ogg", ".mp3")


def sounds_dir() -> Path | None:
    """The wheel's sounds folder, or None when arcade is not installed."""
    spec = importlib.util.find_spec("arcade")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / SUBDIR
    return d if d.is_dir() else None


def version() -> str | None:
    try:
        return importlib.metadata.version("arcade")
    except importlib.metadata.PackageNotFoundError:
        return None


def available() -> bool:
    return sounds_dir() is not None


def collect(root: Path | None = None, summary=None) -> list[ClipSpec]:
    root = root or sounds_dir()
    if root is None:
        return []
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in _AUDIO_EXT)
    by_stem: dict[str, Path] = {}
    for p in files:
        best = by_stem.get(p.stem)
        if best is None or _AUDIO_EXT.index(p.suffix.lower()) < _AUDIO_EXT.index(best.suffix.lower()):
            by_stem[p.stem] = p
    specs = []
    for stem, p in sorted(by_stem.items()):
        cls = re.sub(r"\d+$", "", stem).lower()
        if cls not in CLASSES:
            if summary is not None:
                summary.skip("arcade: unknown sound class", p.name)
            continue
        label, caption = CLASSES[cls]
        specs.append(ClipSpec(id=f"arcade/{stem}", src=str(p), label=label, category="sfx", captions=[caption],
                              source=PACKAGE, license=LICENSE, origin=f"arcade/{SUBDIR.as_posix()}/{p.name}"))
    return specs
