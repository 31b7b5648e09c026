"""train.py end to end, as a user runs it: small generated data, then the real archive."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import REAL_ARCHIVE, REAL_GLOVE_50D, run_script
from embedclf.module import EmbeddingClassifierModule

SMALL = [
    "data.num_words=60",
    "data.maxlen=40",
    "data.batch_size=8",
    "trainer.max_epochs=3",
    "model.optimizer.lr=0.01",
]


def scalars(run_dir: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def train_ok(args: list[str], dirs, **kwargs):
    result = run_script(args, dirs, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_train_small_learned_run_writes_metrics_tensorboard_and_checkpoints(dirs, tiny_archive):
    shutil.copy(tiny_archive, dirs["data"])
    run = dirs["run"] / "learned"
    train_ok(["experiment=seed_learned", *SMALL, f"hydra.run.dir={run}"], dirs)

    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "val_acc",
        "val_loss",
        "test_acc",
        "test_loss",
        "epochs",
        "train_samples",
        "fit_seconds",
    ):
        assert key in metrics, key
    assert metrics["epochs"] == 3 and metrics["train_samples"] == 64  # 80 - 20% validation
    assert metrics["test_acc"] > 0.6  # the generated reviews carry obvious cue words

    curves = scalars(run)
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert len(curves[tag]) == 3, (tag, curves.get(tag), curves.keys())  # one per epoch
    assert curves["train/loss"][2] < curves["train/loss"][0]
    # last.ckpt holds the final epoch's weights whether or not that epoch was the best
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 2 and last["global_step"] == 3 * 8  # 64 samples / batch 8
    assert metrics["checkpoint"] == str(run / "checkpoints" / "last.ckpt")
    assert len(list((run / "checkpoints").glob("best_epoch_*.ckpt"))) == 1
    assert (run / ".hydra" / "config.yaml").is_file()

    # the reported test score is the saved weights' score
    module = EmbeddingClassifierModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    from embedclf.datamodule import TextFolderDataModule

    dm = TextFolderDataModule(num_words=60, maxlen=40, batch_size=8)
    dm.prepare_data()
    dm.setup("test")
    module.eval()
    with torch.no_grad():
        logits = module(dm.data["test"].ids)
    acc = ((logits > 0).long() == dm.data["test"].labels).float().mean().item()
    assert acc == pytest.approx(metrics["test_acc"], abs=1e-6)


def test_train_small_glove_run_reports_coverage(dirs, tiny_tree, tmp_path):
    vectors = tmp_path / "vecs.txt"
    words = ["the", "movie", "good", "bad", "great", "awful", "plot"]
    vectors.write_text("".join(f"{w} {i}.5 -{i}.25 0.0\n" for i, w in enumerate(words)))
    run = dirs["run"] / "glove"
    train_ok(
        [
            "experiment=seed_glove",
            *SMALL,
            f"data.root={tiny_tree}",
            "data.train_samples=40",
            "data.val_samples=20",
            f"vectors.path={vectors}",
            "vectors.dim=3",
            f"hydra.run.dir={run}",
        ],
        dirs,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["vectors_coverage"] < 1
    assert metrics["train_samples"] == 40
    assert "vectors/vocab_coverage" in scalars(run)
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    embedding = state["net.embedding.weight"]
    assert embedding.shape[1] == 3
    # the frozen rows are the vectors' rows: some row equals a GloVe vector exactly
    assert any(torch.equal(row, torch.tensor([2.5, -2.25, 0.0])) for row in embedding)


def test_multirun_sweeps_seeds_into_separate_dirs(dirs, tiny_tree):
    sweep = dirs["run"] / "sweep"
    train_ok(
        [
            "-m",
            "experiment=seed_learned",
            *SMALL,
            "trainer.max_epochs=1",
            f"data.root={tiny_tree}",
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
        ],
        dirs,
    )
    results = [json.loads((sweep / str(i) / "metrics.json").read_text()) for i in (0, 1)]
    assert [r["seed"] for r in results] == [0, 1]
    assert all((sweep / str(i) / "tensorboard").is_dir() for i in (0, 1))


def test_ddp_sim_two_cpu_processes(dirs, tiny_tree):
    run = dirs["run"] / "ddp"
    train_ok(
        [
            "experiment=seed_learned",
            *SMALL,
            "trainer.max_epochs=1",
            "trainer=ddp_sim",
            f"data.root={tiny_tree}",
            f"hydra.run.dir={run}",
        ],
        dirs,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test_acc"] <= 1
    assert metrics["epochs"] == 1  # counted in the spawned rank, read back from last.ckpt
    # one run dir only: the spawned rank did not start a Hydra run of its own
    assert sorted(p.name for p in dirs["run"].iterdir()) == ["ddp"]


def test_resume_from_last_checkpoint_continues_training(dirs, tiny_tree):
    first = dirs["run"] / "first"
    train_ok(
        [
            "experiment=seed_learned",
            *SMALL,
            "trainer.max_epochs=2",
            f"data.root={tiny_tree}",
            "ckpt_path=best",
            f"hydra.run.dir={first}",
        ],
        dirs,
    )
    # ckpt_path=best scores the best epoch's checkpoint, kept beside last.ckpt
    metrics = json.loads((first / "metrics.json").read_text())
    assert Path(metrics["checkpoint"]).name.startswith("best_epoch_")
    assert metrics["val_acc"] == pytest.approx(metrics["val_acc_best"], abs=1e-6)
    second = dirs["run"] / "second"
    train_ok(
        [
            "experiment=seed_learned",
            *SMALL,
            "trainer.max_epochs=4",
            f"data.root={tiny_tree}",
            f"resume={first}/checkpoints/last.ckpt",
            f"hydra.run.dir={second}",
        ],
        dirs,
    )
    assert json.loads((second / "metrics.json").read_text())["epochs"] == 4


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "data.root=/nonexistent/reviews",
            "data.root=/nonexistent/reviews is not a dataset folder",
        ),
        ("vectors.path=/nonexistent/vecs.txt", "vectors.path=/nonexistent/vecs.txt does not exist"),
    ],
)
def test_bad_input_is_one_clear_line(dirs, tiny_tree, override, message):
    args = ["experiment=seed_glove", f"hydra.run.dir={dirs['run']}/bad", override]
    if not override.startswith("data.root"):
        args += [f"data.root={tiny_tree}", "data.train_samples=40", "data.val_samples=20"]
    result = run_script(args, dirs)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in result.stderr


# -- the real archive -------------------------------------------------------------------
real = pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason=f"{REAL_ARCHIVE} not present")


@pytest.mark.slow
@real
def test_real_seed_learned_reaches_the_books_accuracy(dirs):
    shutil.copy(REAL_ARCHIVE, dirs["data"])  # a user's own (repacked) archive
    run = dirs["run"] / "real"
    train_ok(["experiment=seed_learned", "seed=0", f"hydra.run.dir={run}"], dirs)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_samples"] == 20000 and metrics["val_samples"] == 5000
    assert metrics["test_samples"] == 25000 and metrics["epochs"] == 10
    assert metrics["val_acc"] >= 0.74 and metrics["test_acc"] >= 0.74, metrics


@pytest.mark.slow
@real
@pytest.mark.skipif(not REAL_GLOVE_50D.exists(), reason=f"{REAL_GLOVE_50D} not present")
def test_real_glove_beats_scratch_over_three_seeds(dirs):
    for source in (REAL_ARCHIVE, REAL_GLOVE_50D):
        (dirs["data"] / source.name).symlink_to(source)
    scores = {}
    # the same model with and without the 50-d vectors
    for experiment, choice in (
        ("seed_glove", "vectors=glove_6b_50d"),
        ("seed_scratch", "model.embedding_dim=50"),
    ):
        sweep = dirs["run"] / experiment
        train_ok(
            ["-m", f"experiment={experiment}", choice, "seed=0,1,2", f"hydra.sweep.dir={sweep}"],
            dirs,
        )
        runs = [json.loads((sweep / str(i) / "metrics.json").read_text()) for i in range(3)]
        scores[experiment] = sum(r["test_acc"] for r in runs) / 3
        if experiment == "seed_glove":
            assert all(r["train_samples"] == 200 and r["val_samples"] == 10000 for r in runs)
            assert all(r["vectors_coverage"] > 0.9 for r in runs)
    assert scores["seed_glove"] >= 0.55, scores
    assert scores["seed_glove"] > scores["seed_scratch"], scores
