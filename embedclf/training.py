"""One training run from a composed config: data, vectors, model, fit, evaluation, reports."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from embedclf.datamodule import TextFolderDataModule
from embedclf.errors import ConfigError, UserError
from embedclf.fileio import atomic_write_json
from embedclf.pipeline import (
    build_datamodule,
    build_model,
    build_trainer,
    check_config,
    encoder_of,
    load_checkpoint,
    pretrained_embedding,
    score,
    scored_checkpoint,
)
from embedclf.vectors import Coverage

log = logging.getLogger(__name__)

HPARAM_METRICS = ("val_acc", "test_acc", "val_loss", "test_loss", "fit_seconds")


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The run's settings as TensorBoard's HPARAMS tab shows them: one column per leaf."""
    chosen = {
        "experiment": cfg.task_name,
        "seed": cfg.seed,
        "vectors": cfg.vectors.name if cfg.get("vectors") else "none",
        "data": {k: v for k, v in cfg.data.items() if k not in ("urls", "sha256", "filters")},
        "model": cfg.model,
        "trainer": {k: v for k, v in cfg.trainer.items() if k != "_target_"},
    }
    container = OmegaConf.to_container(OmegaConf.create(chosen), resolve=True)
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if not str(key).startswith("_") or key == "_target_":
                    walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif value is None or isinstance(value, list):
            flat[prefix] = str(value)
        else:
            flat[prefix] = value

    walk("", container)
    return flat


def _report_coverage(trainer: pl.Trainer, coverage: Coverage) -> None:
    for logger in trainer.loggers:
        logger.log_metrics(
            {
                "vectors/vocab_coverage": coverage.vocab_share,
                "vectors/token_coverage": coverage.token_share,
            },
            step=0,
        )
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_text"):
            missing = ", ".join(f"{w} ({n})" for w, n in coverage.top_missing)
            experiment.add_text("vectors/coverage", f"{coverage.summary()}\n\nmissing: {missing}")


def _report_run(cfg: DictConfig, trainer: pl.Trainer, model, datamodule, metrics) -> None:
    """What a user looks at after a run: HPARAMS with final metrics, the projector, curves."""
    finals = {f"hp/{k}": metrics[k] for k in HPARAM_METRICS if metrics.get(k) is not None}
    for logger in trainer.loggers:
        logger.log_hyperparams(flat_hparams(cfg), finals)
        experiment = getattr(logger, "experiment", None)
        words = int(cfg.get("projector_words", 0) or 0)
        if words and hasattr(experiment, "add_embedding"):
            vocab = datamodule.encoder.vocab[1 : words + 1]
            weights = model.net.embedding.weight.detach().cpu()[1 : len(vocab) + 1]
            experiment.add_embedding(weights, metadata=vocab, tag="embedding")
        logger.finalize("success")
    if cfg.get("plot_curves", True) and model.history:
        from embedclf.plots import plot_curves

        plot_curves(model.history, Path(cfg.paths.output_dir) / "curves.png")


def check_checkpoints_fit(cfg: DictConfig, datamodule: TextFolderDataModule) -> None:
    """Before fitting: the checkpoints ``resume`` and ``ckpt_path`` name must have been trained
    on this run's encoder, and ``ckpt_path=best`` needs validation reviews to pick by."""
    if cfg.ckpt_path == "best" and not datamodule.sizes()["val"]:
        raise ConfigError(
            f"ckpt_path=best needs validation reviews but data.val_samples="
            f"{cfg.data.val_samples} leaves none; use ckpt_path=last or more validation reviews"
        )
    for setting in ("resume", "ckpt_path"):
        path = cfg.get(setting)
        if not path or path in ("last", "best"):
            continue
        theirs = encoder_of(load_checkpoint(path, setting), f"{setting}={path}")
        if theirs != datamodule.encoder:
            raise ConfigError(
                f"{setting}={path} was trained with another vocabulary, tokeniser or padding "
                "than this run's data settings; use the data settings it was trained with"
            )


def epochs_trained(trainer: pl.Trainer) -> int:
    """Epochs completed; read from the last checkpoint when the count stayed in a spawned
    process (``ddp_spawn``), whose trainer the main process does not get back."""
    if trainer.current_epoch or trainer.fast_dev_run:
        return trainer.current_epoch
    try:
        last = load_checkpoint(scored_checkpoint(trainer, "last"))
    except UserError:
        return trainer.current_epoch
    return int(last["epoch"]) + 1


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then score validation and test from the saved checkpoint, as the seed does."""
    check_config(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    datamodule = build_datamodule(cfg)
    prepare_seconds = time.perf_counter() - started
    check_checkpoints_fit(cfg, datamodule)
    embedding_init, coverage = None, None
    if cfg.get("vectors"):
        embedding_init, coverage = pretrained_embedding(cfg, datamodule)
    model = build_model(cfg, datamodule, embedding_init)
    validation = datamodule.sizes()["val"] > 0
    trainer = build_trainer(cfg, validation=validation)
    if coverage is not None:
        _report_coverage(trainer, coverage)

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
        _report_run(cfg, trainer, model, datamodule, metrics)
        log.info("metrics: %s", json.dumps(metrics))
    return metrics
