"""Multirun job directories named by what varies, and a summary at the end of every sweep.

``python train.py -m data.maxlen=100,200 seed=0,1`` puts its jobs in ``data.maxlen=100,seed=0``,
``data.maxlen=100,seed=1``, ... instead of ``0``, ``1``, ...: the values of the overrides that
vary in the sweep, keys sorted, as Hydra's ``override_dirname`` writes them but without the
settings shared by every job. Where two jobs could get the same name, the job number goes in
front (``3_seed=1``): with a sweeper other than Hydra's basic one (Optuna may suggest the same
values twice, and its values are not known in advance), or when a swept value repeats. With
nothing varying, the name is the job number, as Hydra's default.

Two halves, because Hydra names a job's directory inside the job (possibly in another process,
a joblib worker or a SLURM job) while only the launcher process knows what the sweep varies:

- :class:`SweepCallback` (``hydra.callbacks`` in ``conf/hydra/default.yaml``) works out, at the
  start of the multirun, which keys vary and whether names could collide, and passes that on
  in the environment variable ``EMBEDCLF_SWEEP_KEYS`` (inherited by workers and jobs). At the
  end it writes the sweep's summary (``embedclf.summarize``) and makes the sweep's exit status
  1 when a job failed (its run directory holds ``error.txt``).
- the OmegaConf resolver ``embedclf.sweep_subdir``, registered when this module is imported
  (``train.py`` imports it before Hydra resolves ``hydra.sweep.subdir``), names a job.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from embedclf.runs.summary import find_run_dirs, summarize
from embedclf.util.cli import fail
from embedclf.util.errors import ERROR_FILE, ConfigError, UserError, one_line
from embedclf.util.fileio import atomic_write_text

log = logging.getLogger(__name__)

SWEEP_ENV = "EMBEDCLF_SWEEP_KEYS"
RESOLVER = "embedclf.sweep_subdir"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# characters that cannot, or should not, appear in a directory name (any OS): quotes, whitespace
_UNSAFE = re.compile(r"[/\\:*?\"'<>|\s\x00-\x1f]+")
_MAX_NAME_BYTES = 200  # file systems allow 255; room for Hydra's and our temporary suffixes


@dataclass(frozen=True)
class SweepPlan:
    """What the launcher process decided about job names, as passed on to the jobs."""

    keys: tuple[str, ...]  # the override keys that vary, sorted
    numbered: bool  # prefix the job number: names could collide

    def to_env(self) -> str:
        return json.dumps({"keys": list(self.keys), "numbered": self.numbered})

    @classmethod
    def from_env(cls) -> SweepPlan | None:
        text = os.environ.get(SWEEP_ENV)
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(tuple(str(k) for k in data["keys"]), bool(data["numbered"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed %s=%r", SWEEP_ENV, text)
            return None


def override_key(override: Override) -> str:
    """The key a job's directory name shows: ``data.maxlen``, ``db@pkg``; no ``+``/``~``."""
    return override.get_key_element().lstrip("+~")


def safe_value(value: str) -> str:
    """A value as a directory name shows it: Hydra's escapes (``\\ ``, ``\\,``) undone, runs of
    unsafe characters replaced by one ``_``."""
    return _UNSAFE.sub("_", re.sub(r"\\(.)", r"\1", value))


def _parse(overrides: Sequence[str]) -> list[Override]:
    return OverridesParser.create().parse_overrides([str(o) for o in overrides])


def plan_sweep(
    task_overrides: Sequence[str],
    sweeper_params: Mapping[str, Any] | None = None,
    sweeper_target: str | None = BASIC_SWEEPER,
) -> SweepPlan:
    """Which keys vary, and whether job names made of their values could collide.

    ``sweeper_params`` (``hydra.sweeper.params``) come first and the command line's overrides
    after them, as Hydra's basic sweeper combines them: a later definition of a key wins, so a
    key swept in the config but fixed on the command line does not vary.
    """
    params = [f"{key}={value}" for key, value in (sweeper_params or {}).items()]
    last: dict[str, Override] = {}
    for override in _parse([*params, *task_overrides]):
        last[override_key(override)] = override
    swept = {key: o for key, o in last.items() if o.is_sweep_override()}
    numbered = not swept or sweeper_target != BASIC_SWEEPER
    for override in swept.values():
        if numbered:
            break
        try:
            values = [safe_value(v) for v in override.sweep_string_iterator()]
        except Exception:  # e.g. glob() needs the config loader; range/interval of floats
            numbered = True
        else:
            numbered = len(values) != len(set(values))
    return SweepPlan(tuple(sorted(swept)), numbered)


