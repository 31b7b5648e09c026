"""The one family of user-facing errors (``util/cli.py`` has the wrappers that print them).

A :class:`UserError` is caused by input the user can fix (a setting, a file, a download). Its
message is one line that names the setting or file and says what to do. Entry points print it
as ``error: <message>`` and exit with status 1 instead of showing a traceback; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

ERROR_FILE = "error.txt"  # a failed multirun job's one-line error, beside where metrics.json goes


class UserError(RuntimeError):
    """One-line, user-facing error: bad input, not a bug."""


class ConfigError(UserError):
    """A setting (a Hydra override or config value) that cannot work."""


class DataError(UserError):
    """The dataset: missing, malformed, or not what the settings ask for."""


class DiskError(DataError):
    """A full, read-only or forbidden place to write: the same for every process that tries."""


class DownloadError(UserError):
    """A download that failed on every mirror."""


class ArchiveError(UserError):
    """An archive that is corrupt, truncated or unsafe."""


class VectorsError(UserError):
    """Word vectors that cannot be read or are unusable (non-finite values, wrong size)."""


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, remote, or not one of this project's."""


class TrainingError(UserError):
    """Training that cannot give a meaningful result (a loss that became NaN or infinite)."""


class Stopped(UserError):
    """A run stopped from outside (SIGTERM: SLURM's preemption, ``timeout``): never a success."""

    exit_status = 143  # 128 + SIGTERM, as a shell reports a process that SIGTERM ended


class Interrupted(Stopped):
    """Ctrl-C (SIGINT): said in one line, as a stop, and never a success."""

    exit_status = 130  # 128 + SIGINT


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
