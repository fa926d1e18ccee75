"""Model dir ``kind`` -> loader. Each loader takes ``(state_dict, config_dict)`` and returns an
``nn.Module`` in eval mode. An explicit table; modules import lazily."""

from __future__ import annotations

import importlib
from pathlib import Path

from torch import nn

from avsuite.checkpoint import CheckpointError, load_model_dir

#: kind -> "module:function"
LOADERS: dict[str, str] = {
    "clap": "avsuite.models.clap:model_from_state",
    "ctc_ot": "avsuite.models.seq2seq:model_from_state",
    "continual_slu": "avsuite.models.intent:model_from_state",
}


def load_model(directory: str | Path, device: str = "cpu") -> nn.Module:
    """Load any avsuite model dir (``model.safetensors`` + ``config.yaml``)."""
    state, config = load_model_dir(directory, device=device)
    kind = config["kind"]
    if kind not in LOADERS:
        raise CheckpointError(f"{directory}: unknown model kind {kind!r}; known: {', '.join(LOADERS)}")
    module, func = LOADERS[kind].split(":")
    model = getattr(importlib.import_module(module), func)(state, config)
    return model.to(device).eval()
