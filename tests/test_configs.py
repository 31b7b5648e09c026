"""The Hydra configs compose into what each experiment promises."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from conftest import REPO

EXPERIMENTS = ["seed_learned", "seed_glove", "seed_scratch"]


def cfg_for(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_seed_learned_matches_the_book():
    cfg = cfg_for("experiment=seed_learned")
    assert cfg.vectors is None
    assert (cfg.data.num_words, cfg.data.maxlen, cfg.data.padding, cfg.data.truncating) == (
        10000,
        20,
        "pre",
        "pre",
    )
    assert (cfg.data.train_samples, cfg.data.val_samples, cfg.data.batch_size) == (None, 0.2, 32)
    assert (cfg.model.embedding_dim, list(cfg.model.hidden)) == (8, [])
    assert (cfg.model.optimizer.alpha, cfg.model.optimizer.eps) == (0.9, 1e-7)
    assert cfg.trainer.max_epochs == 10


def test_seed_glove_and_scratch_differ_only_in_the_embedding():
    glove = cfg_for("experiment=seed_glove")
    scratch = cfg_for("experiment=seed_scratch")
    assert glove.vectors.name == "glove.6B.100d" and glove.vectors.dim == 100
    assert glove.model.freeze_embedding and not scratch.model.freeze_embedding
    assert scratch.vectors is None and scratch.model.embedding_dim == 100
    for cfg in (glove, scratch):
        assert (cfg.data.maxlen, cfg.data.train_samples, cfg.data.val_samples) == (100, 200, 10000)
        assert list(cfg.model.hidden) == [32]


@pytest.mark.parametrize(
    "vectors", ["glove_6b_50d", "glove_6b_100d", "glove_6b_200d", "glove_6b_300d"]
)
def test_vectors_group(vectors):
    cfg = cfg_for("experiment=seed_glove", f"vectors={vectors}")
    dim = int(vectors.split("_")[-1].removesuffix("d"))
    assert cfg.vectors.dim == dim and cfg.vectors.member == f"glove.6B.{dim}d.txt"
    assert cfg.vectors.urls[0].startswith("https://huggingface.co/")
    assert len(cfg.vectors.sha256) == 64


@pytest.mark.parametrize(
    "trainer,accelerator", [("cpu", "cpu"), ("gpu", "gpu"), ("ddp_sim", "cpu")]
)
def test_trainer_group(trainer, accelerator):
    cfg = cfg_for(f"trainer={trainer}")
    assert cfg.trainer.accelerator == accelerator


def test_run_dirs_are_sub_second_and_outputs_derive_from_the_run_dir():
    cfg = cfg_for()
    for pattern in (cfg.hydra.run.dir, cfg.hydra.sweep.dir):
        assert re.search(r"_\d\d-\d\d-\d\d-\d{6}$", pattern), pattern  # microseconds
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert raw["trainer"]["default_root_dir"] == "${paths.output_dir}"
    assert raw["callbacks"]["model_checkpoint"]["dirpath"].startswith("${paths.output_dir}")
    assert raw["logger"]["tensorboard"]["save_dir"] == "${paths.output_dir}"


def test_seed_drives_the_split():
    cfg = cfg_for("experiment=seed_glove", "seed=7")
    assert cfg.data.split_seed == 7


def test_bag_experiments_change_only_what_they_say():
    learned, seed = cfg_for("experiment=bag_learned"), cfg_for("experiment=seed_learned")
    assert (learned.model.pooling, learned.data.maxlen, learned.data.num_words) == (
        "mean",
        400,
        20000,
    )
    assert (learned.data.val_samples, learned.trainer.max_epochs) == (
        seed.data.val_samples,
        seed.trainer.max_epochs,
    )
    glove = cfg_for("experiment=bag_glove")
    assert glove.model.pooling == "mean" and glove.model.freeze_embedding
    assert (glove.data.train_samples, glove.data.val_samples) == (200, 10000)
