"""The one bridge from ``avsuite.data`` to Lightning.

Sharding across ranks is done by the pipeline (not by Lightning's sampler). The train pipeline is
stateful (``state_dict``/``load_state_dict``), so Lightning stores its position in ``last.ckpt``
with the loop state and restores it on ``--resume``: the run continues at the exact next batch.
"""

from __future__ import annotations

from typing import Any

import lightning as L

from avsuite.data.manifest import read_manifest
from avsuite.data.pipeline import AudioPipeline, Collate, DataConfig, build_pipeline

#: Lightning's training fetcher reads one batch ahead only for loaders WITHOUT ``__len__``;
#: AudioPipeline has an exact ``__len__``, so what it has handed out is what was trained on.
LIGHTNING_LOOKAHEAD = 0


class AudioDataModule(L.LightningDataModule):
    """Train / valid / test pipelines from the manifests named in ``cfg``."""

    def __init__(self, cfg: DataConfig, collate: Collate, *, train_rows: list[dict[str, Any]] | None = None,
                 valid_rows: list[dict[str, Any]] | None = None, eval_collate: Collate | None = None):
        super().__init__()
        self.cfg, self.collate = cfg, collate
        self.eval_collate = eval_collate or collate
        self._train_rows, self._valid_rows = train_rows, valid_rows
        self._train: AudioPipeline | None = None

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> AudioPipeline:
        if self._train is None:
            rows = self._train_rows if self._train_rows is not None else read_manifest(self.cfg.manifest)
            rank, world = self._world()
            self._train = build_pipeline(rows, self.cfg, collate=self.collate, train=True, rank=rank,
                                         world_size=world, lookahead=LIGHTNING_LOOKAHEAD)
        return self._train

    def val_dataloader(self) -> AudioPipeline | list:
        rows = self._valid_rows
        if rows is None and self.cfg.valid_manifest:
            rows = read_manifest(self.cfg.valid_manifest)
        if not rows:
            return []
        rank, world = self._world()
        return build_pipeline(rows, self.cfg, collate=self.eval_collate, train=False, rank=rank, world_size=world)
