"""Fetch and prepare the data and vectors of a configuration, without training.

    python -m embedclf.prepare experiment=seed_glove

takes the same overrides as ``train.py``. Run it once before a cluster job so that no worker
downloads, extracts or tokenises anything: they all find the caches ready.
"""

from __future__ import annotations

import logging
import time

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from embedclf.sources import USER_ERRORS
from embedclf.training import pretrained_embedding

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig) -> dict[str, float]:
    started = time.perf_counter()
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    report = {f"{split}_samples": n for split, n in datamodule.sizes().items()}
    report["vocab_size"] = datamodule.vocab_size
    if cfg.get("vectors"):
        _, coverage = pretrained_embedding(cfg, datamodule)
        report["vectors_coverage"] = coverage.vocab_share
    report["seconds"] = round(time.perf_counter() - started, 3)
    log.info("prepared: %s", report)
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        prepare(cfg)
    except USER_ERRORS as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
