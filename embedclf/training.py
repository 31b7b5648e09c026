"""One training run from a composed config: data, vectors, model, fit, evaluation, metrics.json."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ProgressBar

from embedclf import sources
from embedclf.checkpoint_io import AtomicCheckpointIO
from embedclf.datamodule import TextFolderDataModule
from embedclf.paths import cache_dir
from embedclf.vectors import Coverage, Vectors, build_embedding_matrix

log = logging.getLogger(__name__)


def load_word_vectors(cfg: DictConfig) -> Vectors:
    """The vectors named by a ``vectors`` config group entry."""
    v = cfg.vectors
    return sources.word_vectors(
        path=v.get("path"),
        files=list(v.files),
        member=v.member,
        package=v.get("package"),
        download=v.download,
        urls=list(v.urls),
        sha256=v.get("sha256"),
        data_dir=cfg.paths.data_dir,
        cache_dir=cache_dir(cfg.paths.cache_dir),
    )


def pretrained_embedding(
    cfg: DictConfig, datamodule: TextFolderDataModule
) -> tuple[np.ndarray, Coverage]:
    """The embedding matrix for the run's vocabulary; words without a vector keep zero rows."""
    vectors = load_word_vectors(cfg)
    if cfg.vectors.get("dim") and vectors.dim != cfg.vectors.dim:
        raise sources.DataError(
            f"vectors={cfg.vectors.name} should have {cfg.vectors.dim} "
            f"dimensions but the file has {vectors.dim}"
        )
    corpus = datamodule.corpus
    init = np.zeros((datamodule.vocab_size, vectors.dim), dtype=np.float32)
    matrix, coverage = build_embedding_matrix(corpus.vocab, corpus.counts, vectors, init)
    log.info(
        "%s: found %d of %d vocabulary words",
        cfg.vectors.name,
        coverage.vocab_found,
        coverage.vocab_size,
    )
    log.info(coverage.summary())
    return matrix, coverage


def _log_coverage(trainer: pl.Trainer, coverage: Coverage) -> None:
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


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def scored_checkpoint(trainer: pl.Trainer, choice: str) -> str | None:
    """The file of ``ckpt_path``: ``last`` (final weights), ``best`` (by the monitor) or a path.

    Read from the callbacks' settings rather than their state: after a ``ddp_spawn`` run the
    main process only gets the first callback's state back.
    """
    if choice not in ("last", "best"):
        return choice
    for callback in trainer.checkpoint_callbacks:
        if (callback.monitor is None) == (choice == "last"):
            path = callback.best_model_path or callback.format_checkpoint_name({})
            if Path(path).is_file():
                return path
    raise sources.DataError(
        f"ckpt_path={choice}: no such checkpoint was saved; keep callbacks.model_checkpoint and "
        "callbacks.last_checkpoint, or give ckpt_path a file"
    )


def epochs_trained(trainer: pl.Trainer) -> int:
    """Epochs completed; read from the last checkpoint when the count stayed in a spawned
    process (``ddp_spawn``), whose trainer the main process does not get back."""
    if trainer.current_epoch or trainer.fast_dev_run:
        return trainer.current_epoch
    try:
        last = scored_checkpoint(trainer, "last")
    except sources.DataError:
        return trainer.current_epoch
    return int(torch.load(last, map_location="cpu", weights_only=True)["epoch"]) + 1


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then score validation and test from the saved checkpoint, as the seed does."""
    pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    datamodule: TextFolderDataModule = instantiate(cfg.data)
    started = time.perf_counter()
    datamodule.prepare_data()
    datamodule.setup("fit")
    prepare_seconds = time.perf_counter() - started

    embedding_init, coverage = None, None
    model_args: dict[str, Any] = {}
    if cfg.get("vectors"):
        embedding_init, coverage = pretrained_embedding(cfg, datamodule)
        model_args["embedding_dim"] = embedding_init.shape[1]
    model = instantiate(
        cfg.model,
        _recursive_=False,
        vocab_size=datamodule.vocab_size,
        seq_len=cfg.data.maxlen,
        num_classes=datamodule.num_classes,
        embedding_init=embedding_init,
        **model_args,
    )

    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c]
    if not cfg.trainer.get("enable_progress_bar", True):  # honour it, whatever callbacks say
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = [instantiate(c) for c in cfg.get("logger", {}).values() if c]
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers, plugins=[AtomicCheckpointIO()]
    )
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if coverage is not None:
        _log_coverage(trainer, coverage)

    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("resume"))
    fit_seconds = time.perf_counter() - started
    val_acc_best = trainer.callback_metrics.get("val/acc_best")  # before validate() resets them

    ckpt_path = None if trainer.fast_dev_run else scored_checkpoint(trainer, cfg.ckpt_path)
    trainer.validate(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    # read from callback_metrics: this validate() keeps its scores out of the epoch curves,
    # and validate()'s return value only holds what went to the loggers
    val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    test = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    sizes = datamodule.sizes()
    metrics: dict[str, Any] = {
        "val_acc": val["val/acc"],
        "val_loss": val["val/loss"],
        "test_acc": test[0]["test/acc"],
        "test_loss": test[0]["test/loss"],
        "val_acc_best": None if val_acc_best is None else float(val_acc_best),
        "epochs": epochs_trained(trainer),
        "train_samples": sizes["train"],
        "val_samples": sizes["val"],
        "test_samples": sizes["test"],
        "fit_seconds": round(fit_seconds, 3),
        "prepare_seconds": round(prepare_seconds, 3),
        "checkpoint": ckpt_path,
        "seed": cfg.seed,
    }
    if coverage is not None:
        metrics["vectors_coverage"] = coverage.vocab_share
        metrics["vectors_token_coverage"] = coverage.token_share
    if trainer.is_global_zero:
        write_json_atomic(output_dir / "metrics.json", metrics)
        log.info("metrics: %s", json.dumps(metrics))
    return metrics
