"""Checkpoints written by commit e063a16 (flat layout, featurizer under the data module's class
name) still load, predict the same probabilities, evaluate and resume with today's code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import compose_cfg, train_in_process, write_tree
from embedclf import evaluate as evaluate_cmd
from embedclf.models.checkpoint import LEGACY_FEATURIZER_KEY, featurizer_of, load_checkpoint
from embedclf.models.recipe import FEATURIZER_KEY
from embedclf.predict import Predictor

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_e063a16"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
KINDS = ("flatten", "ngram", "pooled")


@pytest.fixture(scope="module")
def legacy_tree(tmp_path_factory) -> Path:
    """The reviews the fixtures were trained on (conftest.write_tree's defaults)."""
    return write_tree(tmp_path_factory.mktemp("legacy") / "aclImdb")


def copy(kind: str, tmp_path: Path) -> Path:
    """A writable copy: the fixture itself must never change."""
    return Path(shutil.copy(FIXTURES / f"{kind}.ckpt", tmp_path / f"{kind}.ckpt"))


@pytest.mark.parametrize("kind", KINDS)
def test_old_checkpoint_predicts_the_same_probabilities(kind, tmp_path):
    raw = torch.load(FIXTURES / f"{kind}.ckpt", weights_only=True)
    assert LEGACY_FEATURIZER_KEY in raw and "net" not in raw["hyper_parameters"]  # truly old
    probs = Predictor(copy(kind, tmp_path)).probabilities(EXPECTED["texts"])
    np.testing.assert_allclose(probs.numpy(), EXPECTED[kind]["probs"], rtol=0, atol=1e-6)


def test_old_checkpoint_is_read_into_todays_layout(tmp_path):
    checkpoint = load_checkpoint(copy("ngram", tmp_path))
    net = checkpoint["hyper_parameters"]["net"]
    assert net["encoder"] == {"kind": "bag", "weighting": "nb", "sif_a": 0.001}
    assert net["init"] == "fasttext" and net["embedding"]["sparse"] is True
    state = checkpoint["state_dict"]
    assert "net.encoder.feature_weight" in state and "net.feature_weight" not in state
    assert featurizer_of(checkpoint, "old").ngrams == 2
    assert checkpoint[FEATURIZER_KEY] == checkpoint[LEGACY_FEATURIZER_KEY]["encoder"]


@pytest.mark.parametrize("kind", ("flatten", "ngram"))
def test_old_checkpoint_evaluates_to_its_runs_test_accuracy(kind, dirs, legacy_tree, tmp_path):
    cfg = compose_cfg(
        f"ckpt={copy(kind, tmp_path)}",
        f"data.root={legacy_tree}",
        "trainer.enable_progress_bar=false",
        output_dir=tmp_path / "eval",
        config="evaluate",
    )
    metrics = evaluate_cmd.evaluate(cfg)
    assert metrics["test_acc"] == pytest.approx(EXPECTED[kind]["test_acc"], abs=1e-6)
    assert metrics["test_samples"] == 80


def test_old_checkpoint_resumes(dirs, legacy_tree, tmp_path):
    old = copy("flatten", tmp_path)
    assert torch.load(old, weights_only=True)["epoch"] == 2  # 3 epochs were trained
    overrides = EXPECTED["overrides"]["flatten"]
    resumed = train_in_process(
        dirs["run"] / "resumed",
        f"data.root={legacy_tree}",
        *overrides,
        "trainer.max_epochs=5",
        f"resume={old}",
    )
    assert resumed["epochs"] == 5
    last = torch.load(dirs["run"] / "resumed/checkpoints/last.ckpt", weights_only=True)
    assert last["epoch"] == 4 and FEATURIZER_KEY in last and LEGACY_FEATURIZER_KEY not in last
    assert "net" in last["hyper_parameters"]
