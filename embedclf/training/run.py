"""One training run from a composed config: data, vectors, model, fit, evaluation, reports."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException

from embedclf.models.checkpoint import forget_reads
from embedclf.runs.summary import METRICS_FILE
from embedclf.training.build import (
    build_datamodule,
    build_model,
    build_trainer,
    pretrained_embedding,
)
from embedclf.training.checkpoints import epochs_trained, scored_checkpoint
from embedclf.training.checks import check_against_data, check_config
from embedclf.training.reports import report_coverage, report_run
from embedclf.training.scoring import score
from embedclf.util.errors import ERROR_FILE, Interrupted, Stopped, UserError
from embedclf.util.fileio import atomic_write_json

log = logging.getLogger(__name__)


def set_aside_results(output_dir: Path) -> None:
    """A new run in a used directory: the earlier run's results are renamed ``*.previous``, so
    this run is never reported with them (it writes ``metrics.json`` only when it ends)."""
    for name in (METRICS_FILE, ERROR_FILE):
        stale = output_dir / name
        if stale.is_file():
            stale.replace(stale.with_name(f"{name}.previous"))
            log.warning("%s held an earlier run's %s: renamed %s.previous", output_dir, name, name)


def fit(trainer: pl.Trainer, model: pl.LightningModule, datamodule: Any, resume: str | None):
    """``trainer.fit``; a SIGTERM (which Lightning turns into a clean exit) or a Ctrl-C
    (which it turns into ``sys.exit(1)`` with no word) is a stop, with the checkpoint to
    resume from named. A checkpoint being written when it came is never left half-written
    (``training/checkpoints.py`` writes each by rename)."""
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    except SIGTERMException:
        raise Stopped(
            f"stopped by SIGTERM in epoch {trainer.current_epoch}; {_resume_hint(trainer)}"
        ) from None
    except SystemExit:
        if not trainer.interrupted:
            raise
        raise Interrupted(
            f"interrupted (Ctrl-C) in epoch {trainer.current_epoch}; {_resume_hint(trainer)}"
        ) from None


def _resume_hint(trainer: pl.Trainer) -> str:
    try:
        last = scored_checkpoint(trainer, "last")
    except UserError:
        return "no checkpoint was written yet: start it again"
    return f"the last checkpoint is {last}: continue with resume={last}"


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then score validation and test from the saved checkpoint, as the seed does."""
    try:
        metrics = _train(cfg)
    finally:  # the checkpoint kept for this run's reads is not the next run's business
        forget_reads()
    leave_process_group()
    return metrics


def leave_process_group() -> None:
    """Lightning's DDP teardown leaves the process group up; a gloo group still alive when
    the interpreter exits can abort a rank ("terminate called without an active exception")
    after its work is done, so torchrun reports the run failed. Every rank that finished leaves
    it here (a failed rank does not wait at a barrier the others may never reach)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _train(cfg: DictConfig) -> dict[str, Any]:
    check_config(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) == 0:
        set_aside_results(output_dir)

    started = time.perf_counter()
    datamodule = build_datamodule(cfg)
    prepare_seconds = time.perf_counter() - started
    check_against_data(cfg, datamodule)
    embedding_init, coverage = None, None
    if cfg.get("vectors"):
        embedding_init, coverage = pretrained_embedding(cfg, datamodule)
    model = build_model(cfg, datamodule, embedding_init)
    validation = datamodule.sizes()["val"] > 0
    trainer = build_trainer(cfg, validation=validation)
    if coverage is not None:
        report_coverage(trainer, coverage)

    started = time.perf_counter()
    fit(trainer, model, datamodule, cfg.get("resume"))
    fit_seconds = time.perf_counter() - started
    val_acc_best = trainer.callback_metrics.get("val/acc_best")  # before validate() resets them

    ckpt_path = None if trainer.fast_dev_run else scored_checkpoint(trainer, cfg.ckpt_path)
    scores = score(trainer, model, datamodule, ckpt_path)
    sizes = datamodule.sizes()
    metrics: dict[str, Any] = {
        **scores,
        "val_acc_best": None if val_acc_best is None else float(val_acc_best),
        "epochs": epochs_trained(trainer),
        "train_samples": sizes["train"],
        "fit_seconds": round(fit_seconds, 3),
        "prepare_seconds": round(prepare_seconds, 3),
        "checkpoint": ckpt_path,
        "seed": cfg.seed,
    }
    if coverage is not None:
        metrics["vectors_coverage"] = coverage.vocab_share
        metrics["vectors_token_coverage"] = coverage.token_share
    if trainer.is_global_zero:
        atomic_write_json(output_dir / METRICS_FILE, metrics)
        report_run(cfg, trainer, model, datamodule, metrics)
        log.info("metrics: %s", json.dumps(metrics))
    return metrics
