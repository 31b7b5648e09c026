"""The build half every entry point shares: the data module, the pretrained embedding, the
model and the trainer, each from a composed config. ``train``, ``prepare``, ``evaluate`` and
``pretrain`` use them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar

from embedclf.data.datamodule import TextFolderDataModule
from embedclf.models.recipe import EmbeddingClassifierModule
from embedclf.models.weighting import fit_to_training_data
from embedclf.text.featurizer import TextFeaturizer
from embedclf.training.checkpoints import SafeCheckpointIO
from embedclf.util.errors import VectorsError
from embedclf.util.paths import cache_dir
from embedclf.vectors.cache import MAX_LINE_BYTES, load_vectors
from embedclf.vectors.coverage import Coverage, build_embedding_matrix
from embedclf.vectors.indomain import pretrained_vectors
from embedclf.vectors.sources import concat_files, word_vectors
from embedclf.vectors.textformat import Vectors

log = logging.getLogger(__name__)


# -- the build half ------------------------------------------------------------------------
def build_datamodule(
    cfg: DictConfig, featurizer: TextFeaturizer | None = None
) -> TextFolderDataModule:
    """The data module, prepared and set up (with a checkpoint's featurizer when given)."""
    datamodule: TextFolderDataModule = instantiate(cfg.data)
    if featurizer is not None:
        datamodule.use_featurizer(featurizer)
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
        path = str(for_config(cfg, datamodule))
    vectors = word_vectors(
        path=path,
        files=list(v.get("files", [])),
        member=v.get("member"),
        package=v.get("package"),
        download=v.get("download"),
        urls=list(v.get("urls", [])),
        sha256=v.get("sha256"),
        data_dir=cfg.paths.data_dir,
        cache_dir=cache_dir(cfg.paths.cache_dir),
        trust_header=bool(v.get("trust_header", True)),
        max_line_bytes=int(v.get("max_line_bytes", MAX_LINE_BYTES)),
    )
    if v.get("dim") and vectors.dim != v.dim:
        raise VectorsError(
            f"vectors={v.name} should have {v.dim} dimensions but the file has {vectors.dim}; "
            "set vectors.dim to match or choose other vectors"
        )
    featurizer = datamodule.featurizer
    assert featurizer is not None
    words = len(featurizer.vocab)
    counts = datamodule.feature_counts()[:words]
    blocks, coverages = [], []
    for setting, source in [(str(v.name), vectors), *_concat_vectors(cfg)]:
        block = np.zeros((featurizer.input_size, source.dim), dtype=np.float32)
        matrix, found = build_embedding_matrix(featurizer.vocab, counts, source, block[:words])
        block[:words] = matrix
        blocks.append(block)
        coverages.append(found)
        log.info("%s", found.summary(setting))
    init = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    if v.get("normalize"):  # unit-length rows: every word weighs by its weight, not its norm
        norms = np.linalg.norm(init, axis=1, keepdims=True)
        init = np.divide(init, norms, out=np.zeros_like(init), where=norms > 0)
    return init, coverages[0]  # the main vectors' (metrics.json, TensorBoard)


def _concat_vectors(cfg: DictConfig) -> list[tuple[str, Vectors]]:
    """The files of ``vectors.concat``, each loaded: their vectors go beside the main ones, so
    a word's row is ``[main, concat[0], ...]`` (zeros in a part whose file lacks the word).

    GloVe's general English and word2vec trained in the texts' domain (IMDB's reviews for
    SST-2's sentences) know different things about a word; an encoder over both sees both."""
    v = cfg.vectors
    loaded = []
    for setting, path in concat_files(v.get("concat") or [], cfg.paths.data_dir):
        source = load_vectors(
            path,
            cache_dir=cache_dir(cfg.paths.cache_dir) / "vectors",
            trust_header=bool(v.get("trust_header", True)),
            max_line_bytes=int(v.get("max_line_bytes", MAX_LINE_BYTES)),
            choose_member=f"unzip the one {setting} should read and name that file",
        )
        loaded.append((f"{setting}={path}", source))
    return loaded


def net_spec(
    cfg: DictConfig, *, rows: int, seq_len: int, classes: int, dim: int | None = None
) -> dict[str, Any]:
    """The config's ``model.net`` with what the data decides filled in: the embedding's rows
    (and width ``dim``, from pretrained vectors), the input length and the number of classes."""
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    assert isinstance(net, dict)
    net.update(rows=rows, seq_len=seq_len, classes=classes)
    if dim is not None:
        net["embedding"]["dim"] = dim
    return net


def build_model(
    cfg: DictConfig, datamodule: TextFolderDataModule, embedding_init: np.ndarray | None
) -> EmbeddingClassifierModule:
    """The module the config names, its pretrained rows loaded and its feature statistics
    fitted to the training rows; it carries the data's featurizer into its checkpoints."""
    net = net_spec(
        cfg,
        rows=datamodule.vocab_size,
        seq_len=datamodule.hparams.maxlen,
        classes=datamodule.num_classes,
        dim=None if embedding_init is None else int(embedding_init.shape[1]),
    )
    module = instantiate(cfg.model, net=net)
    if embedding_init is not None:
        module.net.load_embedding(embedding_init)
    fit_to_training_data(module.net, datamodule.training_batches, datamodule.feature_counts())
    module.featurizer = datamodule.featurizer
    return module


def build_trainer(cfg: DictConfig, *, validation: bool = True, **kwargs: Any) -> pl.Trainer:
    """The configured trainer; checkpoints are written atomically and read safely."""
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


def for_config(cfg: DictConfig, datamodule: Any) -> Path:
    """The in-domain vectors file a config's ``vectors.pretrain`` settings ask for, on the
    data module's dataset with its tokeniser's word rules."""
    settings = OmegaConf.to_container(cfg.vectors.pretrain, resolve=True)
    assert isinstance(settings, dict)
    return pretrained_vectors(
        source=datamodule.source(),
        filters=datamodule.hparams.filters,
        lower=datamodule.hparams.lower,
        settings=settings,
        cache_dir=cache_dir(cfg.paths.cache_dir),
    )
