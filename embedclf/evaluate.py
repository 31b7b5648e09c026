"""Score a checkpoint on a dataset's test split: ``python -m embedclf.evaluate ckpt=PATH``.

The lightning-hydra-template's ``eval.py``: the configured dataset (aclImdb by default, or
``data.root=DIR``, any folder with the checkpoint's classes) is tokenised with the
checkpoint's own featurizer, never a vocabulary refitted on the new data, so the ids the model
sees mean what they meant in training. Only the test split is scored, so the data config's
train/validation split settings are set aside: a small dataset cannot fail on them.

Writes ``metrics.json`` (``test_acc``, ``test_loss``, ``test_samples``, ``checkpoint``) and
TensorBoard logs into the run directory (``outputs/evaluate/runs/...``, or ``hydra.run.dir``);
``-m ckpt=a.ckpt,b.ckpt`` scores several checkpoints in one sweep with a summary at the end.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from embedclf.runs import rundir  # noqa: F401  (registers ${embedclf.run_id:}, the run dir)
from embedclf.util.cli import hydra_task, run_hydra
from embedclf.util.errors import ConfigError
from embedclf.util.fileio import atomic_write_json
from embedclf.util.startup import quick_imports

log = logging.getLogger(__name__)


def evaluation_config(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` whose data keeps every training review in "train" and holds none
    out: the split is irrelevant to the test score and must not fail on a small dataset."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.data.train_samples = None
        cfg.data.val_samples = 0
    return cfg


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test loss, accuracy and count of ``cfg.ckpt`` on ``cfg.data``'s test split."""
    # lazy: torch and Lightning load here (under quick_imports in main), not for --help
    import pytorch_lightning as pl

    from embedclf.models.checkpoint import featurizer_of, load_checkpoint, module_from_checkpoint
    from embedclf.training.build import build_datamodule, build_trainer
    from embedclf.training.scoring import score

    if OmegaConf.is_missing(cfg, "ckpt") or cfg.ckpt in (None, ""):
        raise ConfigError("ckpt is required: ckpt=outputs/.../checkpoints/last.ckpt")
    path = str(cfg.ckpt)
    checkpoint = load_checkpoint(path, "ckpt")  # before any data is read: fail fast
    where = f"ckpt={path}"
    featurizer = featurizer_of(checkpoint, where)
    module = module_from_checkpoint(checkpoint, where)
    del checkpoint
    pl.seed_everything(cfg.get("seed", 0), verbose=False)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    cfg = evaluation_config(cfg)
    datamodule = build_datamodule(cfg, featurizer=featurizer)
    # no checkpoint callbacks: nothing is saved, and no training callback state is restored
    trainer = build_trainer(cfg, validation=False, enable_checkpointing=False)
    # the module already holds the checkpoint's weights: no second load (and no warning that
    # the training run's checkpoint callbacks are absent)
    scores = score(trainer, module, datamodule, None, splits=("test",))
    metrics: dict[str, Any] = {**scores, "checkpoint": str(Path(path).expanduser().resolve())}
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", metrics)
        for logger in trainer.loggers:
            logger.finalize("success")
        log.info("metrics: %s", json.dumps(metrics))
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@hydra_task
def main(cfg: DictConfig) -> float | None:
    with quick_imports():  # torch and Lightning, with the collector paused
        import embedclf.training.build  # noqa: F401
    return evaluate(cfg)["test_acc"]


if __name__ == "__main__":
    run_hydra(main)
