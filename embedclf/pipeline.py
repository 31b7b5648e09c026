"""The pieces every entry point is built from: check settings, build the data, vectors, model
and trainer from a config (the build half), load checkpoints safely, and score a checkpoint
(the evaluate half). ``train``, ``prepare``, ``evaluate`` and ``predict`` share them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from embedclf import sources
from embedclf.datamodule import TextFolderDataModule
from embedclf.encoder import TextEncoder
from embedclf.errors import CheckpointError, ConfigError, VectorsError
from embedclf.model import POOLINGS
from embedclf.paths import cache_dir
from embedclf.vectors import Coverage, build_embedding_matrix

log = logging.getLogger(__name__)

ENCODER_KEY = TextFolderDataModule.__qualname__  # where Lightning saves the data's state_dict


# -- settings, checked before any time is spent ------------------------------------------
def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_config(cfg: DictConfig) -> None:
    """Refuse settings that cannot work, each with a one-line error naming the setting."""
    data, model = cfg.data, cfg.model
    _require(
        _whole(cfg.seed) and 0 <= cfg.seed < 2**32,
        f"seed={cfg.seed!r} must be a whole number from 0 to 2**32 - 1, e.g. seed=0",
    )
    threads = cfg.get("torch_threads")
    _require(
        threads is None or (_whole(threads) and threads >= 1),
        f"torch_threads={threads!r} must be a whole number >= 1, or null for torch's default",
    )
    for key in ("maxlen", "batch_size", "eval_batch_size", "steps_per_call"):
        value = data.get(key, 1)
        _require(_whole(value) and value >= 1, f"data.{key}={value!r} must be a whole number >= 1")
    num_words = data.num_words
    _require(
        num_words is None or (_whole(num_words) and num_words >= 2),
        f"data.num_words={num_words!r} keeps no word (it keeps num_words - 1); use 2 or more, "
        "or null for all",
    )
    for key in ("padding", "truncating"):
        _require(data[key] in ("pre", "post"), f"data.{key}={data[key]!r} must be pre or post")
    val = data.val_samples
    _require(
        (_whole(val) and val >= 0) or (isinstance(val, float) and 0 <= val < 1),
        f"data.val_samples={val!r} must be a fraction in [0, 1) or a whole count of reviews",
    )
    train = data.train_samples
    _require(
        train is None or (_whole(train) and train >= 1),
        f"data.train_samples={train!r} must be a whole number >= 1, or null for the rest",
    )
    _require(
        _whole(data.get("ngrams", 1)) and data.get("ngrams", 1) >= 1,
        f"data.ngrams={data.get('ngrams')!r} must be 1 (words only) or more",
    )
    if data.get("ngrams", 1) > 1:
        buckets = data.get("buckets", 0)
        _require(_whole(buckets) and buckets >= 1, f"data.buckets={buckets!r} must be >= 1")
    dim = model.get("embedding_dim", 1)
    _require(_whole(dim) and dim >= 1, f"model.embedding_dim={dim!r} must be a whole number >= 1")
    pooling = model.get("pooling", "flatten")
    _require(pooling in POOLINGS, f"model.pooling={pooling!r} must be one of {', '.join(POOLINGS)}")
    epochs = cfg.trainer.get("max_epochs")
    _require(
        epochs is None or (_whole(epochs) and epochs >= -1),
        f"trainer.max_epochs={epochs!r} must be a whole number",
    )
    no_val = val == 0
    choice = cfg.get("ckpt_path", "last")
    _require(
        not (no_val and choice == "best"),
        "ckpt_path=best needs a validation split to pick the best epoch; with "
        "data.val_samples=0 use ckpt_path=last",
    )
    if choice not in ("last", "best"):
        load_checkpoint(choice, "ckpt_path")
    if cfg.get("resume"):
        load_checkpoint(cfg.resume, "resume")


# -- checkpoints ---------------------------------------------------------------------------
def load_checkpoint(
    path: str | Path, setting: str = "checkpoint", *, ours: bool = True
) -> dict[str, Any]:
    """A local checkpoint of this project, read with ``weights_only=True``.

    Nothing in a checkpoint may run code: pickled objects other than tensors and plain
    types are refused by torch, and remote paths (URLs) are refused here, since a file
    fetched on the fly cannot be checked before it is trusted.
    """
    text = str(path)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise CheckpointError(
            f"{setting}={text} is remote; checkpoints are only read from local files: "
            "download it, check where it comes from, and give its path"
        )
    file = Path(text).expanduser()
    if not file.is_file():
        raise CheckpointError(f"{setting}={text} does not exist; give the path of a .ckpt file")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        reason = " ".join(str(err).split())
        # torch's weights_only refusal opens with advice to load with weights_only=False (never
        # right for a file that is not ours); keep only what it found in the file
        reason = reason.partition("WeightsUnpickler error:")[2].partition(" Check the")[0] or reason
        reason = reason.strip()[:120]
        raise CheckpointError(
            f"{setting}={text} is not a readable checkpoint ({type(err).__name__}: {reason}); "
            "it may be truncated or not a checkpoint at all"
        ) from None
    if not ours:  # Lightning's own files (ddp_spawn's weights handed back): read safely only
        return checkpoint
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{setting}={text} is not a Lightning checkpoint")
    if ENCODER_KEY not in checkpoint or "hyper_parameters" not in checkpoint:
        raise CheckpointError(
            f"{setting}={text} is not an embedclf checkpoint (it carries no text encoder); "
            "train one with python train.py"
        )
    _check_specs(checkpoint["hyper_parameters"], f"{setting}={text}")
    return checkpoint


def _check_specs(params: Any, where: str) -> None:
    """A checkpoint may name only torch's optimiser and scheduler classes: it is data."""
    from embedclf.module import OPTIMIZER_MODULE, SCHEDULER_MODULE, spec_class

    if not isinstance(params, Mapping):
        raise CheckpointError(f"{where} holds malformed hyperparameters")
    try:
        spec_class(params.get("optimizer"), OPTIMIZER_MODULE, torch.optim.Optimizer)
        if params.get("scheduler") is not None:
            spec_class(params["scheduler"], SCHEDULER_MODULE, torch.optim.lr_scheduler.LRScheduler)
    except ConfigError as err:
        raise CheckpointError(f"{where} is refused: its optimiser settings: {err}") from None


