"""The LightningModule: the training recipe around :class:`EmbeddingClassifier`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import Accuracy

from embedclf.model import EmbeddingClassifier

Batch = tuple[torch.Tensor, torch.Tensor]


class EmbeddingClassifierModule(pl.LightningModule):
    """Trains an embedding classifier; logs loss and accuracy per epoch for each split.

    ``optimizer`` (and the optional ``scheduler``) are Hydra configs with ``_partial_: true``,
    built in :meth:`configure_optimizers` with the trainable parameters. They are kept as plain
    dicts so a checkpoint's hyperparameters load with ``torch.load(weights_only=True)`` and
    the checkpoint rebuilds its model without this project's configs. ``embedding_init`` is
    not stored in the hyperparameters: the checkpoint's weights already hold it.
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        num_classes: int,
        optimizer: Mapping[str, Any],
        embedding_dim: int = 8,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        keras_init: bool = True,
        freeze_embedding: bool = False,
        embedding_init: np.ndarray | None = None,
        pooling: str = "flatten",
        scheduler: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        optimizer, scheduler, hidden = (
            OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig | ListConfig) else v
            for v in (optimizer, scheduler, hidden)
        )
        hidden = list(hidden)
        self.save_hyperparameters(ignore=["embedding_init"])
        self.net = EmbeddingClassifier(
            vocab_size,
            embedding_dim,
            seq_len,
            num_classes,
            hidden,
            dropout,
            keras_init,
            embedding_init,
            freeze_embedding,
            pooling,
        )
        self.binary = num_classes == 2
        task = (
            {"task": "binary"}
            if self.binary
            else {"task": "multiclass", "num_classes": num_classes}
        )
        # one metric object per split, so epoch values never mix splits
        self.train_acc, self.val_acc, self.test_acc = (Accuracy(**task) for _ in range(3))
        self.train_loss, self.val_loss, self.test_loss = (MeanMetric() for _ in range(3))
        self.val_acc_best = MaxMetric()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.net(ids)

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        ids, labels = batch
        logits = self(ids)
        if self.binary:
            loss = F.binary_cross_entropy_with_logits(logits, labels.float())
        else:
            loss = F.cross_entropy(logits, labels)
        # probabilities, not logits: torchmetrics applies a sigmoid only when some value lies
        # outside [0, 1], so logits that all happen to lie inside would be misread
        preds = torch.sigmoid(logits.detach()) if self.binary else logits.detach()
        getattr(self, f"{split}_acc").update(preds, labels)
        getattr(self, f"{split}_loss").update(loss.detach(), weight=len(labels))
        return loss

    def _log_epoch(self, split: str) -> torch.Tensor:
        """Log the split's epoch loss and accuracy (synced across processes by torchmetrics).

        Metrics are updated each step but logged once per epoch: ``self.log`` on every step
        costs more than a whole step of this small model.
        """
        acc, mean_loss = getattr(self, f"{split}_acc"), getattr(self, f"{split}_loss")
        epoch_acc = acc.compute()
        # a validate() outside fit (the scoring after training) returns its scores through
        # trainer.callback_metrics but adds no point to the per-epoch validation curves
        to_logger = not (split == "val" and self.trainer.state.fn == "validate")
        self.log(f"{split}/loss", mean_loss.compute(), prog_bar=True, logger=to_logger)
        self.log(f"{split}/acc", epoch_acc, prog_bar=True, logger=to_logger)
        acc.reset()
        mean_loss.reset()
        return epoch_acc

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_start(self) -> None:
        self.val_acc_best.reset()
        params = list(self.parameters())
        trainable = sum(p.numel() for p in params if p.requires_grad)
        total = sum(p.numel() for p in params)
        for logger in self.loggers:
            logger.log_hyperparams(
                {
                    "params/total": total,
                    "params/trainable": trainable,
                    "params/frozen": total - trainable,
                }
            )

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        epoch_acc = self._log_epoch("val")
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.val_acc_best(epoch_acc)
            self.log("val/acc_best", self.val_acc_best.compute())

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        logits = self(batch[0])
        return torch.sigmoid(logits) if self.binary else logits.softmax(-1)

    def configure_optimizers(self) -> dict:
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = instantiate(self.hparams.optimizer)(params=trainable)
        if self.hparams.scheduler is None:
            return {"optimizer": optimizer}
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"},
        }
