"""Train an embedding text classifier: ``python train.py experiment=seed_learned``.

Every setting is a Hydra override (``data.maxlen=100``, ``trainer=gpu``, ``seed=1``); ``-m``
sweeps comma-separated values. Each run writes checkpoints, TensorBoard logs and
``metrics.json`` into its run directory (``hydra.run.dir``).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from embedclf.sources import USER_ERRORS
from embedclf.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        metrics = train(cfg)
    except USER_ERRORS as err:  # bad input: one clear line, not a traceback
        raise SystemExit(f"error: {err}") from None
    return metrics["val_acc"]  # the value a hyperparameter sweeper optimises


if __name__ == "__main__":
    main()
