"""What a run leaves for people to look at: the HPARAMS row (settings and final metrics),
vector coverage, the embedding projector and ``curves.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from embedclf.runs.plots import plot_curves
from embedclf.runs.sweeps import SweepPlan
from embedclf.vectors.coverage import Coverage

HPARAM_METRICS = ("val_acc", "test_acc", "val_loss", "test_loss", "fit_seconds")


# data settings that are plumbing, not choices: they would crowd the HPARAMS table
DATA_PLUMBING = (
    "urls",
    "sha256",
    "md5",
    "download",
    "filters",
    "cache_dir",
    "data_dir",
    "archive",
    "num_workers",
)
DATA_FILES = ("root", "train", "val", "test")  # shown by their names, not their whole paths


def _vectors_shown(cfg: DictConfig) -> str:
    """The vectors' name, and the files ``vectors.concat`` puts beside them by file name."""
    v = cfg.get("vectors")
    if not v:
        return "none"
    return " + ".join([str(v.name), *(Path(str(c)).name for c in v.get("concat") or [])])


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The run's settings as TensorBoard's HPARAMS tab shows them: one column per leaf.

    The settings a user chose, not plumbing: no ``_target_`` (an optimiser shows as its class
    name), no cache or data directories, URLs or checksums, and data files by name only. What
    the sweep varies comes first (the seed included), so a sweep's columns lead the table.
    """
    data = {k: v for k, v in cfg.data.items() if k not in DATA_PLUMBING}
    for key in DATA_FILES:
        if data.get(key):
            data[key] = "/".join(Path(str(data[key])).parts[-2:])  # sst2/train.tsv
    chosen = {
        "experiment": cfg.task_name,
        "seed": cfg.seed,
        "vectors": _vectors_shown(cfg),
        "data": data,
        "model": cfg.model,
        "trainer": {k: v for k, v in cfg.trainer.items() if k != "default_root_dir"},
    }
    container = OmegaConf.to_container(OmegaConf.create(chosen), resolve=True)
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            if prefix and isinstance(value.get("_target_"), str) and "optimizer" in prefix:
                flat[prefix] = value["_target_"].rpartition(".")[2]  # RMSprop, not a path
            elif prefix.endswith("scheduler") and isinstance(value.get("_target_"), str):
                flat[prefix] = value["_target_"].rpartition(".")[2]
            for key, item in value.items():
                if not str(key).startswith("_"):
                    walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif value is None or isinstance(value, list):
            flat[prefix] = str(value)
        else:
            flat[prefix] = value

    walk("", container)
    plan = SweepPlan.from_env()
    swept = [k for k in (plan.keys if plan else ()) if k in flat]
    return {k: flat[k] for k in swept} | {k: v for k, v in flat.items() if k not in swept}


def report_coverage(trainer: pl.Trainer, coverage: Coverage) -> None:
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


def report_run(cfg: DictConfig, trainer: pl.Trainer, model, datamodule, metrics) -> None:
    """What a user looks at after a run: HPARAMS with final metrics, the projector, curves."""
    finals = {f"hp/{k}": metrics[k] for k in HPARAM_METRICS if metrics.get(k) is not None}
    for logger in trainer.loggers:
        logger.log_hyperparams(flat_hparams(cfg), finals)
        experiment = getattr(logger, "experiment", None)
        words = int(cfg.get("projector_words", 0) or 0)
        if words and hasattr(experiment, "add_embedding"):
            vocab = datamodule.featurizer.vocab[1 : words + 1]
            weights = model.net.embedding.weight.detach().cpu()[1 : len(vocab) + 1]
            experiment.add_embedding(weights, metadata=vocab, tag="embedding")
        logger.finalize("success")
    if cfg.get("plot_curves", True) and model.history:
        plot_curves(model.history, Path(cfg.paths.output_dir) / "curves.png")
