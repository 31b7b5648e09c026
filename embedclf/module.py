"""The LightningModule: the training recipe around :class:`EmbeddingClassifier`.

One Lightning training step carries several optimiser steps (``Batch.step_size`` reviews
each; the data module sets how many per call). The updates are exactly those of one Lightning
step per batch — same order, same batches, zero_grad/backward/step each — but Lightning's
per-step machinery (hooks, closures, progress bar, loop bookkeeping) runs once per call
instead of once per batch, which for the seed's 80,000-parameter model costs more than the
arithmetic itself. Optimisation is therefore manual; metrics are updated once per call.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import Accuracy

from embedclf.datamodule import Batch
from embedclf.errors import CheckpointError, ConfigError, TrainingError
from embedclf.model import EmbeddingClassifier

OPTIMIZER_MODULE = "torch.optim"
SCHEDULER_MODULE = "torch.optim.lr_scheduler"


def spec_class(spec: Mapping[str, Any], module: str, base: type) -> type:
    """The ``base`` subclass of ``module`` that ``spec["_target_"]`` names; ConfigError if it
    names anything else (checked before a checkpoint is trusted, and before building)."""
    target = spec.get("_target_") if isinstance(spec, Mapping) else None
    name = target.rpartition(".")[2] if isinstance(target, str) else ""
    owner = target.rpartition(".")[0] if isinstance(target, str) else ""
    found = getattr(importlib.import_module(module), name, None) if name else None
    if owner != module or not (isinstance(found, type) and issubclass(found, base)):
        raise ConfigError(
            f"{target!r} is not a {base.__name__} of {module}; name one such as "
            f"{module}.{'Adam' if base is torch.optim.Optimizer else 'StepLR'}"
        )
    return found


def build_from_spec(spec: Mapping[str, Any], module: str, base: type, *args: Any) -> Any:
    """``base`` subclass named by ``spec["_target_"]`` inside ``module``, called with ``args``
    and the spec's other keys.

    Specs come from configs and from checkpoints' hyperparameters; a checkpoint is data, so
    its spec may only name an optimiser (or scheduler) class of torch, with plain arguments,
    never any other callable (Hydra's ``instantiate`` would call whatever it names).
    """
    found = spec_class(spec, module, base)
    target = spec["_target_"]
    kwargs = {k: v for k, v in spec.items() if not k.startswith("_")}
    for key, value in kwargs.items():
        plain = (int, float, bool, str, type(None))
        if not isinstance(value, plain) and not (
            isinstance(value, list | tuple) and all(isinstance(v, plain) for v in value)
        ):
            raise ConfigError(f"{target} setting {key}={value!r} is not a plain value")
    return found(*args, **kwargs)


class EmbeddingClassifierModule(pl.LightningModule):
    """Trains an embedding classifier; logs loss and accuracy per epoch for each split.

    ``optimizer`` (and the optional ``scheduler``) are specs naming a ``torch.optim`` class
    and its settings (``_partial_``-style Hydra configs), built in :meth:`configure_optimizers`
    with the trainable parameters. Hyperparameters are plain types, so a checkpoint loads with
    ``torch.load(weights_only=True)``. ``embedding_init`` and ``feature_weight`` (the
    weights ``feature_weighting="nb"`` computes from the training rows) are not stored in the
    hyperparameters: the checkpoint's weights and buffers already hold them.
    """

    def __init__(
        self,
        *,
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
        sparse: bool = False,
        feature_weighting: str = "none",
        feature_weight: np.ndarray | None = None,
        sif_a: float = 1e-3,
        standardize: bool = False,
        head_l2: float = 0.0,
        scheduler: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        hidden = list(hidden)
        # logged once, by training.py, with the run's config and final metrics
        self.save_hyperparameters(ignore=["embedding_init", "feature_weight"], logger=False)
        self.net = EmbeddingClassifier(
            vocab_size=vocab_size,
            embedding_dim=embedding_dim,
            seq_len=seq_len,
            num_classes=num_classes,
            hidden=hidden,
            dropout=dropout,
            keras_init=keras_init,
            embedding_init=embedding_init,
            freeze_embedding=freeze_embedding,
            pooling=pooling,
            sparse=sparse,
            feature_weight=feature_weight,
            standardize=standardize,
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
        self._seen = {"val": 0, "test": 0}  # reviews scored by this rank in this pass
        self.val_acc_best = MaxMetric()
        self._resumed_best: float | None = None  # a resumed run's best before the resume
        self.history: dict[str, list[float]] = {}

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.net(ids)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.binary:
            return F.binary_cross_entropy_with_logits(logits, labels.float())
        return F.cross_entropy(logits, labels)

    def training_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss plus ``head_l2 / 2`` times the squared weights of the output layer."""
        loss = self.loss(logits, labels)
        if self.hparams.head_l2:
            loss = loss + 0.5 * self.hparams.head_l2 * self.net.head[-1].weight.pow(2).sum()
        return loss

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities, ``(n, classes)``, for predictions."""
        if self.binary:
            positive = torch.sigmoid(logits)
            return torch.stack([1 - positive, positive], dim=-1)
        return logits.softmax(-1)

    def _update(self, split: str, logits: torch.Tensor, labels: torch.Tensor, losses, sizes):
        # probabilities, not logits: torchmetrics applies a sigmoid only when some value lies
        # outside [0, 1], so logits that all happen to lie inside would be misread
        preds = torch.sigmoid(logits) if self.binary else logits
        getattr(self, f"{split}_acc").update(preds, labels)
        getattr(self, f"{split}_loss").update(losses, weight=sizes)

    def _plain_steps(self) -> bool:
        """Whether optimiser steps may skip Lightning's per-step hook dispatch.

        Lightning's ``manual_backward`` and ``LightningOptimizer.step`` call the
        ``on_before_backward``, ``on_after_backward`` and ``on_before_optimizer_step`` hooks of
        every callback and of this module, and go through the strategy and precision plugins;
        for the seed's model that costs several times the arithmetic of a step. When the run
        is 32-bit on a single device and nothing overrides those hooks, ``loss.backward()`` and
        the torch optimiser's ``step()`` do exactly the same, and the step is still counted
        (``global_step``, checkpoints, ``max_steps``) through the loop's own step callbacks.
        """
        from pytorch_lightning.strategies import SingleDeviceStrategy
        from pytorch_lightning.utilities.model_helpers import is_overridden

        trainer = self.trainer
        hooks = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
        return (
            isinstance(trainer.strategy, SingleDeviceStrategy)
            and str(trainer.precision) in ("32-true", "32")
            and not any(is_overridden(h, self, pl.LightningModule) for h in hooks)
            and not any(is_overridden(h, c, pl.Callback) for c in trainer.callbacks for h in hooks)
        )

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        optimizer = self.optimizers()
        plain = getattr(self, "_plain", False)
        logits_seen, losses = [], []
        for ids, labels in zip(
            batch.ids.split(batch.step_size), batch.labels.split(batch.step_size), strict=True
        ):
            if isinstance(optimizer.optimizer, torch.optim.LBFGS):
                # full-batch quasi-Newton: the optimiser evaluates the loss as often as it needs
                def closure(ids=ids, labels=labels) -> torch.Tensor:
                    optimizer.zero_grad()
                    loss = self.training_loss(self(ids), labels)
                    self.manual_backward(loss)
                    return loss

                optimizer.step(closure=closure)
                with torch.no_grad():
                    logits = self(ids)
                    loss = self.training_loss(logits, labels)
            elif plain:
                logits = self(ids)
                loss = self.training_loss(logits, labels)
                optimizer.optimizer.zero_grad()
                loss.backward()
                optimizer._on_before_step()  # the loop's step accounting (global_step)
                optimizer.optimizer.step()
                optimizer._on_after_step()
            else:
                logits = self(ids)
                loss = self.training_loss(logits, labels)
                optimizer.zero_grad()
                self.manual_backward(loss)
                optimizer.step()
            logits_seen.append(logits.detach())
            losses.append(loss.detach())
        losses_t = torch.stack(losses)
        if not bool(torch.isfinite(losses_t).all()):
            raise TrainingError(
                f"the training loss became {losses_t[~torch.isfinite(losses_t)][0].item()} "
                f"in epoch {self.current_epoch}; lower model.optimizer.lr, or check the vectors"
            )
        sizes = torch.tensor([len(x) for x in logits_seen], device=losses_t.device)
        self._update("train", torch.cat(logits_seen), batch.labels, losses_t, sizes)

    def _evaluate(self, batch: Batch, split: str) -> None:
        logits = self(batch.ids)
        loss = self.loss(logits, batch.labels)
        self._update(split, logits, batch.labels, loss, len(batch.labels))
        self._seen[split] += len(batch.labels)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self.probabilities(self(batch.ids))

    def _log_epoch(self, split: str) -> torch.Tensor:
        """Log the split's epoch loss and accuracy (synced across processes by torchmetrics)."""
        acc, mean_loss = getattr(self, f"{split}_acc"), getattr(self, f"{split}_loss")
        epoch_acc, epoch_loss = acc.compute(), mean_loss.compute()
        # a validate() outside fit (the scoring after training) returns its scores through
        # trainer.callback_metrics but adds no point to the per-epoch validation curves
        fitting = self.trainer.state.fn == "fit"
        to_logger = not (split == "val" and not fitting)
        self.log(f"{split}/loss", epoch_loss, prog_bar=True, logger=to_logger)
        self.log(f"{split}/acc", epoch_acc, prog_bar=True, logger=to_logger)
        if split in ("val", "test"):
            # each rank scored its own share of the reviews: their sum is what was scored
            seen = torch.tensor(float(self._seen[split]), device=self.device)
            total = self.trainer.strategy.reduce(seen, reduce_op="sum")
            self.log(f"{split}/samples", total, logger=False)
            self._seen[split] = 0
        if fitting:
            self.history.setdefault(f"{split}/loss", []).append(float(epoch_loss))
            self.history.setdefault(f"{split}/acc", []).append(float(epoch_acc))
        acc.reset()
        mean_loss.reset()
        return epoch_acc

    def on_train_start(self) -> None:
        self._plain = self._plain_steps()
        self.val_acc_best.reset()
        if self._resumed_best is not None:  # the epochs before a resume count too
            self.val_acc_best(torch.tensor(self._resumed_best, device=self.device))

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")
        scheduler = self.lr_schedulers()
        if scheduler is not None and not isinstance(
            scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau
        ):
            scheduler.step()

    def on_validation_epoch_end(self) -> None:
        epoch_acc = self._log_epoch("val")
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.val_acc_best(epoch_acc)
            self.log("val/acc_best", self.val_acc_best.compute())
            scheduler = self.lr_schedulers()
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(self.trainer.callback_metrics["val/loss"])

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> dict:
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = build_from_spec(
            self.hparams.optimizer, OPTIMIZER_MODULE, torch.optim.Optimizer, trainable
        )
        if self.hparams.scheduler is None:
            return {"optimizer": optimizer}
        scheduler = build_from_spec(
            self.hparams.scheduler,
            SCHEDULER_MODULE,
            torch.optim.lr_scheduler.LRScheduler,
            optimizer,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}

    # -- exact resume: the shuffle's generator travels with the checkpoint ------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if torch.cuda.is_available() and self.device.type == "cuda":  # dropout draws there
            checkpoint["cuda_rng_state"] = torch.cuda.get_rng_state(self.device)
        if self.val_acc_best.update_count:
            checkpoint["val_acc_best"] = float(self.val_acc_best.compute())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("torch_rng_state")
        resuming = self._trainer is not None and self.trainer.state.fn == "fit"
        if resuming and state is not None:
            if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
                raise CheckpointError("the checkpoint's torch_rng_state is malformed")
            torch.set_rng_state(state)
            cuda_state = checkpoint.get("cuda_rng_state")
            if isinstance(cuda_state, torch.Tensor) and torch.cuda.is_available():
                torch.cuda.set_rng_state(cuda_state.cpu(), self.device)
        best = checkpoint.get("val_acc_best")
        if resuming and isinstance(best, float):
            self._resumed_best = best