def encoder_of(checkpoint: Mapping[str, Any], where: str) -> TextEncoder:
    return TextEncoder.from_state_dict(checkpoint[ENCODER_KEY].get("encoder"), where)


def module_from_checkpoint(checkpoint: Mapping[str, Any], where: str) -> pl.LightningModule:
    """The trained module of a checkpoint, built from its hyperparameters (plain types,
    optimiser names checked when used), its weights loaded; in eval mode."""
    from embedclf.module import EmbeddingClassifierModule

    params = dict(checkpoint["hyper_parameters"])
    try:
        module = EmbeddingClassifierModule(**params)
        module.load_state_dict(checkpoint["state_dict"])
    except (TypeError, ValueError, RuntimeError) as err:
        reason = " ".join(str(err).split())[:160]
        raise CheckpointError(f"{where} does not fit this version's model ({reason})") from None
    return module.eval()


# -- the build half ------------------------------------------------------------------------
def build_datamodule(cfg: DictConfig, encoder: TextEncoder | None = None) -> TextFolderDataModule:
    """The data module, prepared and set up (with a checkpoint's encoder when given)."""
    datamodule: TextFolderDataModule = instantiate(cfg.data)
    if encoder is not None:
        datamodule.load_state_dict({"encoder": encoder.state_dict()})
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def pretrained_embedding(
    cfg: DictConfig, datamodule: TextFolderDataModule
) -> tuple[np.ndarray, Coverage]:
    """The embedding matrix for the run's vocabulary; words without a vector keep zero rows."""
    v = cfg.vectors
    path = v.get("path")
    if v.get("pretrain"):  # in-domain vectors, trained on the run's own dataset if not cached
        from embedclf.pretrain import for_config

        path = str(for_config(cfg, datamodule))
    vectors = sources.word_vectors(
        path=path,
        files=list(v.get("files", [])),
        member=v.get("member"),
        package=v.get("package"),
        download=v.get("download"),
        urls=list(v.get("urls", [])),
        sha256=v.get("sha256"),
        data_dir=cfg.paths.data_dir,
        cache_dir=cache_dir(cfg.paths.cache_dir),
    )
    if v.get("dim") and vectors.dim != v.dim:
        raise VectorsError(
            f"vectors={v.name} should have {v.dim} dimensions but the file has {vectors.dim}; "
            "set vectors.dim to match or choose other vectors"
        )
    encoder, corpus = datamodule.encoder, datamodule.corpus
    assert encoder is not None and corpus is not None
    words = len(encoder.vocab)
    init = np.zeros((encoder.input_size, vectors.dim), dtype=np.float32)
    matrix, coverage = build_embedding_matrix(
        encoder.vocab, corpus.counts[:words], vectors, init[:words]
    )
    init[:words] = matrix
    if v.get("normalize"):  # unit-length rows: every word weighs by its weight, not its norm
        norms = np.linalg.norm(init, axis=1, keepdims=True)
        init = np.divide(init, norms, out=np.zeros_like(init), where=norms > 0)
    log.info("%s: %s", v.name, coverage.summary())
    return init, coverage