def job_subdir(job_num: int | str, task_overrides: Sequence[str], plan: SweepPlan | None) -> str:
    """The directory name of one job (see the module doc)."""
    if plan is None or not plan.keys:
        return str(job_num)
    try:
        values = {override_key(o): o.get_value_element_as_str() for o in _parse(task_overrides)}
    except Exception:  # Hydra parsed these already; should it fail here, numbers are unique
        return str(job_num)
    name = ",".join(f"{k}={safe_value(values[k])}" for k in plan.keys if k in values)
    if len(name.encode()) > _MAX_NAME_BYTES:
        import hashlib

        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = name.encode()[: _MAX_NAME_BYTES - 11].decode(errors="ignore") + "~" + digest
    if not name:
        return str(job_num)
    return f"{job_num}_{name}" if plan.numbered else name


def _sweep_subdir(job_num: Any, task_overrides: Any = None) -> str:
    """The resolver: ``${embedclf.sweep_subdir:${hydra.job.num},${hydra.overrides.task}}``."""
    if isinstance(task_overrides, ListConfig):
        # unresolved: an override's value may itself look like an interpolation
        task_overrides = OmegaConf.to_container(task_overrides, resolve=False)
    return job_subdir(job_num, list(task_overrides or []), SweepPlan.from_env())


if not OmegaConf.has_resolver(RESOLVER):
    OmegaConf.register_new_resolver(RESOLVER, _sweep_subdir)


def count_failed(sweep_dir: Path) -> tuple[int, int]:
    """(failed, total) jobs of a sweep directory, from the run directories on disk."""

    runs = list(find_run_dirs(sweep_dir)) if sweep_dir.is_dir() else []
    return sum((run / ERROR_FILE).is_file() for run in runs), len(runs)


def check_sweep_setup(config: DictConfig) -> None:
    """Refuse, in one line and before any job starts, a launcher or sweeper that cannot run
    here: SLURM's launcher without ``sbatch``, an Optuna storage that is not a database URL."""
    launcher = str(OmegaConf.select(config, "hydra.launcher._target_") or "")
    if launcher.endswith("SlurmLauncher") and shutil.which("sbatch") is None:
        raise ConfigError(
            "hydra/launcher=slurm submits each job with SLURM's sbatch, which is not on this "
            "machine's PATH; run the sweep on a SLURM login node, or use "
            "hydra/launcher=submitit_local or hydra/launcher=joblib on this machine"
        )
    storage = OmegaConf.select(config, "hydra.sweeper.storage", default=None)
    if storage:
        try:
            from sqlalchemy.engine import make_url  # Optuna's (optional) storage library

            make_url(str(storage)).get_dialect()
        except ImportError:
            return  # Optuna without SQLAlchemy says so itself
        except Exception as err:
            raise ConfigError(
                f"hydra.sweeper.storage={storage} is not a database URL Optuna can open "
                f"({one_line(err)}); give one such as sqlite:///optuna.db, or null to keep "
                "the study in memory"
            ) from None


class SweepCallback(Callback):
    """Names multirun jobs by what varies; summarises the sweep; exit status 1 if a job failed."""

    def __init__(self, metric: str = "test_acc") -> None:
        self.metric = metric
        self._previous_env: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_sweep_setup(config)
        except UserError as err:  # Hydra turns a callback's exception into a warning: exit
            fail(err)
        task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        params = OmegaConf.select(config, "hydra.sweeper.params")
        if isinstance(params, DictConfig):
            params = OmegaConf.to_container(params, resolve=False)
        target = OmegaConf.select(config, "hydra.sweeper._target_")
        plan = plan_sweep(
            [str(o) for o in task or []],  # type: ignore[union-attr]
            params if isinstance(params, dict) else None,
            target,
        )
        self._previous_env = os.environ.get(SWEEP_ENV)
        os.environ[SWEEP_ENV] = plan.to_env()
        log.debug("sweep plan: %s", plan)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """A job that crashed (an exception other than a user error) leaves ``error.txt`` too."""
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        if job_return.status != JobStatus.FAILED or config.hydra.mode != RunMode.MULTIRUN:
            return
        output_dir = OmegaConf.select(config, "hydra.runtime.output_dir")
        if not output_dir or (Path(output_dir) / ERROR_FILE).exists():
            return

        try:
            _ = job_return.return_value  # raises the job's exception
            message = "failed"
        except Exception as err:
            message = f"{type(err).__name__}: {one_line(err)}"
        atomic_write_text(Path(output_dir) / ERROR_FILE, message + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._previous_env is None:
            os.environ.pop(SWEEP_ENV, None)
        else:
            os.environ[SWEEP_ENV] = self._previous_env
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            summary = summarize(sweep_dir, self.metric)
            print(summary.markdown, end="")
            failed, total = len(summary.failed), len(summary.runs)
        except Exception as err:  # a summary problem must not turn a good sweep into a failure
            log.warning("no summary of %s: %s: %s", sweep_dir, type(err).__name__, err)
            failed, total = count_failed(sweep_dir)
        if failed:
            print(
                f"error: {failed} of {total} jobs failed; see {sweep_dir / 'summary.md'}",
                file=sys.stderr,
            )
            raise SystemExit(1)
