"""Checkpoints written atomically and read safely.

A killed run never leaves a truncated ``.ckpt`` under its final name (see ``fileio``), and
every checkpoint Lightning reads for this project (``resume=``, ``ckpt_path=``) is read with
``weights_only=True`` from a local file: no pickled code runs, whatever the file holds.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from embedclf.fileio import atomic_write
from embedclf.pipeline import load_checkpoint


class SafeCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        with atomic_write(path) as file:
            torch.save(checkpoint, file)

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any = None, **_: Any) -> dict:
        # resume= and ckpt_path= files were checked as embedclf checkpoints before fitting
        # (pipeline.check_config); Lightning also reads files of its own (ddp_spawn's weights)
        return load_checkpoint(path, ours=False)
