"""Fetch and prepare the data and vectors of a configuration, without training.

    python -m embedclf.prepare experiment=seed_glove

takes the same overrides as ``train.py``. Run it once before a cluster job so that no worker
downloads, reads or tokenises anything: they all find the caches ready.
"""

from __future__ import annotations

import logging
import time

import hydra
from omegaconf import DictConfig

from embedclf.runs import rundir  # noqa: F401  (registers ${embedclf.run_id:}, the run dir)
from embedclf.training.build import build_datamodule, pretrained_embedding
from embedclf.training.checks import check_config
from embedclf.util.cli import hydra_task, run_hydra

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig) -> dict[str, float]:
    check_config(cfg)
    started = time.perf_counter()
    datamodule = build_datamodule(cfg)
    report: dict[str, float] = {f"{s}_samples": n for s, n in datamodule.sizes().items()}
    report["vocab_size"] = datamodule.vocab_size
    if cfg.get("vectors"):
        _, coverage = pretrained_embedding(cfg, datamodule)
        report["vectors_coverage"] = coverage.vocab_share
    report["seconds"] = round(time.perf_counter() - started, 3)
    log.info("prepared: %s", report)
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@hydra_task
def main(cfg: DictConfig) -> None:
    prepare(cfg)


if __name__ == "__main__":
    run_hydra(main)