def build_model(
    cfg: DictConfig, datamodule: TextFolderDataModule, embedding_init: np.ndarray | None
) -> pl.LightningModule:
    overrides: dict[str, Any] = {}
    if embedding_init is not None:
        overrides["embedding_dim"] = embedding_init.shape[1]
    weighting = cfg.model.get("feature_weighting", "none")
    if weighting == "nb":
        from embedclf.model import nb_feature_weights

        overrides["feature_weight"] = nb_feature_weights(
            datamodule.padded["train"], datamodule.labels["train"], datamodule.vocab_size
        )
    elif weighting == "sif":
        from embedclf.model import sif_feature_weights

        counts = np.zeros(datamodule.vocab_size)
        words = len(datamodule.encoder.vocab)
        counts[:words] = datamodule.corpus.counts[:words]
        known = (
            np.ones(datamodule.vocab_size)
            if embedding_init is None
            else np.abs(embedding_init).sum(1) > 0
        )
        overrides["feature_weight"] = sif_feature_weights(counts, known, cfg.model.sif_a)
    elif weighting != "none":
        raise ConfigError(f"model.feature_weighting={weighting!r} must be none, nb or sif")
    module = instantiate(
        cfg.model,
        vocab_size=datamodule.vocab_size,
        seq_len=datamodule.hparams.maxlen,
        num_classes=datamodule.num_classes,
        embedding_init=embedding_init,
        **overrides,
    )
    if cfg.model.get("standardize"):  # the pooled features' scale, from the training reviews
        from embedclf.model import set_standardization

        set_standardization(module.net, torch.from_numpy(datamodule.padded["train"]))
    return module


def build_trainer(cfg: DictConfig, *, validation: bool = True, **kwargs: Any) -> pl.Trainer:
    """The configured trainer; checkpoints are written atomically and read safely."""
    from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar

    from embedclf.checkpoint_io import SafeCheckpointIO

    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c]
    if not cfg.trainer.get("enable_progress_bar", True):  # honour it, whatever callbacks say
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if not validation:  # nothing to pick a best epoch by
        callbacks = [c for c in callbacks if not (isinstance(c, ModelCheckpoint) and c.monitor)]
    loggers = [instantiate(c) for c in cfg.get("logger", {}).values() if c]
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    if not validation:
        trainer_cfg["limit_val_batches"] = 0
    return instantiate(
        trainer_cfg,
        callbacks=callbacks,
        logger=loggers,
        plugins=[SafeCheckpointIO()],
        **kwargs,
    )


# -- the evaluate half ----------------------------------------------------------------------
def scored_checkpoint(trainer: pl.Trainer, choice: str) -> str:
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
    raise ConfigError(
        f"ckpt_path={choice}: no such checkpoint was saved; keep callbacks.model_checkpoint and "
        "callbacks.last_checkpoint, or give ckpt_path a file"
    )


def score(
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule: TextFolderDataModule,
    ckpt_path: str | None,
    splits: tuple[str, ...] = ("val", "test"),
) -> dict[str, float | None]:
    """Loss, accuracy and the count of scored reviews for each split, from ``ckpt_path``."""
    out: dict[str, float | None] = {}
    for split in splits:
        if split == "val" and not datamodule.sizes().get("val"):
            out.update(val_acc=None, val_loss=None, val_samples=0)
            continue
        run = trainer.validate if split == "val" else trainer.test
        run(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=True)
        # read from callback_metrics: validate() outside fit adds no point to the epoch curves
        found = trainer.callback_metrics
        out[f"{split}_acc"] = float(found[f"{split}/acc"])
        out[f"{split}_loss"] = float(found[f"{split}/loss"])
        out[f"{split}_samples"] = int(found[f"{split}/samples"])
    return out
