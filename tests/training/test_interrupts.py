"""Ctrl-C while training waits for the batch's end (training/interrupts.py)."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

from embedclf.training.interrupts import deferred_interrupts


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def trainer(world_size: int = 1) -> SimpleNamespace:
    return SimpleNamespace(callbacks=[], world_size=world_size)


def test_a_ctrl_c_while_training_is_raised_at_the_batch_end():
    fake = trainer()
    with deferred_interrupts(fake) as callback:
        assert fake.callbacks == [callback]
        callback.on_train_start(fake, None)
        try:
            ctrl_c()  # mid-batch: noted, not raised here
        except KeyboardInterrupt:
            pytest.fail("a Ctrl-C mid-batch was raised where it landed")
        assert callback.pending
        with pytest.raises(KeyboardInterrupt):
            callback.on_train_batch_end(fake, None, None, None, 0)
    assert fake.callbacks == [] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_is_raised_at_once():
    fake = trainer()
    with deferred_interrupts(fake) as callback:
        callback.on_train_start(fake, None)
        ctrl_c()
        with pytest.raises(KeyboardInterrupt):
            ctrl_c()


@pytest.mark.parametrize("world_size", [1, 2])
def test_before_training_and_under_ddp_ctrl_c_is_raised_at_once(world_size):
    fake = trainer(world_size)
    with deferred_interrupts(fake) as callback:
        with pytest.raises(KeyboardInterrupt):
            ctrl_c()  # reading, tokenising: no batch to wait for
        callback.on_train_start(fake, None)
        if world_size > 1:  # ranks must stop together: as before
            with pytest.raises(KeyboardInterrupt):
                ctrl_c()
        else:
            ctrl_c()
            with pytest.raises(KeyboardInterrupt):
                callback.on_train_end(fake, None)  # the loop's last word: still raised
