"""Ctrl-C while training stops at the next batch boundary, not wherever the signal lands.

Python raises ``KeyboardInterrupt`` at whatever line is running: inside TensorBoard's writer
queue or a lock held by a library, that can leave the shutdown waiting on a lock forever, and
Lightning ignores further Ctrl-Cs while it shuts down (``trainer/call.py``), so the run hangs.
While the training loop runs, the first Ctrl-C is therefore noted and raised by
:class:`DeferredInterrupt` at the end of the current batch or epoch, where Lightning's own
shutdown (and then ``training/run.py``'s one line) follows; a second Ctrl-C raises at once.
Before training starts (reading, tokenising, building the model), after it ends, and under
DDP, Ctrl-C raises at once, as it always does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytorch_lightning as pl


class DeferredInterrupt(pl.Callback):
    """Holds a Ctrl-C that came while :attr:`armed` (from ``on_train_start`` to
    ``on_train_end``) until the next batch or epoch end; :func:`deferred_interrupts`
    installs its handler."""

    def __init__(self) -> None:
        self.armed = False
        self.pending = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.armed or self.pending:  # not training, or a second Ctrl-C: now
            raise KeyboardInterrupt
        self.pending = True

    def check(self, *_: Any) -> None:
        if self.pending:
            self.pending = self.armed = False
            raise KeyboardInterrupt

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # one process: under DDP the ranks must stop together, as Lightning's launchers do
        self.armed = trainer.world_size == 1

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check()
        self.armed = False

    on_train_batch_end = check
    on_validation_batch_end = check
    on_train_epoch_end = check
    on_validation_epoch_end = check


@contextmanager
def deferred_interrupts(trainer: pl.Trainer) -> Iterator[DeferredInterrupt]:
    """Within: Ctrl-C during ``trainer``'s training loop waits for a batch boundary (main
    thread only: elsewhere Python delivers no signal, and nothing changes)."""
    callback = DeferredInterrupt()
    if threading.current_thread() is not threading.main_thread():
        yield callback
        return
    trainer.callbacks.append(callback)
    previous = signal.signal(signal.SIGINT, callback.handle)
    try:
        yield callback
    finally:
        signal.signal(signal.SIGINT, previous)
        trainer.callbacks.remove(callback)
