"""Reading checkpoints: safely, once, in today's format whatever version wrote them.

A checkpoint is data. It is read only from a local file with ``torch.load(weights_only=True)``
(no pickled code runs), may name only torch's optimiser and scheduler classes, and is read
once per run: the last file read is kept, keyed by its identity (device, inode, size, mtime),
so the checks before fitting, Lightning's own restore (through ``SafeCheckpointIO``) and the
scoring after it share one read.

Checkpoints written before the package took its folders (commit e063a16) kept the featurizer
under the data module's class name and flat model settings; :func:`upgrade` turns them into
today's layout as they are read, so they still predict, evaluate and resume.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from embedclf.models.packed_words import unpack_vocab
from embedclf.models.recipe import FEATURIZER_KEY, EmbeddingClassifierModule
from embedclf.models.specs import OPTIMIZER_MODULE, SCHEDULER_MODULE, spec_class
from embedclf.text.featurizer import TextFeaturizer
from embedclf.util.errors import CheckpointError, ConfigError

# where checkpoints written before the fixed key (commit e063a16) kept the featurizer
LEGACY_FEATURIZER_KEY = "TextFolderDataModule"
_last_read: tuple[tuple[int, ...], dict[str, Any]] | None = None


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
    if file.is_dir():
        raise CheckpointError(f"{setting}={text} is a directory; give the path of a .ckpt file")
    if not file.is_file():
        raise CheckpointError(f"{setting}={text} does not exist; give the path of a .ckpt file")
    try:
        checkpoint = _read(file)
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
    if isinstance(checkpoint, dict):
        upgrade(checkpoint)
        unpack_vocab(checkpoint.get(FEATURIZER_KEY), f"{setting}={text}")
    if not ours:  # Lightning's own files (ddp_spawn's weights handed back): read safely only
        return checkpoint
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{setting}={text} is not a Lightning checkpoint")
    if FEATURIZER_KEY not in checkpoint or "hyper_parameters" not in checkpoint:
        raise CheckpointError(
            f"{setting}={text} is not an embedclf checkpoint (it carries no text encoder); "
            "train one with python train.py"
        )
    _check_specs(checkpoint["hyper_parameters"], f"{setting}={text}")
    return checkpoint


def _read(file: Path) -> dict[str, Any]:
    """``torch.load`` of ``file``, or the same file's contents read last (unchanged since)."""
    global _last_read
    stat = file.stat()
    identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if _last_read is not None and _last_read[0] == identity:
        return _last_read[1]
    checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    _last_read = (identity, checkpoint)
    return checkpoint


def forget_reads() -> None:
    """Drop the checkpoint kept from the last read (a run calls this when it ends)."""
    global _last_read
    _last_read = None


def upgrade(checkpoint: dict[str, Any]) -> None:
    """Turn a checkpoint of commit e063a16's layout into today's, in place (else a no-op)."""
    legacy = checkpoint.get(LEGACY_FEATURIZER_KEY)
    if FEATURIZER_KEY not in checkpoint and isinstance(legacy, Mapping):
        checkpoint[FEATURIZER_KEY] = legacy.get("encoder")
    params = checkpoint.get("hyper_parameters")
    if isinstance(params, Mapping) and "net" not in params and "vocab_size" in params:
        checkpoint["hyper_parameters"] = legacy_params(params)
        state = checkpoint.get("state_dict")
        weight = state.pop("net.feature_weight", None) if isinstance(state, dict) else None
        if weight is not None and checkpoint["hyper_parameters"]["net"]["encoder"]["kind"] in (
            "bag",
            "weighted_mean",
        ):
            state["net.encoder.feature_weight"] = weight


