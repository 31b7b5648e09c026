"""An exponential moving average of the weights, validated, checkpointed and scored as one.

Lightning's ``EMAWeightAveraging`` keeps the average beside the weights being trained, swaps
it in for each validation inside fit, and writes it as a checkpoint's ``state_dict`` (with
the trained weights beside it, for resuming). Two of its hooks also act outside fit, where
this project scores a checkpoint after training (``ckpt_path=best``): loading a checkpoint
puts the trained weights back, and a validation swaps in the average of the end of training.
The scores would then be of weights no validation chose (IMDB's LSTM: test 0.8292 for a
checkpoint whose averaged weights score 0.8772). Here both act inside fit only.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EMAWeightAveraging
from pytorch_lightning.trainer.states import TrainerFn


class EMAWeights(EMAWeightAveraging):
    """Lightning's EMA of the weights (``decay`` per update, one update per Lightning step:
    ``data.steps_per_call`` optimiser updates on one device, one under DDP), whose
    checkpoints score as validated."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Lightning builds the average on the module's device, which is still the CPU when
        # fit sets its callbacks up: on a GPU each update would copy every weight across
        if self._device is None:
            self._device = trainer.strategy.root_device
        super().setup(trainer, pl_module, stage)

    @staticmethod
    def _fitting(trainer: pl.Trainer) -> bool:
        return trainer.state.fn == TrainerFn.FITTING

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._fitting(trainer):  # resuming: the trained weights, and the average beside
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._fitting(trainer):
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._fitting(trainer):
            super().on_validation_epoch_end(trainer, pl_module)
