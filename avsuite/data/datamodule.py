"""The one bridge from ``avsuite.data`` to Lightning.

Sharding across ranks is done by the reader's plan (global batches sliced by rank), not by
Lightning's sampler. The train reader is stateful (``state_dict``/``load_state_dict``), so
Lightning stores its position in ``last.ckpt`` with the loop state and restores it on
``--resume``: the run continues at the exact next batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import lightning as L

from avsuite.data.pipeline import Collate, DataConfig, Load, Reader
from avsuite.data.rows import ManifestRows
from avsuite.data.sampling import Sampler

#: Lightning's training fetcher reads one batch ahead only for loaders WITHOUT ``__len__``;
#: Reader has an exact ``__len__``, so what it has handed out is what was trained on.
LIGHTNING_LOOKAHEAD = 0

Source = "str | Path | ManifestRows | Iterable[dict[str, Any]]"


class AudioDataModule(L.LightningDataModule):
    """Train / valid readers over ``train`` / ``valid`` sources (default: the manifests in ``cfg``).

    ``sampler``: a factory ``(rows) -> Sampler`` for the train plan (default: shuffled batches);
    ``load`` / ``collate``: the recipe's item loader and collate; ``eval_*`` for validation;
    ``frontend``: the recipe's FrontendConfig (needed by ``data.cache_stage="features"``).
    """

    def __init__(self, cfg: DataConfig, collate: Collate, *, train: Any = None, valid: Any = None,
                 sampler: Callable[[ManifestRows], Sampler] | None = None, load: Load | None = None,
                 eval_collate: Collate | None = None, eval_load: Load | None = None, frontend: Any = None):
        super().__init__()
        self.cfg, self.collate, self.load, self.sampler = cfg, collate, load, sampler
        self.frontend = frontend        # the recipe's FrontendConfig (the feature cache stage computes with it)
        self.eval_collate, self.eval_load = eval_collate or collate, eval_load or load
        self._train_src = train if train is not None else cfg.manifest
        self._valid_src = valid if valid is not None else cfg.valid_manifest
        self._train: Reader | None = None

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_reader(self) -> Reader:
        if self._train is None:
            rows = ManifestRows.of(self._train_src)
            rank, world = self._world()
            self._train = Reader(rows, self.cfg, train=True, collate=self.collate, load=self.load,
                                 sampler=self.sampler(rows) if self.sampler else None, rank=rank,
                                 world_size=world, lookahead=LIGHTNING_LOOKAHEAD, frontend=self.frontend)
        return self._train

    def train_dataloader(self) -> Reader:
        return self.train_reader()

    def val_dataloader(self) -> Reader | list:
        if not self._valid_src:
            return []
        rank, world = self._world()
        return Reader(self._valid_src, self.cfg, train=False, collate=self.eval_collate, load=self.eval_load,
                      rank=rank, world_size=world, frontend=self.frontend)
