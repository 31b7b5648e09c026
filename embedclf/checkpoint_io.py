"""Checkpoints written atomically, so a killed run never leaves a truncated ``.ckpt`` behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pytorch_lightning.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save into a temporary file beside the target, then rename it over the target."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
