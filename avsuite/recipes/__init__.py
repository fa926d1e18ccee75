"""Recipes: one file per workload, each a Config dataclass + a thin LightningModule + functions.

Every recipe module ``avsuite.recipes.<name>`` provides:

- ``Config``: a frozen kw-only dataclass that embeds ``frontend: FrontendConfig`` and
  ``data: DataConfig`` (plus model / loss / optim / trainer sections);
- ``train(cfg: Config, out: Path, *, resume: bool = False) -> dict[str, float]``: writes
  ``out/config.yaml``, ``out/model/`` (a loadable model dir), ``out/last.ckpt``, ``out/metrics.json``;
- ``evaluate(model_dir: Path, data: Path, out: Path) -> dict[str, float]``: writes ``out/metrics.json``.

A recipe never imports another recipe; shared training plumbing lives in ``recipes/common.py``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: recipe name -> module. An explicit table, not string-matched class names.
RECIPES: dict[str, str] = {
    "clap": "avsuite.recipes.clap",
    "ctc_ot": "avsuite.recipes.ctc_ot",
    "continual_slu": "avsuite.recipes.continual_slu",
    "syncnet": "avsuite.recipes.syncnet",
    "lipsync": "avsuite.recipes.lipsync",
}


class RecipeUnavailable(RuntimeError):
    """The recipe exists in the plan but is not implemented in this version."""


def get_recipe(name: str) -> ModuleType:
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; choose from: {', '.join(RECIPES)}")
    try:
        return importlib.import_module(RECIPES[name])
    except ModuleNotFoundError as exc:
        if exc.name == RECIPES[name]:
            raise RecipeUnavailable(f"recipe {name!r} is not yet available in this version of avsuite") from None
        raise
