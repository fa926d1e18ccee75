"""avsuite: one PyTorch suite for contrastive audio learning.

Public API (no side effects at import; heavy modules load lazily):

    import avsuite
    model = avsuite.load_model("runs/quickstart/model")                # any avsuite model dir
    results = avsuite.classify_files(model, ["dog", "rain"], ["a.wav"])  # zero-shot, per-file errors
    hits, skipped = avsuite.rank_clips(model, avsuite.read_manifest("m.jsonl"), "a dog barking")
    wave, sr = avsuite.load_audio("clip.ogg", 16000)
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
    "load_model": "avsuite.models.registry",
    "classify_files": "avsuite.inference.zeroshot",
    "rank_clips": "avsuite.inference.retrieve",
    "index_clips": "avsuite.inference.retrieve",
    "transcribe_files": "avsuite.inference.transcribe",
    "predict_intents": "avsuite.inference.intents",
    "LipSyncPipeline": "avsuite.inference.lipsync",
    "lipsync_file": "avsuite.inference.lipsync_tools",
    "lipsync_defaults": "avsuite.inference.lipsync_tools",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'avsuite' has no attribute {name!r}")


__all__ = sorted(_LAZY)
