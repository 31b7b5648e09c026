"""One training run from a composed config: data, vectors, model, fit, evaluation, reports."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from embedclf.models.checkpoint import forget_reads
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
from embedclf.util.fileio import atomic_write_json

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then score validation and test from the saved checkpoint, as the seed does."""
    try:
        return _train(cfg)
    finally:  # the checkpoint kept for this run's reads is not the next run's business
        forget_reads()


def _train(cfg: DictConfig) -> dict[str, Any]:
    check_config(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

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
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("resume"), weights_only=True)
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
        atomic_write_json(output_dir / "metrics.json", metrics)
        report_run(cfg, trainer, model, datamodule, metrics)
        log.info("metrics: %s", json.dumps(metrics))
    return metrics
