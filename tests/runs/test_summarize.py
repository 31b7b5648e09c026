"""The sweep summary (tables, groups over seeds, plot) and the per-run curves plot."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from embedclf.runs.plots import plot_curves, x_scale
from embedclf.runs.summary import summarize
from embedclf.summarize import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(
    root: Path,
    name: str,
    overrides: list[str],
    metrics: dict | None = None,
    error: str | None = None,
) -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        full = {"epochs": 10, "fit_seconds": 5.0, "val_acc_best": None, **metrics}
        (run / "metrics.json").write_text(json.dumps(full))
    if error is not None:
        (run / "error.txt").write_text(error + "\n")
    return run


# (data.maxlen, seed) -> (val_acc, test_acc); seed 1 at maxlen 200 fails
SCORES = {
    ("100", "0"): (0.60, 0.50),
    ("100", "1"): (0.70, 0.54),
    ("200", "0"): (0.80, 0.62),
    ("200", "2"): (0.90, 0.70),
}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    for (maxlen, seed), (val, test) in SCORES.items():
        make_run(
            root,
            f"data.maxlen={maxlen},seed={seed}",
            ["experiment=seed_glove", f"data.maxlen={maxlen}", f"seed={seed}"],
            {"val_acc": val, "test_acc": test, "seed": int(seed)},
        )
    make_run(
        root,
        "data.maxlen=200,seed=1",
        ["experiment=seed_glove", "data.maxlen=200", "seed=1"],
        error="vectors file glove.txt is empty | re-download it",
    )
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_run_table_has_one_column_per_differing_override_and_the_failed_job(sweep):
    summary = summarize(sweep)
    rows = read_csv(sweep / "summary.csv")
    assert list(rows[0]) == [
        "run", "data.maxlen", "seed", "val_acc", "test_acc", "epochs", "fit_seconds", "status",
    ]  # fmt: skip
    # experiment= is the same in every run: no column; rows sorted by the swept values
    assert [(r["data.maxlen"], r["seed"]) for r in rows] == [
        ("100", "0"), ("100", "1"), ("200", "0"), ("200", "1"), ("200", "2"),
    ]  # fmt: skip
    by_name = {r["run"]: r for r in rows}
    ok = by_name["data.maxlen=100,seed=1"]
    assert (float(ok["val_acc"]), float(ok["test_acc"]), ok["status"]) == (0.70, 0.54, "ok")
    failed = by_name["data.maxlen=200,seed=1"]
    assert failed["status"] == "failed: vectors file glove.txt is empty | re-download it"
    assert failed["test_acc"] == ""
    assert [run.name for run in summary.failed] == ["data.maxlen=200,seed=1"]
    assert summary.keys == ["data.maxlen", "seed"]


def test_groups_are_mean_and_sample_std_over_seeds(sweep):
    summarize(sweep)
    groups = {g["data.maxlen"]: g for g in read_csv(sweep / "summary_groups.csv")}
    assert set(groups) == {"100", "200"}
    assert "seed" not in groups["100"]
    root2 = math.sqrt(2)  # by hand: the sample std of two values a, b is |a - b| / sqrt(2)
    expected = {  # maxlen: n, failed, val_acc mean and std, test_acc mean and std
        "100": (2, 0, 0.65, 0.10 / root2, 0.52, 0.04 / root2),
        "200": (2, 1, 0.85, 0.10 / root2, 0.66, 0.08 / root2),
    }
    for maxlen, want in expected.items():
        got = groups[maxlen]
        columns = ["val_acc_mean", "val_acc_std", "test_acc_mean", "test_acc_std"]
        assert (int(got["n"]), int(got["failed"])) == want[:2]
        assert [float(got[c]) for c in columns] == pytest.approx(want[2:])


def test_markdown_has_both_tables_and_escapes_the_error(sweep):
    markdown = summarize(sweep).markdown
    assert (sweep / "summary.md").read_text() == markdown
    assert "| data.maxlen=100,seed=1 | 100 | 1 | 0.7000 | 0.5400 | 10 | 5.0 | ok |" in markdown
    assert "failed: vectors file glove.txt is empty \\| re-download it |" in markdown
    assert "| 200 | 2 | 1 | 0.8500 | 0.0707 | 0.6600 | 0.0566 |" in markdown
    assert "5 runs, 1 failed" in markdown


def test_plot_is_a_png_and_the_x_axis_follows_the_values(sweep):
    summary = summarize(sweep)
    assert (sweep / "summary.png").read_bytes().startswith(PNG_MAGIC)
    assert sweep / "summary.png" in summary.files
    assert x_scale(["100", "200"]) == "linear"
    assert x_scale(["1e-3", "0.01", "1e-2"]) == "log"
    assert x_scale(["0", "100"]) == "linear"  # no log axis through zero
    assert x_scale(["glove_6b_50d", "glove_6b_100d"]) == "categorical"


def test_no_plot_when_nothing_varies(tmp_path):
    for i in range(2):
        make_run(tmp_path, str(i), ["seed=0"], {"val_acc": 0.5, "test_acc": 0.5})
    (tmp_path / "summary.png").write_bytes(PNG_MAGIC)  # a stale plot of an earlier summary
    summary = summarize(tmp_path)
    assert summary.keys == []
    assert not (tmp_path / "summary.png").exists()
    assert len(read_csv(tmp_path / "summary.csv")) == 2


def test_nested_folders_and_a_chosen_metric(tmp_path):
    make_run(tmp_path / "a", "0", ["maxlen=200"], {"val_acc": 0.5, "val_loss": 1.5})
    make_run(tmp_path / "b", "0", ["maxlen=80"], {"val_acc": 0.5, "val_loss": 0.5})
    summary = summarize(tmp_path, metric="val_loss")
    rows = read_csv(tmp_path / "summary.csv")
    assert [r["run"] for r in rows] == ["b/0", "a/0"]  # by value: 80 before 200
    assert [r["val_loss"] for r in rows] == ["0.5", "1.5"]
    assert [g["val_loss_mean"] for g in summary.groups] == [0.5, 1.5]


def test_cli_prints_the_markdown(sweep, capsys):
    assert main([str(sweep)]) == 0
    assert capsys.readouterr().out == (sweep / "summary.md").read_text()


@pytest.mark.parametrize(
    "setup,args,message",
    [
        (None, ["missing"], "is not a directory"),
        ("empty", ["empty"], "no run directories"),
        ("sweep", ["sweep", "--metric", "nope"], "--metric nope is not in metrics.json"),
    ],
)
def test_cli_bad_input_is_one_error_line_and_status_2(tmp_path, capsys, setup, args, message):
    if setup == "empty":
        (tmp_path / "empty" / "logs").mkdir(parents=True)
    elif setup == "sweep":
        make_run(tmp_path / "sweep", "0", ["seed=0"], {"test_acc": 0.5})
    assert main([str(tmp_path / args[0]), *args[1:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_cli_as_a_module(sweep, tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "embedclf.summarize", str(sweep), "--metric", "val_acc"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "| data.maxlen | seed | val_acc |" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "embedclf.summarize", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("with_val", [True, False])
def test_plot_curves_writes_a_two_panel_png_atomically(tmp_path, with_val):
    history = {"train/loss": [0.7, 0.5, 0.3], "train/acc": [0.5, 0.7, 0.9]}
    if with_val:
        history |= {"val/loss": [0.69, 0.6, 0.62], "val/acc": [0.52, 0.6, 0.61]}
    else:
        history["val/acc"] = []  # a run without validation
    path = tmp_path / "curves.png"
    plot_curves(history, path)
    import matplotlib.image

    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width >= 2 * height  # two panels side by side: loss, accuracy
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary left behind


def test_plot_curves_draws_the_validation_curves(tmp_path):
    train = {"train/loss": [0.7, 0.5], "train/acc": [0.5, 0.7]}
    plot_curves(train, tmp_path / "train.png")
    plot_curves(train | {"val/loss": [0.6, 0.65], "val/acc": [0.6, 0.62]}, tmp_path / "both.png")
    assert (tmp_path / "train.png").read_bytes() != (tmp_path / "both.png").read_bytes()
