"""Train an embedding text classifier: ``python train.py experiment=seed_learned``.

Every setting is a Hydra override (``data.maxlen=100``, ``trainer=gpu``, ``seed=1``); ``-m``
sweeps comma-separated values. Each run writes checkpoints, TensorBoard logs, ``curves.png``
and ``metrics.json`` into its run directory (``hydra.run.dir``).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from embedclf.runs import rundir, sweeps  # noqa: F401  (register the run and job dir resolvers)
from embedclf.util.cli import hydra_task, run_hydra


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@hydra_task
def main(cfg: DictConfig) -> float | None:
    from embedclf.data.storebuild import start_building
    from embedclf.util.startup import quick_imports

    # a first run reads and tokenises the reviews in a child process while this one loads
    # torch and Lightning (imported here, not above: --help and config errors stay fast)
    start_building(cfg.data)
    with quick_imports():
        from embedclf.training.run import train

    metrics = train(cfg)
    # the value a hyperparameter sweeper optimises (NaN: no validation split to judge by)
    return metrics["val_acc"] if metrics["val_acc"] is not None else float("nan")


if __name__ == "__main__":
    run_hydra(main)
