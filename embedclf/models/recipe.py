"""The LightningModule: the training recipe around :class:`EmbeddingClassifier`.

One Lightning training step carries several optimiser steps (``Batch.step_size`` reviews
each; the data module sets how many per call). The updates are exactly those of one Lightning
step per batch — same order, same batches, zero_grad/backward/step each — but Lightning's
per-step machinery (hooks, closures, progress bar, loop bookkeeping) runs once per call
instead of once per batch, which for the seed's 80,000-parameter model costs more than the
arithmetic itself. Optimisation is therefore manual; metrics are updated once per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import Accuracy

from embedclf.data.batches import Batch, Tokens
from embedclf.models.classifier import EmbeddingClassifier
from embedclf.models.packed_words import packed
from embedclf.models.specs import OPTIMIZER_MODULE, SCHEDULER_MODULE, build_from_spec
from embedclf.text.featurizer import TextFeaturizer
from embedclf.util.errors import CheckpointError, TrainingError

# where every checkpoint keeps its featurizer: a fixed name, never a class's
FEATURIZER_KEY = "text_featurizer"


class EmbeddingClassifierModule(pl.LightningModule):
    """Trains an embedding classifier; logs loss and accuracy per epoch for each split.

    The lightning-hydra-template's shape: ``net`` is the network's plain spec
    (:mod:`embedclf.models.classifier`), ``optimizer`` (and the optional ``scheduler``) are
    specs naming a ``torch.optim`` class and its settings, built in
    :meth:`configure_optimizers` with the trainable parameters; ``head_l2`` adds
    ``head_l2 / 2`` times the output layer's squared weights to the training loss;
    ``gradient_clip_val`` scales each update's gradient down to that norm (over all trainable
    parameters) where it is longer: Lightning's ``Trainer(gradient_clip_val=...)``, which
    manual optimisation leaves to the module, and Keras's ``global_clipnorm``. All are
    plain types, so a checkpoint loads with ``torch.load(weights_only=True)``. Pretrained rows
    and the statistics of the training data live in the weights and buffers, not here.

    ``featurizer`` (what turns raw text into ids) is saved beside the weights under the fixed
    key :data:`FEATURIZER_KEY` of every checkpoint, its vocabulary as two tensors
    (:mod:`embedclf.models.packed_words`).
    """

    def __init__(
        self,
        *,
        net: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        head_l2: float = 0.0,
        gradient_clip_val: float | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        # logged once, by training/reports.py, with the run's config and final metrics
        self.save_hyperparameters(logger=False)
        self.net = EmbeddingClassifier(net)
        self.featurizer: TextFeaturizer | None = None
        num_classes = int(net["classes"])
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

    def forward(self, ids: Tokens | torch.Tensor) -> torch.Tensor:
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

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        """``batch.step_size`` rows per optimiser update, every update through one closure
        (forward, loss, backward) handed to ``step(closure=...)``.

        Lightning dispatches the call's last update (``optimizer.step``: its hooks, precision
        and strategy plugins, and the step count, so ``global_step`` counts Lightning steps);
        the call's other updates go to the torch optimiser it wraps (``optimizer.optimizer``)
        with a plain ``loss.backward()``: the same arithmetic, without the per-update
        dispatch that costs more than the seed's model. Several updates per call happen only
        on one device (the data module gives DDP one per call), and never with a gradient
        scaler (``training/checks.py`` refuses 16-bit precision with ``steps_per_call > 1``).
        L-BFGS calls the closure as often as it needs; the others once. Each of L-BFGS's
        calls replays the update's random draws (dropout), so its line search compares one
        objective.
        """
        optimizer = self.optimizers()
        encoder = self.net.encoder
        parts = batch.parts(encoder.seq_len if encoder.layout == "fixed" else None)
        replay = isinstance(getattr(optimizer, "optimizer", optimizer), torch.optim.LBFGS)
        clip = self.hparams.get("gradient_clip_val")
        logits_seen, losses = [], []
        for index, (ids, labels) in enumerate(parts):
            ids = self.net.drop_words(ids)  # outside the closure: one draw per update
            lightning_step = index == len(parts) - 1
            seen: list[torch.Tensor] = []
            draws = _RandomState(self.device) if replay else None

            def closure(
                ids=ids, labels=labels, seen=seen, dispatch=lightning_step, draws=draws
            ) -> torch.Tensor:
                if draws is not None:
                    draws.restore()
                optimizer.zero_grad()
                logits = self(ids)
                loss = self.training_loss(logits, labels)
                if dispatch:
                    self.manual_backward(loss)
                else:
                    loss.backward()
                if clip is not None:
                    self.clip_gradients(optimizer, clip, gradient_clip_algorithm="norm")
                seen[:] = [logits.detach(), loss.detach()]
                return loss

            step = optimizer.step if lightning_step else optimizer.optimizer.step
            step(closure=closure)
            self.net.constrain()
            logits_seen.append(seen[0])
            losses.append(seen[1])
        losses_t = torch.stack(losses)
        if not bool(torch.isfinite(losses_t).all()):
            raise TrainingError(
                f"the training loss became {losses_t[~torch.isfinite(losses_t)][0].item()} "
                f"in epoch {self.current_epoch}; lower model.optimizer.lr, or check the vectors"
            )
        sizes = torch.tensor([len(x) for x in logits_seen], device=losses_t.device)
        self._update("train", torch.cat(logits_seen), batch.labels, losses_t, sizes)

    def _evaluate(self, batch: Batch, split: str) -> None:
        logits = self(batch.tokens)
        loss = self.loss(logits, batch.labels)
        self._update(split, logits, batch.labels, loss, len(batch.labels))
        self._seen[split] += len(batch.labels)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self.probabilities(self(batch.tokens))

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

    # -- a checkpoint carries its featurizer; exact resume: the shuffle's generator too -----
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.featurizer is not None:
            checkpoint[FEATURIZER_KEY] = packed(self.featurizer.state_dict())
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


class _RandomState:
    """torch's generator state on the CPU and on ``device``, captured now, to restore."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)
