"""The evaluate half: loss, accuracy and count of scored rows per split, from a checkpoint."""

from __future__ import annotations

import pytorch_lightning as pl

from embedclf.data.datamodule import TextFolderDataModule
from embedclf.util.errors import Interrupted


def score(
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule: TextFolderDataModule,
    ckpt_path: str | None,
    splits: tuple[str, ...] = ("val", "test"),
) -> dict[str, float | None]:
    """Loss, accuracy and the count of scored reviews for each split, from ``ckpt_path``."""
    out: dict[str, float | None] = {}
    for split in splits:
        if split == "val" and not datamodule.sizes().get("val"):
            out.update(val_acc=None, val_loss=None, val_samples=0)
            continue
        run = trainer.validate if split == "val" else trainer.test
        try:
            run(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=True)
        except SystemExit:  # Lightning's answer to Ctrl-C: sys.exit(1), with no word
            if not trainer.interrupted:
                raise
            raise Interrupted(
                f"interrupted (Ctrl-C) while scoring the {split} split; nothing was written: "
                "run it again"
            ) from None
        # read from callback_metrics: validate() outside fit adds no point to the epoch curves
        found = trainer.callback_metrics
        out[f"{split}_acc"] = float(found[f"{split}/acc"])
        out[f"{split}_loss"] = float(found[f"{split}/loss"])
        out[f"{split}_samples"] = int(found[f"{split}/samples"])
    return out
