"""avsuite: one PyTorch suite for contrastive audio learning.

Public API (no side effects at import; heavy modules load lazily):

    from avsuite import load_audio, AudioFrontend, FrontendConfig
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_audio": "avsuite.audio.io",
    "AudioDecodeError": "avsuite.audio.io",
    "AudioFrontend": "avsuite.audio.frontend",
    "FrontendConfig": "avsuite.audio.frontend",
    "load_config": "avsuite.config",
    "read_manifest": "avsuite.data.manifest",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'avsuite' has no attribute {name!r}")


__all__ = sorted(_LAZY)
