"""Run directories named after the job, so every rank of one training shares one directory.

Under torchrun or SLURM each rank is a process of its own that runs ``train.py`` from the
start and composes its own config. A run directory named by a timestamp, taken by each rank
when it resolves ``hydra.run.dir``, gives one directory per rank (or per second, by luck).
The OmegaConf resolver ``${embedclf.run_id:}`` instead returns a name every rank of one job
derives alike from what its launcher put in the environment, in this order:

1. SLURM (``srun``, ``sbatch``, submitit): the job id, ``<SLURM_JOB_ID>``, or
   ``<SLURM_ARRAY_JOB_ID>_<SLURM_ARRAY_TASK_ID>`` for a task of a job array (the name
   ``squeue`` and ``sacct`` show); ``.<SLURM_STEP_ID>`` is added for the second and later
   ``srun`` steps of a job, so trainings started one after another in one job do not share.
   An interactive allocation's shell (``salloc``; job name ``bash`` or ``interactive``, no
   ``srun`` step) starts nothing in parallel and falls through to the timestamp, so runs
   typed one after another in it keep their own directories.
2. torchrun: ``TORCHELASTIC_RUN_ID`` (``--rdzv-id``, or the random id of ``--standalone``),
   the same on every node; when it is ``none`` (torchrun's default, single node) the
   torchrun agent that started this rank names the run: its start time, host and pid
   (``os.getppid()``: the agent starts its workers as its own children).
3. Anything else (a plain run, Lightning's own DDP launcher, which passes the parent's run
   directory to the ranks it starts): a timestamp with microseconds, as before.

The resolver is registered when this module is imported: ``train.py`` imports it before
Hydra resolves ``hydra.run.dir``, and joblib's loky workers, which re-run ``train.py``'s
module level (as ``__mp_main__``) before unpickling a job, have it too. Values are cached
per config (``use_cache``), so one config always names one directory.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

RESOLVER = "embedclf.run_id"
TIME_FORMAT = "%Y-%m-%d_%H-%M-%S-%f"
_FIRST_SPECIAL_STEP = 0xFFFFFFF0  # batch, extern, interactive ... steps: not an srun step


def _safe(name: str) -> str:
    """``name`` usable as one directory name: anything but letters, digits, ``._-`` -> ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "_"


def _srun_step(env: Mapping[str, str]) -> int | None:
    step = env.get("SLURM_STEP_ID", "")
    if step.isdigit() and int(step) < _FIRST_SPECIAL_STEP:
        return int(step)
    return None


def slurm_run_id(env: Mapping[str, str]) -> str | None:
    """The SLURM job's name for this run, or None outside a SLURM job (see the module doc)."""
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    step = _srun_step(env)
    if step is None:  # the batch script itself (or salloc): runs there are one process each,
        return None  # and several may follow one another in the job: a timestamp each
    array_job, array_task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    name = f"{array_job}_{array_task}" if array_job and array_task else job
    if step:
        name += f".{step}"
    return _safe(name)


def _process_start(pid: int) -> datetime | None:
    """When process ``pid`` started (Linux: ``/proc``), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        # field 22, counted after the command name in parentheses (which may hold spaces)
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def torchrun_run_id(env: Mapping[str, str], parent: int | None = None) -> str | None:
    """The torchrun job's name for this run, or None when torchrun did not start us."""
    run = env.get("TORCHELASTIC_RUN_ID")
    if run is None:
        return None
    if run and run != "none":
        return _safe(run)
    agent = os.getppid() if parent is None else parent
    started = _process_start(agent)
    when = started.strftime("%Y-%m-%d_%H-%M-%S") + "_" if started else ""
    return _safe(f"{when}{socket.gethostname()}-{agent}")


def run_id(env: Mapping[str, str] | None = None) -> str:
    """The run directory's name: SLURM job, else torchrun job, else a timestamp."""
    env = os.environ if env is None else env
    return slurm_run_id(env) or torchrun_run_id(env) or datetime.now().strftime(TIME_FORMAT)


def register_resolvers() -> None:
    """Register ``${embedclf.run_id:}`` once (importing this module again is harmless)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, lambda: run_id(), use_cache=True)


register_resolvers()