def legacy_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Commit e063a16's flat module settings as today's ``net`` spec and recipe settings."""
    pooling = params.get("pooling", "flatten")
    bag = pooling in ("bag", "weighted_mean")
    encoder: dict[str, Any] = {"kind": pooling}
    if bag:
        encoder.update(weighting=params.get("feature_weighting", "none"))
        encoder.update(sif_a=params.get("sif_a", 1e-3))
    net = {
        "rows": params["vocab_size"],
        "seq_len": params["seq_len"],
        "classes": params["num_classes"],
        "embedding": {
            "dim": params.get("embedding_dim", 8),
            "freeze": params.get("freeze_embedding", False),
            "sparse": params.get("sparse", False),
        },
        "encoder": encoder,
        "head": {
            "hidden": list(params.get("hidden", [])),
            "dropout": params.get("dropout", 0.0),
            "standardize": params.get("standardize", False),
        },
        "init": "fasttext" if bag else ("keras" if params.get("keras_init", True) else "torch"),
    }
    return {
        "net": net,
        "optimizer": params.get("optimizer"),
        "scheduler": params.get("scheduler"),
        "head_l2": params.get("head_l2", 0.0),
    }


def _check_specs(params: Any, where: str) -> None:
    """A checkpoint may name only torch's optimiser and scheduler classes: it is data."""
    if not isinstance(params, Mapping):
        raise CheckpointError(f"{where} holds malformed hyperparameters")
    try:
        spec_class(params.get("optimizer"), OPTIMIZER_MODULE, torch.optim.Optimizer)
        if params.get("scheduler") is not None:
            spec_class(params["scheduler"], SCHEDULER_MODULE, torch.optim.lr_scheduler.LRScheduler)
    except ConfigError as err:
        raise CheckpointError(f"{where} is refused: its optimiser settings: {err}") from None


def featurizer_of(checkpoint: Mapping[str, Any], where: str) -> TextFeaturizer:
    return TextFeaturizer.from_state_dict(checkpoint.get(FEATURIZER_KEY), where)


def module_from_checkpoint(checkpoint: Mapping[str, Any], where: str) -> pl.LightningModule:
    """The trained module of a checkpoint, built from its hyperparameters (plain types,
    optimiser names checked when used), its weights loaded; in eval mode."""
    params = dict(checkpoint["hyper_parameters"])
    try:
        module = EmbeddingClassifierModule(**params)
        module.load_state_dict(checkpoint["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        reason = " ".join(str(err).split())[:160]
        raise CheckpointError(f"{where} does not fit this version's model ({reason})") from None
    module.featurizer = featurizer_of(checkpoint, where)
    check_parts(module, where)
    return module.eval()


def check_parts(module: EmbeddingClassifierModule, where: str) -> None:
    """A checkpoint's parts must agree: its featurizer with its network, and every weight
    finite. Checked once, at load, for every command that uses a checkpoint."""
    featurizer, net, spec = module.featurizer, module.net, module.hparams.net
    assert featurizer is not None
    problems = []
    if len(featurizer.vocab) < 2:
        problems.append("its vocabulary is empty")
    outputs = net.head[-1].out_features
    if outputs != (1 if len(featurizer.classes) == 2 else len(featurizer.classes)):
        problems.append(f"{len(featurizer.classes)} classes but a head of {outputs} outputs")
    if featurizer.input_size != net.embedding.num_embeddings:
        problems.append(
            f"{featurizer.input_size} feature ids but {net.embedding.num_embeddings} embedding rows"
        )
    if spec["encoder"]["kind"] == "flatten" and featurizer.maxlen != spec["seq_len"]:
        problems.append(f"maxlen {featurizer.maxlen} but a flatten model of {spec['seq_len']}")
    bad = next(
        (
            n
            for n, p in module.state_dict().items()
            if p.is_floating_point() and not torch.isfinite(p).all()
        ),
        None,
    )
    if bad is not None:
        problems.append(f"non-finite values in {bad}")
    if problems:
        raise CheckpointError(f"{where} is inconsistent: {'; '.join(problems)}")


def word_rows(
    checkpoint_path: str, setting: str = "checkpoint"
) -> tuple[list[str], np.ndarray, TextFeaturizer]:
    """The vocabulary without padding, its embedding rows (float32, row i = word i), and the
    checkpoint's featurizer."""
    checkpoint = load_checkpoint(checkpoint_path, setting)
    where = f"{setting}={checkpoint_path}"
    encoder = featurizer_of(checkpoint, where)
    module = module_from_checkpoint(checkpoint, where)
    weight = module.net.embedding.weight.detach().cpu().numpy()
    words = list(encoder.vocab)
    return words[1:], np.ascontiguousarray(weight[1 : len(words)], dtype=np.float32), encoder
