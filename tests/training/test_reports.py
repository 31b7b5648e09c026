"""What a run leaves to compare and inspect: HPARAMS rows with final metrics, the embedding
projector, curves.png, and an Optuna search whose trials are summarised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from conftest import compose_cfg, run_script

optuna = pytest.importorskip(
    "optuna", reason="the sweep extra is not installed: make install-sweep"
)

TINY = [
    "experiment=seed_learned",
    "data.num_words=60",
    "data.batch_size=8",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "projector_words=20",
]


def hparams_of(run: Path) -> tuple[dict, list[str]]:
    """The hparams plugin's session: hyperparameter values and the metric names it lists."""
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    values = {}
    for key, value in start.session_start_info.hparams.items():
        values[key] = value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
    metrics = [m.name.tag for m in experiment.experiment.metric_infos]
    return values, metrics


@pytest.fixture(scope="module")
def search(tmp_path_factory, tiny_tree) -> Path:
    """A 3-trial Optuna search on tiny data, through the command line."""
    home = tmp_path_factory.mktemp("search")
    dirs = {name: home / name for name in ("data", "cache", "home")}
    for path in dirs.values():
        path.mkdir()
    sweep = home / "sweep"
    result = run_script(
        [
            "-m",
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=3",
            *TINY,
            f"data.root={tiny_tree}",
            f"hydra.sweep.dir={sweep}",
        ],
        dirs,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


def test_optuna_search_runs_three_trials_named_by_their_values(search: Path):
    trials = sorted(p for p in search.iterdir() if (p / "metrics.json").is_file())
    assert len(trials) == 3
    for number, trial in enumerate(trials):
        # trial dirs carry their number and the values tried (names could repeat otherwise)
        assert trial.name.startswith(f"{number}_") and "model.optimizer.lr=" in trial.name
        overrides = (trial / ".hydra" / "overrides.yaml").read_text()
        assert "model.net.embedding.dim=" in overrides and "data.maxlen=" in overrides
    results = (search / "optimization_results.yaml").read_text()
    assert "best_params" in results and "best_value" in results
    summary = (search / "summary.md").read_text()
    assert summary.count("| ok |") == 3 and (search / "summary.png").is_file()


def test_each_run_logs_hparams_with_its_final_metrics(search: Path):
    trial = next(p for p in sorted(search.iterdir()) if (p / "metrics.json").is_file())
    values, metric_names = hparams_of(trial)
    metrics = json.loads((trial / "metrics.json").read_text())
    assert {"hp/val_acc", "hp/test_acc", "hp/val_loss", "hp/test_loss", "hp/fit_seconds"} <= set(
        metric_names
    )
    assert values["experiment"] == "seed_learned" and values["seed"] == 0
    assert values["data.num_words"] == 60 and "model.optimizer.lr" in values
    overrides = (trial / ".hydra" / "overrides.yaml").read_text()
    assert f"model.net.embedding.dim={int(values['model.net.embedding.dim'])}" in overrides
    events = EventAccumulator(str(trial / "tensorboard"))
    events.Reload()
    [final] = events.Scalars("hp/test_acc")
    assert final.value == pytest.approx(metrics["test_acc"], abs=1e-6)


def test_each_run_writes_curves_and_the_projector(search: Path):
    trial = next(p for p in sorted(search.iterdir()) if (p / "metrics.json").is_file())
    assert (trial / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [metadata] = (trial / "tensorboard").rglob("metadata.tsv")
    words = metadata.read_text().splitlines()
    assert len(words) == 20 and "" not in words  # the 20 most frequent words, no padding
    [config] = (trial / "tensorboard").rglob("projector_config.pbtxt")
    assert "embedding" in config.read_text()


def test_hparams_are_the_chosen_settings_with_the_swept_ones_first(tmp_path, monkeypatch):
    from embedclf.runs.sweeps import SWEEP_ENV, SweepPlan
    from embedclf.training.reports import flat_hparams

    plan = SweepPlan(("model.net.embedding.dim", "seed"), numbered=False)
    monkeypatch.setenv(SWEEP_ENV, plan.to_env())
    cfg = compose_cfg(
        "experiment=ngram", "data=table", "data.train=/far/away/sst2/train.tsv", output_dir=tmp_path
    )
    values = flat_hparams(cfg)
    assert list(values)[:2] == ["model.net.embedding.dim", "seed"]
    plumbing = ("_target_", "_convert_", "cache_dir", "data_dir", "urls", "sha256", "root_dir")
    assert not [k for k in values if any(p in k for p in plumbing)], list(values)
    assert values["data.train"] == "sst2/train.tsv"
    assert values["model.optimizer"] == "RowSparseAdagrad"
    assert values["data.ngrams"] == 2 and values["experiment"] == "ngram"
    # a catalogue dataset: its mirrors and checksums are plumbing too
    values = flat_hparams(compose_cfg("experiment=ngram", "data=amazon_full", output_dir=tmp_path))
    assert not [k for k in values if any(p in k for p in (*plumbing, "download", "md5"))]
    assert values["data.train"] == "amazon_review_full_csv/train.csv"


def test_hparams_name_the_vectors_and_the_files_put_beside_them(tmp_path):
    from embedclf.training.reports import flat_hparams

    plain = flat_hparams(compose_cfg("experiment=sentence_cnn", output_dir=tmp_path))
    assert plain["vectors"] == "glove.6B.50d"
    both = compose_cfg(
        "experiment=sentence_cnn", "vectors.concat=[/w/imdb-word2vec.vec]", output_dir=tmp_path
    )
    assert flat_hparams(both)["vectors"] == "glove.6B.50d + imdb-word2vec.vec"
    learned = compose_cfg("experiment=imdb_lstm", output_dir=tmp_path)
    assert flat_hparams(learned)["vectors"] == "none"
