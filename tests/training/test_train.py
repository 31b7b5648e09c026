"""Training end to end: mostly in-process (compose + ``train(cfg)``), a few runs of ``train.py``
as a user types them (a run, a multirun, DDP on two CPU processes, a one-line error)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import (
    REAL_ARCHIVE,
    REAL_GLOVE_50D,
    SMALL,
    compose_cfg,
    glove_overrides,
    run_script,
    train_in_process,
    write_tree,
)
from embedclf.data.readers.folder import read_dataset
from embedclf.models.checkpoint import featurizer_of, load_checkpoint, module_from_checkpoint
from embedclf.training.build import build_datamodule
from embedclf.util.errors import UserError

TIMING = ("fit_seconds", "prepare_seconds", "checkpoint")


def optimizer_updates(checkpoint: dict) -> int:
    """The updates the optimiser made, from its saved state (RMSprop counts them per tensor)."""
    return int(checkpoint["optimizer_states"][0]["state"][0]["step"])


def scalars(run_dir: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def train_ok(args: list[str], dirs, **kwargs):
    result = run_script(args, dirs, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def checkpoint_accuracy(ckpt: Path, dataset: Path) -> float:
    """Test accuracy of a checkpoint on raw test texts, through the encoder it carries."""
    checkpoint = load_checkpoint(ckpt)
    encoder = featurizer_of(checkpoint, str(ckpt))
    module = module_from_checkpoint(checkpoint, str(ckpt))
    texts, _ = read_dataset(dataset)
    with torch.no_grad():
        ids = torch.from_numpy(encoder.encode(texts.texts["test"]))
        probabilities = module.probabilities(module(ids))
    predicted = probabilities.argmax(-1).numpy()
    return float((predicted == texts.labels["test"]).mean())


def without_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING}


# -- the command line ----------------------------------------------------------------------
def test_train_small_learned_run_writes_metrics_tensorboard_and_checkpoints(dirs, tiny_archive):
    shutil.copy(tiny_archive, dirs["data"])
    run = dirs["run"] / "learned"
    train_ok(["experiment=seed_learned", *SMALL, f"hydra.run.dir={run}"], dirs)

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["train_samples"] == 64  # 80 - 20% validation
    assert metrics["val_samples"] == 16 and metrics["test_samples"] == 80
    assert metrics["test_acc"] > 0.6  # the generated reviews carry obvious cue words

    curves = scalars(run)
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert len(curves[tag]) == 3, (tag, curves.get(tag), curves.keys())  # one per epoch
    assert curves["train/loss"][2] < curves["train/loss"][0]
    # last.ckpt holds the final epoch's weights whether or not that epoch was the best
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    # 64 samples / batch 8: 8 updates per epoch, in one Lightning step (data.steps_per_call=25)
    assert last["epoch"] == 2 and last["global_step"] == 3 and optimizer_updates(last) == 3 * 8
    assert metrics["checkpoint"] == str(run / "checkpoints" / "last.ckpt")
    assert len(list((run / "checkpoints").glob("best_epoch_*.ckpt"))) == 1
    assert (run / ".hydra" / "config.yaml").is_file()
    # the reported test score is the saved weights' score on the raw texts, through the
    # encoder the checkpoint carries (no datamodule, no token cache)
    tree = write_tree(dirs["run"] / "aclImdb")  # the archive's texts, as a folder
    assert checkpoint_accuracy(run / "checkpoints" / "last.ckpt", tree) == pytest.approx(
        metrics["test_acc"], abs=1e-6
    )


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
    found = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    results = [json.loads((d / "metrics.json").read_text()) for d in found]
    assert sorted(r["seed"] for r in results) == [0, 1]
    assert all((d / "tensorboard").is_dir() for d in found)


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
    # the ranks share the scoring: every review is scored, and counted, once
    assert metrics["test_samples"] == 80 and metrics["val_samples"] == 16
    assert metrics["epochs"] == 1  # counted in the spawned rank, read back from last.ckpt
    # each rank took half the training rows: 64 / 2 ranks / batch 8 = 4 optimiser steps
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    # one run dir only: the spawned rank did not start a Hydra run of its own
    assert sorted(p.name for p in dirs["run"].iterdir()) == ["ddp"]


def test_bad_input_is_one_clear_line(dirs):
    result = run_script(
        ["experiment=seed_learned", f"hydra.run.dir={dirs['run']}/bad", "data.root=/nonexistent"],
        dirs,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data.root=/nonexistent is not a dataset folder")
    assert "Traceback" not in result.stderr


# -- in-process -----------------------------------------------------------------------------
def test_glove_run_reports_coverage_and_keeps_frozen_rows(dirs, tiny_tree, tmp_path):
    vectors = tmp_path / "vecs.txt"
    words = ["the", "movie", "good", "bad", "great", "awful", "plot"]
    vectors.write_text("".join(f"{w} {i}.5 -{i}.25 0.0\n" for i, w in enumerate(words)))
    run = dirs["run"] / "glove"
    metrics = train_in_process(
        run,
        *glove_overrides(tiny_tree, vectors),
        "vectors.dim=3",
        quiet=False,
    )
    assert json.loads((run / "metrics.json").read_text()) == metrics
    assert 0 < metrics["vectors_coverage"] < 1
    assert metrics["train_samples"] == 40 and metrics["val_samples"] == 20
    assert "vectors/vocab_coverage" in scalars(run)
    assert (run / "curves.png").is_file()
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    embedding = state["net.embedding.weight"]
    assert embedding.shape[1] == 3
    # the frozen rows are the vectors' rows: some row equals a GloVe vector exactly
    assert any(torch.equal(row, torch.tensor([2.5, -2.25, 0.0])) for row in embedding)


def test_resume_continues_and_keeps_the_best_validation_score(dirs, tiny_tree):
    common = ["experiment=seed_learned", *SMALL, f"data.root={tiny_tree}"]
    first = train_in_process(
        dirs["run"] / "first", *common, "trainer.max_epochs=2", "ckpt_path=best"
    )
    # ckpt_path=best scores the best epoch's checkpoint, kept beside last.ckpt
    assert Path(first["checkpoint"]).name.startswith("best_epoch_")
    assert first["val_acc"] == pytest.approx(first["val_acc_best"], abs=1e-6)
    resumed = train_in_process(
        dirs["run"] / "second",
        *common,
        "trainer.max_epochs=4",
        f"resume={dirs['run']}/first/checkpoints/last.ckpt",
    )
    assert resumed["epochs"] == 4
    last = torch.load(dirs["run"] / "second/checkpoints/last.ckpt", weights_only=True)
    assert last["epoch"] == 3 and last["global_step"] == 4 and optimizer_updates(last) == 4 * 8
    # the best validation accuracy covers the epochs before the resume too
    assert resumed["val_acc_best"] >= first["val_acc_best"]


def test_each_checkpoint_is_read_once_per_run(dirs, tiny_tree, monkeypatch):
    common = ["experiment=seed_learned", *SMALL, f"data.root={tiny_tree}"]
    train_in_process(dirs["run"] / "first", *common, "trainer.max_epochs=1")
    first = dirs["run"] / "first" / "checkpoints" / "last.ckpt"
    reads: list[str] = []
    real_load = torch.load

    def counting_load(file, *args, **kwargs):
        reads.append(str(Path(file).resolve()))
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    train_in_process(dirs["run"] / "second", *common, "trainer.max_epochs=2", f"resume={first}")
    # checks, Lightning's restore and the scoring share one read of each file
    assert reads.count(str(first.resolve())) == 1
    last = (dirs["run"] / "second" / "checkpoints" / "last.ckpt").resolve()
    assert reads.count(str(last)) == 1  # scored on validation and test from one read
    assert set(reads) == {str(first.resolve()), str(last)}


def test_the_featurizer_lives_under_a_fixed_key(dirs, tiny_tree):
    trained = train_in_process(
        dirs["run"], "experiment=seed_learned", *SMALL, f"data.root={tiny_tree}"
    )
    checkpoint = torch.load(trained["checkpoint"], weights_only=True)
    assert set(checkpoint) >= {"text_featurizer", "state_dict", "hyper_parameters"}
    assert not any("DataModule" in key for key in checkpoint)  # no class name as a key
    assert checkpoint["hyper_parameters"]["net"]["encoder"] == {"kind": "flatten"}


def test_ckpt_path_file_scores_that_checkpoint(dirs, tiny_tree):
    common = ["experiment=seed_learned", *SMALL, f"data.root={tiny_tree}"]
    trained = train_in_process(dirs["run"] / "a", *common)
    ckpt = dirs["run"] / "a" / "checkpoints" / "last.ckpt"
    # another run (one epoch, another seed) told to report the first run's checkpoint
    other = train_in_process(
        dirs["run"] / "b",
        *common,
        "trainer.max_epochs=1",
        "seed=5",
        "data.split_seed=0",
        f"ckpt_path={ckpt}",
    )
    assert other["checkpoint"] == str(ckpt)
    assert other["test_acc"] == trained["test_acc"] and other["val_acc"] == trained["val_acc"]
    assert other["test_loss"] == pytest.approx(trained["test_loss"], rel=1e-6)


def test_ckpt_path_missing_file_is_refused_before_training(dirs, tiny_tree):
    run = dirs["run"] / "x"
    with pytest.raises(UserError, match=r"ckpt_path=/nonexistent/last\.ckpt does not exist"):
        train_in_process(
            run,
            "experiment=seed_learned",
            *SMALL,
            f"data.root={tiny_tree}",
            "ckpt_path=/nonexistent/last.ckpt",
        )
    assert not (run / "checkpoints").exists() and not (run / "metrics.json").exists()


def test_same_seed_same_metrics_other_seed_other_metrics_num_workers_changes_nothing(
    dirs, tiny_tree
):
    # the split is fixed: only the seed of initialisation and shuffling changes
    common = ["experiment=seed_learned", *SMALL, f"data.root={tiny_tree}", "data.split_seed=0"]
    a = train_in_process(dirs["run"] / "a", *common, "seed=0")
    b = train_in_process(dirs["run"] / "b", *common, "seed=0", "data.num_workers=1")
    c = train_in_process(dirs["run"] / "c", *common, "seed=1")
    assert without_timing(a) == without_timing(b)
    assert (a["val_loss"], a["test_loss"]) != (c["val_loss"], c["test_loss"])
    assert json.loads((dirs["run"] / "a" / "metrics.json").read_text())["seed"] == 0


def test_debug_fdr_runs_one_batch_of_each_split(dirs, tiny_tree):
    run = dirs["run"] / "fdr"
    metrics = train_in_process(
        run,
        "experiment=seed_learned",
        *SMALL,
        f"data.root={tiny_tree}",
        "debug=fdr",
        "data.eval_batch_size=10",
    )
    assert metrics["val_samples"] == 10 and metrics["test_samples"] == 10
    assert metrics["checkpoint"] is None and not (run / "checkpoints").exists()
    assert (run / "metrics.json").is_file()


def test_debug_limit_reports_what_was_scored_and_scores_both_classes(dirs, tiny_tree):
    overrides = [
        "experiment=seed_learned",
        *SMALL,
        f"data.root={tiny_tree}",
        "debug=limit",
        "data.eval_batch_size=8",
    ]
    metrics = train_in_process(dirs["run"] / "limit", *overrides)
    # conf/debug/limit.yaml: two evaluation batches of each split
    assert metrics["test_samples"] == 16 and metrics["val_samples"] == 16
    # the test split is stored shuffled: the limited batches are not one class only
    datamodule = build_datamodule(compose_cfg(*overrides, output_dir=dirs["run"] / "dm"))
    assert set(datamodule.labels["test"][:16].tolist()) == {0, 1}
    assert sorted(np.bincount(datamodule.labels["test"])) == [40, 40]


def test_scheduler_from_config_steps_once_per_epoch(dirs, tiny_tree):
    run = dirs["run"] / "sched"
    metrics = train_in_process(
        run,
        "experiment=seed_learned",
        *SMALL,
        f"data.root={tiny_tree}",
        "model.scheduler={_target_:torch.optim.lr_scheduler.StepLR,step_size:1,gamma:0.5}",
    )
    assert metrics["epochs"] == 3
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    [scheduler] = last["lr_schedulers"]
    assert scheduler["last_epoch"] == 3
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.01 * 0.5**3)


def test_a_resume_past_the_end_of_a_schedule_that_reached_lr_0_is_refused(dirs, tiny_tree):
    """A linear decay to 0 at max_epochs (fastText's kind of schedule): more epochs from its
    last checkpoint would train at lr 0, so they are refused in one line."""
    common = [
        "experiment=ngram",
        f"data.root={tiny_tree}",
        "data.buckets=1000",
        "data.maxlen=64",
        "model.scheduler={_target_:torch.optim.lr_scheduler.LinearLR,_partial_:true,"
        "start_factor:1.0,end_factor:0.0,total_iters:${trainer.max_epochs}}",
    ]
    train_in_process(dirs["run"] / "first", *common, "trainer.max_epochs=2")
    last = dirs["run"] / "first" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == 0.0
    with pytest.raises(UserError, match=r"^resume=.* end of its learning-rate schedule .*lr 0"):
        train_in_process(dirs["run"] / "second", *common, "trainer.max_epochs=4", f"resume={last}")
    # a schedule that has not reached 0 resumes (total_iters 4: lr 0.25 after 2 epochs)
    longer = [*common[:-1], common[-1].replace("${trainer.max_epochs}", "4")]
    train_in_process(dirs["run"] / "third", *longer, "trainer.max_epochs=2")
    last = dirs["run"] / "third" / "checkpoints" / "last.ckpt"
    resumed = train_in_process(
        dirs["run"] / "fourth", *longer, "trainer.max_epochs=4", f"resume={last}"
    )
    assert resumed["epochs"] == 4


def test_a_scheduler_outside_torch_is_refused(dirs, tiny_tree):
    with pytest.raises(UserError, match=r"'os\.system' is not a LRScheduler"):
        train_in_process(
            dirs["run"] / "x",
            "experiment=seed_learned",
            *SMALL,
            f"data.root={tiny_tree}",
            "model.scheduler={_target_:os.system,command:true}",
        )


def test_three_classes_end_to_end(dirs, tmp_path):
    root = write_tree(tmp_path / "three", per_class=30, classes=("a", "b", "c"))
    run = dirs["run"] / "three"
    metrics = train_in_process(
        run, "experiment=seed_learned", *SMALL, f"data.root={root}", "trainer.max_epochs=6"
    )
    assert metrics["test_samples"] == 90 and metrics["train_samples"] == 72
    assert metrics["test_acc"] > 0.6  # well above the 1/3 of guessing
    ckpt = run / "checkpoints" / "last.ckpt"
    assert featurizer_of(load_checkpoint(ckpt), "ckpt").classes == ["a", "b", "c"]
    assert checkpoint_accuracy(ckpt, root) == pytest.approx(metrics["test_acc"], abs=1e-6)


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
        ("seed_scratch", "model.net.embedding.dim=50"),
    ):
        sweep = dirs["run"] / experiment
        train_ok(
            ["-m", f"experiment={experiment}", choice, "seed=0,1,2", f"hydra.sweep.dir={sweep}"],
            dirs,
        )
        runs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
        assert len(runs) == 3
        scores[experiment] = sum(r["test_acc"] for r in runs) / 3
        if experiment == "seed_glove":
            assert all(r["train_samples"] == 200 and r["val_samples"] == 10000 for r in runs)
            assert all(r["vectors_coverage"] > 0.9 for r in runs)
    assert scores["seed_glove"] >= 0.55, scores
    assert scores["seed_glove"] > scores["seed_scratch"], scores


@pytest.mark.parametrize("callbacks", ["ema", "lightning_ema"])
def test_ema_scores_the_averaged_weights_its_validation_chose(dirs, tiny_tree, callbacks):
    """callbacks=ema: the best checkpoint holds the weights' moving average (the trained ones
    beside it, for resuming), and the scores after training are that average's, as its
    validation saw it. Lightning's own callback (the second case) scores other weights: after
    fit it loads the trained weights back and swaps in the last average for validation."""
    from embedclf.evaluate import evaluate

    overrides = [
        "experiment=seed_learned",
        *SMALL,
        f"data.root={tiny_tree}",
        # the best epoch (3) is not the last: the average at the end of training differs
        "trainer.max_epochs=6",
        "data.steps_per_call=1",
        "callbacks=ema",
        "callbacks.ema.decay=0.7",
        "ckpt_path=best",
    ]
    if callbacks == "lightning_ema":
        overrides.append("callbacks.ema._target_=pytorch_lightning.callbacks.EMAWeightAveraging")
    m = train_in_process(dirs["run"] / callbacks, *overrides)
    ckpt = torch.load(m["checkpoint"], weights_only=True)
    averaged, trained = ckpt["state_dict"], ckpt["current_model_state"]
    assert any(not torch.equal(averaged[k], trained[k]) for k in averaged)
    cfg = compose_cfg(
        f"ckpt={m['checkpoint']}",
        f"data.root={tiny_tree}",
        "trainer.enable_progress_bar=false",
        output_dir=dirs["run"] / f"{callbacks}_eval",
        config="evaluate",
    )
    scored = evaluate(cfg)  # the checkpoint alone: its state_dict, the average
    # the scores after training against the checkpoint scored alone (test), and against its
    # epoch's validation inside fit (validation)
    epoch = int(Path(m["checkpoint"]).stem.rsplit("_", 1)[1])
    val_loss = scalars(dirs["run"] / callbacks)["val/loss"][epoch]
    scores = (m["test_acc"], m["test_loss"], m["val_acc"], m["val_loss"])
    alone = (scored["test_acc"], scored["test_loss"], m["val_acc_best"], val_loss)
    assert (scores == pytest.approx(alone, abs=1e-6)) == (callbacks == "ema"), (scores, alone)
