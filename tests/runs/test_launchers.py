"""Scaling out: run directories shared by the ranks of one job, and the launchers.

``hydra/launcher=joblib`` (parallel jobs on this machine, one token cache built once),
``hydra/launcher=submitit_local`` (the SLURM launcher's code path, run here),
``hydra/launcher=slurm`` (the sbatch script its settings make), and torchrun with
``trainer=ddp_torchrun`` (two ranks, one run directory).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

import embedclf.runs.rundir as rundir
from conftest import REPO, run_script, token_stores

SMALL = [
    "experiment=seed_learned",
    "data.num_words=60",
    "data.maxlen=40",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "projector_words=0",
    "plot_curves=false",
]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}$")
WAITING = "waiting for another process building"


def cfg_for(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- ${embedclf.run_id:} -------------------------------------------------------------------
def test_slurm_jobs_are_named_by_their_job_id():
    assert rundir.run_id({"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0"}) == "4242"
    # sbatch's batch step is one process, and may run several trainings one after another:
    # each gets a directory of its own
    assert TIMESTAMP.match(rundir.run_id({"SLURM_JOB_ID": "4242"}))
    array = {
        "SLURM_JOB_ID": "4250",
        "SLURM_ARRAY_JOB_ID": "4242",
        "SLURM_ARRAY_TASK_ID": "7",
        "SLURM_STEP_ID": "0",
    }
    assert rundir.run_id(array) == "4242_7"  # as squeue and sacct name the array task
    # a later srun step of the same job trains again: a directory of its own
    assert rundir.run_id({"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "2"}) == "4242.2"
    # SLURM wins over torchrun started inside the job (all nodes share the job id)
    both = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "TORCHELASTIC_RUN_ID": "none"}
    assert rundir.run_id(both) == "4242"


def test_an_interactive_allocation_shell_keeps_one_directory_per_run():
    shell = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "interactive"}
    assert TIMESTAMP.match(rundir.run_id(shell))
    assert rundir.run_id({**shell, "SLURM_STEP_ID": "0"}) == "4242"  # srun inside it


def test_torchrun_ranks_share_the_rendezvous_id_or_their_agent():
    assert rundir.run_id({"TORCHELASTIC_RUN_ID": "exp/42"}) == "exp_42"
    agent = os.getpid()  # a live process with a start time, standing in for the agent
    name = rundir.torchrun_run_id({"TORCHELASTIC_RUN_ID": "none"}, parent=agent)
    assert name == rundir.torchrun_run_id({"TORCHELASTIC_RUN_ID": "none"}, parent=agent)
    assert name.endswith(f"_{socket.gethostname()}-{agent}")
    if sys.platform.startswith("linux"):
        started = time.strftime("%Y-%m-%d_%H-%M", time.localtime(time.time()))
        assert name[:16] <= started  # the agent's start time, not now
    other = rundir.torchrun_run_id({"TORCHELASTIC_RUN_ID": "none"}, parent=os.getppid())
    assert other != name


def test_other_runs_get_a_microsecond_timestamp():
    assert TIMESTAMP.match(rundir.run_id({}))
    assert TIMESTAMP.match(rundir.run_id({"LOCAL_RANK": "1"}))  # Lightning's own DDP children


def test_the_resolver_is_registered_once_and_stable_within_a_config(monkeypatch):
    rundir.register_resolvers()  # a second registration is harmless
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    cfg = OmegaConf.create({"a": "${embedclf.run_id:}", "b": "runs/${embedclf.run_id:}"})
    first = cfg.a
    time.sleep(0.01)
    assert cfg.a == first and cfg.b == f"runs/{first}"
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    assert OmegaConf.create({"a": "${embedclf.run_id:}"}).a == "77"


# -- hydra/launcher=slurm --------------------------------------------------------------------
def test_slurm_launcher_settings_become_the_sbatch_script(tmp_path, monkeypatch):
    """The plugin's own launch(), up to the sbatch script it would submit."""
    import submitit
    from submitit.slurm.slurm import SlurmExecutor

    cfg = cfg_for(
        "hydra/launcher=slurm",
        "trainer=ddp_multinode",
        "trainer.devices=3",
        "trainer.num_nodes=2",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=90",
        f"hydra.sweep.dir={tmp_path}",
    )
    launcher = cfg.hydra.launcher
    assert (launcher.tasks_per_node, launcher.nodes, launcher.gpus_per_node) == (3, 2, 3)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.use_distributed_sampler is False

    scripts: list[str] = []

    def capture(executor, fn, *iterables):
        scripts.append(executor._executor._make_submission_file_text("CMD", "0"))
        return []

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # no srun here
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    plugin = instantiate(launcher)
    plugin.setup(hydra_context=None, task_function=None, config=cfg)
    plugin.launch([["seed=0"]], initial_job_idx=0)
    (script,) = scripts
    for directive in (
        "--partition=gpu",
        "--nodes=2",
        "--ntasks-per-node=3",
        "--gpus-per-node=3",
        "--cpus-per-task=4",
        "--mem=32GB",
        "--time=90",
    ):
        assert f"#SBATCH {directive}\n" in script, script
    assert f"{tmp_path}/.submitit/" in script


