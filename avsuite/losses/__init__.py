"""avsuite.losses: tensors in, ``{"loss": total, "<name>": part, ...}`` out (torch only).

- :mod:`.contrastive` — ``clap_loss``, ``dcl_loss``, ``align_uniform_loss``, ``gather_features``
- :mod:`.compa` — ``compa_loss`` (per-audio hard negatives), ``modular_loss`` (multi-positive)
- :mod:`.cwcl` — ``cwcl_loss`` (continuously weighted contrastive)
- :mod:`.teminal` — ``pack_captions`` / ``unpack`` (TeminAL stages are CompA loss + data)
- :mod:`.objective` — ``ContrastiveObjective`` + ``compute_objective`` (weighted named terms)
"""

from avsuite.losses.compa import compa_loss, modular_loss
from avsuite.losses.contrastive import align_uniform_loss, clap_loss, dcl_loss, gather_features
from avsuite.losses.cwcl import cwcl_loss
from avsuite.losses.objective import ContrastiveObjective, compute_objective
from avsuite.losses.teminal import CaptionPack, pack_captions, unpack

__all__ = [
    "clap_loss", "dcl_loss", "align_uniform_loss", "gather_features", "compa_loss", "modular_loss",
    "cwcl_loss", "ContrastiveObjective", "compute_objective", "CaptionPack", "pack_captions", "unpack",
]
