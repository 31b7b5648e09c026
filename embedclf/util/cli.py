"""The wrappers every entry point shares: a user error becomes one ``error:`` line and a
failing exit status; in a multirun, a failed job records its line and the sweep goes on."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from embedclf.util.errors import ERROR_FILE, Interrupted, UserError, one_line
from embedclf.util.fileio import atomic_write_text

F = TypeVar("F", bound=Callable[..., Any])
# Ctrl-C outside training (reading, scoring, writing): every file is written by rename, so
# nothing half-written is left to be taken for a finished one
INTERRUPTED = Interrupted("interrupted (Ctrl-C); nothing half-written was kept: run it again")


def exit_on_user_error(func: F) -> F:
    """Run ``func``; a :class:`UserError` becomes ``error: <message>`` and a failing exit,
    and so does a Ctrl-C (exit 130, no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            fail(err)
        except KeyboardInterrupt:
            fail(INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def fail(err: UserError) -> NoReturn:
    """``error: <message>`` on stderr, then the error's exit status (1 unless it says)."""
    status = getattr(err, "exit_status", 1)
    if status == 1:
        raise SystemExit(f"error: {one_line(err)}") from None
    print(f"error: {one_line(err)}", file=sys.stderr)
    raise SystemExit(status) from None


def hydra_task(func: F) -> F:
    """Wrap a Hydra task function: one-line user errors; in a multirun, record and go on.

    In a multirun (``-m``) a failed job writes its one-line error to ``error.txt`` in its own
    run directory and returns NaN (a failed trial, to a sweeper), so the jobs after it run;
    the sweep callback (``embedclf.runs.sweeps``) lists the failures and makes the sweep's exit
    status 1.
    """

    @functools.wraps(func)
    def wrapper(cfg: Any) -> Any:
        try:
            return func(cfg)
        except KeyboardInterrupt:  # in a multirun too: Ctrl-C stops the sweep, not one job
            fail(INTERRUPTED)
        except Interrupted as err:
            fail(err)
        except UserError as err:
            message = one_line(err)
            run_dir = _multirun_job_dir()
            if run_dir is None:
                fail(err)

            atomic_write_text(run_dir / ERROR_FILE, message + "\n")
            print(f"error: {message} (job {run_dir.name}; the sweep goes on)", file=sys.stderr)
            return float("nan")

    return wrapper  # type: ignore[return-value]


def run_hydra(main: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` command; a config Hydra cannot compose (an unknown experiment, a
    key that is not in the config, a malformed override) is one ``error:`` line, exit 1.

    Hydra prints such errors over many lines with advice about ``HYDRA_FULL_ERROR``; with that
    variable set it raises them instead, and here they are put in one line."""
    from hydra.errors import HydraException  # lazy: Hydra is the command's, not this module's

    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        main()
    except HydraException as err:
        print(f"error: {composition_message(err)}", file=sys.stderr)
        raise SystemExit(1) from None


def composition_message(err: BaseException) -> str:
    """Hydra's message in one line: the choices it lists joined with commas."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("full_key:", "object_type="))]
    if "Config search path:" in lines:  # where Hydra looked: not what the user can change
        lines = lines[: lines.index("Config search path:")]
    for index, line in enumerate(lines):
        if line.startswith("Available options"):
            return f"{lines[0]}; {line} {', '.join(lines[index + 1 :])}"
    return " ".join(lines) or type(err).__name__


def _multirun_job_dir() -> Path | None:
    """This job's output directory when it runs inside a Hydra multirun, else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        config = HydraConfig.get()
    except (ImportError, ValueError):
        return None
    if config.mode != RunMode.MULTIRUN:
        return None
    return Path(config.runtime.output_dir)