def test_slurm_launcher_composes_with_a_single_process_trainer():
    launcher = cfg_for("hydra/launcher=slurm").hydra.launcher  # trainer=cpu: no num_nodes
    assert (launcher.nodes, launcher.tasks_per_node) == (1, 1)


# -- hydra/launcher=joblib --------------------------------------------------------------------
def test_joblib_jobs_wait_for_one_token_cache(dirs, tiny_tree, tmp_path):
    """Two jobs at once on an empty cache: the second waits, and finds the cache built."""
    from filelock import FileLock

    overrides = [*SMALL, f"data.root={tiny_tree}"]
    data = instantiate(cfg_for(*overrides).data)
    cache = data._tokens_path(data.source())
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        "train.py",
        "-m",
        "hydra/launcher=joblib",
        *overrides,
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
    ]
    output = tmp_path / "output.txt"
    lock = FileLock(f"{cache}.lock")
    lock.acquire()  # held until both jobs wait: they really run at the same time
    with output.open("w") as out:
        proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 400
            while time.monotonic() < deadline and proc.poll() is None:
                logs = [p.read_text() for p in sweep.glob("*/train.log")]
                if len(logs) == 2 and all(WAITING in log for log in logs):
                    break
                time.sleep(0.5)
        finally:
            lock.release()
        returncode = proc.wait(timeout=400)
    assert returncode == 0, output.read_text()[-3000:]
    logs = [p.read_text() for p in sorted(sweep.glob("*/train.log"))]
    assert len(logs) == 2 and all(WAITING in log for log in logs), output.read_text()[-3000:]
    assert sum("tokenising" in log for log in logs) == 1  # the other found it built
    assert token_stores(dirs["cache"]) == [cache]
    seeds = sorted(json.loads(p.read_text())["seed"] for p in sweep.glob("*/metrics.json"))
    assert seeds == [0, 1]


# -- hydra/launcher=submitit_local --------------------------------------------------------------
def test_submitit_local_runs_each_job_in_a_process_of_its_own(dirs, tiny_tree, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_script(
        [
            "-m",
            "hydra/launcher=submitit_local",
            *SMALL,
            f"data.root={tiny_tree}",
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
        ],
        dirs,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seeds = sorted(json.loads(p.read_text())["seed"] for p in sweep.glob("*/metrics.json"))
    assert seeds == [0, 1]
    # submitit ran them: its job folders hold each job's pickled result and logs
    assert len(list(sweep.glob(".submitit/*/*_result.pkl"))) == 2


# -- torchrun ------------------------------------------------------------------------------
def test_torchrun_two_ranks_write_one_run_directory(dirs, tiny_tree, tmp_path):
    """No hydra.run.dir: conf/hydra/default.yaml's ${embedclf.run_id:} names the directory."""
    env = dict(
        os.environ,
        EMBEDCLF_DATA_DIR=str(dirs["data"]),
        EMBEDCLF_CACHE_DIR=str(dirs["cache"]),
        HOME=str(dirs["home"]),
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        str(REPO / "train.py"),
        "trainer=ddp_torchrun",
        *SMALL,
        f"data.root={tiny_tree}",
    ]
    # outputs/ lands in the working directory: the test's, not the repository's
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]
    assert "MEMBER: 2/2" in output  # two ranks really trained
    runs = list((tmp_path / "outputs").glob("*/runs/*"))
    assert len(runs) == 1, runs
    (run,) = runs
    assert run.name.endswith(f"_{socket.gethostname()}-{proc.pid}")  # named by the agent
    assert [p.name for p in run.glob("**/metrics.json")] == ["metrics.json"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test_acc"] <= 1 and metrics["epochs"] == 1


# -- launchers and sweepers that cannot run here: one line before any job ---------------------
def test_the_slurm_launcher_without_slurm_is_one_line(dirs, tmp_path):
    env_path = os.environ["PATH"]
    bare = ":".join(p for p in env_path.split(":") if not (Path(p) / "sbatch").exists())
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "hydra/launcher=slurm",
            "seed=0,1",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=REPO,
        env={**os.environ, "PATH": bare},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: hydra/launcher=slurm") and "sbatch" in line
    assert "submitit_local" in line and not (tmp_path / "sweep").exists()


def test_an_optuna_storage_that_is_not_a_database_url_is_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "hparams_search=optuna",
            "hydra.sweeper.storage=notadb://x",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: hydra.sweeper.storage=notadb://x") and "sqlite:///" in line
