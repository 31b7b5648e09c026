"""In-domain word vectors: ``python -m embedclf.pretrain [overrides]``.

word2vec (gensim) on the configured dataset's unlabelled and training reviews, never its test
reviews, cached by dataset, tokeniser rules and every setting (``embedclf/vectors/indomain.py``);
prints the vectors file. ``gensim`` is an optional extra: ``make install-pretrain``::

    python -m embedclf.pretrain                      # vectors=indomain on the configured data
    python -m embedclf.pretrain vectors.pretrain.epochs=10 data.root=DIR
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from embedclf.runs import rundir  # noqa: F401  (registers ${embedclf.run_id:}, the run dir)
from embedclf.training.build import for_config
from embedclf.util.cli import hydra_task, run_hydra
from embedclf.util.errors import ConfigError


@hydra.main(version_base="1.3", config_path="../conf", config_name="pretrain")
@hydra_task
def main(cfg: DictConfig) -> None:
    if not (cfg.get("vectors") and cfg.vectors.get("pretrain")):
        raise ConfigError("vectors has no pretrain settings; use vectors=indomain")
    from hydra.utils import instantiate

    path = for_config(cfg, instantiate(cfg.data))
    print(path)


if __name__ == "__main__":
    run_hydra(main)
