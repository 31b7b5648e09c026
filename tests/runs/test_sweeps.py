"""Multirun job directories named by what varies; the sweep callback's summary and exit status.

The end-to-end tests run a real Hydra multirun of a throwaway app that uses this project's
``conf/hydra/default.yaml`` (no data, no training): each job writes ``metrics.json``, or
``error.txt`` when its ``x`` is ``bad``, as ``embedclf.util.errors.hydra_task`` does
for a user error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from embedclf.runs.sweeps import (
    BASIC_SWEEPER,
    SWEEP_ENV,
    SweepPlan,
    _sweep_subdir,
    job_subdir,
    plan_sweep,
)

REPO = Path(__file__).resolve().parents[2]
OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"

APP = """
import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def main(cfg):
    out = Path(HydraConfig.get().runtime.output_dir)
    if cfg.x == "bad":
        (out / "error.txt").write_text("x=bad is not a setting; use a or b\\n")
        return None
    if cfg.x == "crash":
        raise RuntimeError("boom\\nsecond line")
    acc = 0.5 + 0.1 * cfg.seed + (0.2 if cfg.x == "b" else 0.0)
    (out / "metrics.json").write_text(json.dumps({"val_acc": acc, "test_acc": acc}))
    return acc


if __name__ == "__main__":
    main()
"""

APP_CONFIG = """
defaults:
  - _self_
  - hydra: default
task_name: app
seed: 0
x: a
"""


# --- naming: the decision in the launcher process and the name in the job ----------------


def test_plan_keys_are_the_swept_overrides_sorted():
    plan = plan_sweep(["seed=0,1", "experiment=seed_glove", "data.maxlen=100,200"])
    assert plan == SweepPlan(("data.maxlen", "seed"), numbered=False)


def test_plan_takes_sweeper_params_and_lets_the_command_line_fix_them():
    params = {"seed": "0,1,2", "model.net.embedding.dim": "8,16"}
    assert plan_sweep([], params).keys == ("model.net.embedding.dim", "seed")
    assert plan_sweep(["seed=5"], params).keys == ("model.net.embedding.dim",)


@pytest.mark.parametrize(
    "overrides,target",
    [
        (["seed=0,1"], OPTUNA),  # may suggest the same values twice
        (["seed=1,1"], BASIC_SWEEPER),  # a repeated value
        (["x=a/b,a_b"], BASIC_SWEEPER),  # different values, the same once made path-safe
        (["seed=0"], BASIC_SWEEPER),  # nothing varies
    ],
)
def test_plan_numbers_jobs_whose_names_could_collide(overrides, target):
    assert plan_sweep(overrides, None, target).numbered


def test_job_names():
    plan = SweepPlan(("data.maxlen", "seed"), numbered=False)
    job = ["seed=1", "experiment=seed_glove", "data.maxlen=100"]
    assert job_subdir(3, job, plan) == "data.maxlen=100,seed=1"
    assert job_subdir(3, job, SweepPlan(("data.maxlen", "seed"), numbered=True)) == (
        "3_data.maxlen=100,seed=1"
    )
    assert job_subdir(3, job, SweepPlan((), numbered=True)) == "3"
    assert job_subdir(3, job, None) == "3"  # not started by the callback
    assert job_subdir(0, ["+data.root=/d/x y"], SweepPlan(("data.root",), False)) == (
        "data.root=_d_x_y"
    )
    long = job_subdir(0, [f"k={'v' * 300}"], SweepPlan(("k",), False))
    assert len(long.encode()) <= 200 and long != job_subdir(0, [f"k={'v' * 301}"], plan)


def test_resolver_reads_the_plan_from_the_environment(monkeypatch):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "job": {"num": 2, "task": ["seed=1", "p='${oc.env:HOME}'"]},
            "subdir": "${embedclf.sweep_subdir:${job.num},${job.task}}",
        }
    )
    monkeypatch.delenv(SWEEP_ENV, raising=False)
    assert cfg.subdir == "2"
    monkeypatch.setenv(SWEEP_ENV, SweepPlan(("p", "seed"), False).to_env())
    assert cfg.subdir == "p=_${oc.env_HOME}_,seed=1"  # the override as typed, not resolved
    assert _sweep_subdir(4, ["seed=2"]) == "seed=2"


# --- end to end: a real multirun ----------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "conf" / "hydra").mkdir(parents=True)
    shutil.copy(REPO / "conf" / "hydra" / "default.yaml", tmp_path / "conf" / "hydra")
    (tmp_path / "conf" / "app.yaml").write_text(APP_CONFIG)
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    return tmp_path


def multirun(app: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != SWEEP_ENV}
    return subprocess.run(
        [sys.executable, "app.py", "-m", *overrides, f"hydra.sweep.dir={app / 'sweep'}"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def job_dirs(sweep: Path) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if p.is_dir())


def test_multirun_names_jobs_by_what_varies_and_summarises(app):
    done = multirun(app, "seed=0,1", "x=a,b", "task_name=fixed")
    assert done.returncode == 0, done.stderr
    sweep = app / "sweep"
    assert job_dirs(sweep) == ["seed=0,x=a", "seed=0,x=b", "seed=1,x=a", "seed=1,x=b"]
    assert (sweep / "seed=1,x=b" / "metrics.json").is_file()
    summary = (sweep / "summary.md").read_text()
    assert "| seed=1,x=b | 1 | b | 0.8000 | 0.8000 |" in summary
    assert "task_name" not in summary  # the same in every job
    assert "| b | 2 | 0 | 0.7500 | 0.0707 |" in summary  # x=b over seeds 0 and 1
    assert (sweep / "summary.png").is_file() and (sweep / "summary_groups.csv").is_file()
    assert summary in done.stdout
    assert "error" not in done.stderr


def test_a_failed_job_makes_the_sweep_exit_1_after_the_others_ran(app):
    done = multirun(app, "x=a,bad,b")
    sweep = app / "sweep"
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: 1 of 3 jobs failed; see {sweep / 'summary.md'}"
    )
    assert job_dirs(sweep) == ["x=a", "x=b", "x=bad"]
    assert (sweep / "x=b" / "metrics.json").is_file()  # the job after the failure ran
    assert "| x=bad | bad |  |  |  |  | failed: x=bad is not a setting; use a or b |" in (
        (sweep / "summary.md").read_text()
    )


def test_a_repeated_value_numbers_the_jobs(app):
    done = multirun(app, "seed=1,1")
    assert done.returncode == 0, done.stderr
    assert job_dirs(app / "sweep") == ["0_seed=1", "1_seed=1"]


def test_a_crashed_job_leaves_its_error_line(app):
    done = multirun(app, "x=a,crash")
    assert done.returncode == 1  # Hydra's basic sweeper stops the sweep with the traceback
    assert "RuntimeError: boom" in done.stderr
    error = (app / "sweep" / "x=crash" / "error.txt").read_text()
    assert error == "RuntimeError: boom second line\n"
