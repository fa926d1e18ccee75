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
    "syncnet": "avsuite.models.syncnet:model_from_state",
    "lipsync": "avsuite.models.lipsync:model_from_state",
}


def load_model(directory: str | Path, device: str = "cpu", *, kind: str | None = None) -> nn.Module:
    """Load any avsuite model dir (``model.safetensors`` + ``config.yaml``); ``kind``: the kind the
    caller needs (a clear error for a model dir of another workload). Weights that do not fit
    their config, a config that does not build, or non-finite weights are one CheckpointError."""
    state, config = load_model_dir(directory, device=device)
    have = config["kind"]
    if have not in LOADERS:
        raise CheckpointError(f"{directory}: unknown model kind {have!r}; known: {', '.join(LOADERS)}")
    if kind is not None and have != kind:
        raise CheckpointError(f"{directory} is a {have!r} model dir; this command needs a {kind!r} model "
                              f"(trained with 'avsuite train {kind}')")
    bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise CheckpointError(f"{directory}: non-finite (NaN/inf) weights in {len(bad)} tensor(s), e.g. {bad[:3]}")
    module, func = LOADERS[have].split(":")
    try:
        model = getattr(importlib.import_module(module), func)(state, config)
    except (RuntimeError, TypeError, KeyError, ValueError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{directory}: config.yaml does not match model.safetensors or is not a valid "
                              f"{have!r} config ({type(exc).__name__}: {first})") from None
    return model.to(device).eval()
