"""Checkpoints written atomically and read safely.

A killed run never leaves a truncated ``.ckpt`` under its final name (see ``fileio``), and
every checkpoint Lightning reads for this project (``resume=``, ``ckpt_path=``) is read with
``weights_only=True`` from a local file: no pickled code runs, whatever the file holds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from embedclf.models.checkpoint import load_checkpoint
from embedclf.util.errors import ConfigError, UserError
from embedclf.util.fileio import atomic_write


def write_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically, without the zip records' CRC-32 sums.

    ``torch.load`` never checks those sums (a flipped byte in a tensor loads as it is), and
    computing them was 0.1 s of each 0.25 s save of ``experiment=ngram``'s 185 MB checkpoint
    on IMDB. A checkpoint is complete when it has its name (written by rename, after an
    fsync); only zip tools (``unzip -t``) would complain of the zero sums. The process's own
    setting is restored afterwards.
    """
    computed = torch.serialization.get_crc32_options()
    torch.serialization.set_crc32_options(False)
    try:
        with atomic_write(path) as file:
            torch.save(checkpoint, file)
    finally:
        torch.serialization.set_crc32_options(computed)


class SafeCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        write_checkpoint(checkpoint, path)

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any = None, **_: Any) -> dict:
        # resume= and ckpt_path= files were checked as embedclf checkpoints before fitting
        # (training/checks.py); Lightning also reads files of its own (ddp_spawn's weights)
        return load_checkpoint(path, ours=False)


def scored_checkpoint(trainer: pl.Trainer, choice: str) -> str:
    """The file of ``ckpt_path``: ``last`` (final weights), ``best`` (by the monitor) or a path.

    Read from the callbacks' settings rather than their state: after a ``ddp_spawn`` run the
    main process only gets the first callback's state back.
    """
    if choice not in ("last", "best"):
        return choice
    for callback in trainer.checkpoint_callbacks:
        if (callback.monitor is None) == (choice == "last"):
            path = callback.best_model_path or callback.format_checkpoint_name({})
            if Path(path).is_file():
                return path
    raise ConfigError(
        f"ckpt_path={choice}: no such checkpoint was saved; keep callbacks.model_checkpoint and "
        "callbacks.last_checkpoint, or give ckpt_path a file"
    )


def epochs_trained(trainer: pl.Trainer) -> int:
    """Epochs completed; read from the last checkpoint when the count stayed in a spawned
    process (``ddp_spawn``), whose trainer the main process does not get back."""
    if trainer.current_epoch or trainer.fast_dev_run:
        return trainer.current_epoch
    try:
        last = load_checkpoint(scored_checkpoint(trainer, "last"))
    except UserError:
        return trainer.current_epoch
    return int(last["epoch"]) + 1
