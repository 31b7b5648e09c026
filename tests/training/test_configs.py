"""Every option of every config group composes and instantiates into working objects."""

from __future__ import annotations

import re

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import REPO, compose_cfg
from embedclf.data.datamodule import TextFolderDataModule
from embedclf.models.recipe import EmbeddingClassifierModule
from embedclf.training.build import build_trainer, net_spec
from embedclf.training.checks import check_config
from embedclf.util.errors import ConfigError

CONF = REPO / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


EXPERIMENTS = options("experiment")
GLOVE = [name for name in options("vectors") if name.startswith("glove_6b_")]


def build_module(cfg, vocab_size: int = 100) -> EmbeddingClassifierModule:
    dim = cfg.vectors.dim if cfg.get("vectors") else None
    net = net_spec(cfg, rows=vocab_size, seq_len=cfg.data.maxlen, classes=2, dim=dim)
    return instantiate(cfg.model, net=net)


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_every_group_has_the_options_the_readme_names():
    assert {"cpu", "gpu", "ddp", "ddp_spawn", "ddp_sim"} <= set(options("trainer"))
    assert {"fdr", "limit"} <= set(options("debug"))
    assert {"seed_learned", "seed_glove", "seed_scratch"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_checks_and_instantiates(experiment, tmp_path):
    cfg = compose_cfg(f"experiment={experiment}", output_dir=tmp_path)
    check_config(cfg)
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule, TextFolderDataModule)
    assert datamodule.hparams.maxlen == cfg.data.maxlen
    assert datamodule.hparams.split_seed == cfg.seed
    module = build_module(cfg)
    assert isinstance(module, EmbeddingClassifierModule)
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.Optimizer)
    frozen = bool(cfg.model.net.embedding.freeze)
    assert module.net.embedding.weight.requires_grad is not frozen
    # the module's hyperparameters are plain types: its checkpoint loads with weights_only
    assert OmegaConf.is_config(module.hparams.optimizer) is False


def test_book_experiments_have_the_books_parameter_counts(tmp_path):
    """Keras's model.summary() in listings 6.7 and 6.13: 80,161 and 1,320,065 parameters."""
    learned = compose_cfg("experiment=seed_learned", output_dir=tmp_path)
    assert parameters(build_module(learned, vocab_size=10000)) == 80_161
    glove = compose_cfg("experiment=seed_glove", output_dir=tmp_path)
    module = build_module(glove, vocab_size=10000)
    assert parameters(module) == 1_320_065
    assert sum(p.numel() for p in module.parameters() if p.requires_grad) == 320_065


@pytest.mark.parametrize("trainer", ["cpu", "ddp_sim"])
def test_cpu_trainers_instantiate(trainer, tmp_path):
    cfg = compose_cfg(f"trainer={trainer}", output_dir=tmp_path)
    built = build_trainer(cfg)
    assert isinstance(built, pl.Trainer)
    assert built.num_devices == cfg.trainer.devices
    assert built.default_root_dir == str(tmp_path)
    # the two checkpoints: best by validation accuracy, and the last epoch's weights
    monitors = sorted(str(c.monitor) for c in built.checkpoint_callbacks)
    assert monitors == ["None", "val/acc"]
    assert all(c.dirpath == str(tmp_path / "checkpoints") for c in built.checkpoint_callbacks)
    [logger] = built.loggers
    assert logger.log_dir.startswith(str(tmp_path))


@pytest.mark.parametrize("trainer", ["gpu", "gpu_amp", "ddp", "ddp_spawn"])
def test_gpu_trainers_compose(trainer, tmp_path):
    cfg = compose_cfg(f"trainer={trainer}", output_dir=tmp_path)
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer._target_ == "pytorch_lightning.Trainer"
    if not torch.cuda.is_available():  # refused at once, in one line, not by Lightning
        with pytest.raises(ConfigError, match="needs a CUDA GPU and torch sees none"):
            check_config(cfg)
        return
    check_config(cfg)
    if torch.cuda.device_count() >= cfg.trainer.devices:
        assert isinstance(build_trainer(cfg), pl.Trainer)


@pytest.mark.parametrize("debug", options("debug"))
def test_debug_options_shrink_the_run(debug, tmp_path):
    built = build_trainer(compose_cfg(f"debug={debug}", output_dir=tmp_path))
    if debug == "fdr":
        assert built.fast_dev_run
    else:
        assert built.max_epochs == 1 and built.limit_train_batches < 10
        assert built.limit_test_batches < 10


def test_no_validation_drops_the_best_checkpoint(tmp_path):
    cfg = compose_cfg("data.val_samples=0", output_dir=tmp_path)
    built = build_trainer(cfg, validation=False)
    assert [c.monitor for c in built.checkpoint_callbacks] == [None]
    assert built.limit_val_batches == 0


def test_progress_bar_off_removes_the_callback(tmp_path):
    cfg = compose_cfg("trainer.enable_progress_bar=false", output_dir=tmp_path)
    assert build_trainer(cfg).progress_bar_callback is None


@pytest.mark.parametrize("vectors", [n for n in options("vectors") if n != "glove_6b"])
def test_every_vectors_option_composes_and_sizes_the_embedding(vectors, tmp_path):
    cfg = compose_cfg("experiment=seed_glove", f"vectors={vectors}", output_dir=tmp_path)
    check_config(cfg)
    assert cfg.vectors.name and cfg.vectors.dim >= 1
    assert build_module(cfg).net.embedding.weight.shape[1] == cfg.vectors.dim


@pytest.mark.parametrize("vectors", GLOVE)
def test_glove_options_name_their_files_consistently(vectors, tmp_path):
    cfg = compose_cfg("experiment=seed_glove", f"vectors={vectors}", output_dir=tmp_path)
    dim = int(vectors.split("_")[-1].removesuffix("d"))
    assert cfg.vectors.dim == dim and cfg.vectors.name == f"glove.6B.{dim}d"
    assert cfg.vectors.member == f"glove.6B.{dim}d.txt"
    assert f"glove.6B.{dim}d.zip" in cfg.vectors.files
    assert len(cfg.vectors.sha256) == 64


def test_run_dirs_are_sub_second_and_outputs_derive_from_the_run_dir():
    cfg = compose_cfg()
    for pattern in (cfg.hydra.run.dir, cfg.hydra.sweep.dir):
        assert re.search(r"_\d\d-\d\d-\d\d-\d{6}$", pattern), pattern  # microseconds
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert raw["trainer"]["default_root_dir"] == "${paths.output_dir}"
    assert raw["callbacks"]["model_checkpoint"]["dirpath"].startswith("${paths.output_dir}")
    assert raw["logger"]["tensorboard"]["save_dir"] == "${paths.output_dir}"


@pytest.mark.parametrize(
    ("search", "experiment"), [("optuna", "bag_learned"), ("sentence", "sentence_rnn")]
)
def test_every_search_sweeps_settings_its_experiment_has(search, experiment, tmp_path):
    """A search that names a setting the config lacks would only fail at its first trial."""
    assert {"optuna", "sentence"} == set(options("hparams_search"))
    cfg = compose_cfg(f"hparams_search={search}", f"experiment={experiment}", output_dir=tmp_path)
    params = cfg.hydra.sweeper.params
    assert params and cfg.hydra.sweeper.direction == "maximize"
    for key in params:
        assert OmegaConf.select(cfg, key, default="missing") != "missing", key
