"""Temporary siblings for directories that are built, then renamed into place when complete.

A writer killed midway (SIGKILL, power loss) leaves its temporary directory behind; it is never
read, because only the final name is, but an aclImdb extraction or a 300-d vectors cache is
hundreds of MB. The name records the writer's host and process id, so a later writer on the same
host removes the leftovers of processes that no longer exist and leaves live writers alone
(including writers on other hosts sharing the directory, whose process ids mean nothing here).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
from pathlib import Path


def _host() -> str:
    return socket.gethostname().replace("/", "_").replace("@", "_")


def staging_path(final: Path) -> Path:
    """A fresh temporary sibling of ``final``: ``.<name>.tmp-<host>@<pid>-<random>``."""
    return final.parent / f".{final.name}.tmp-{_host()}@{os.getpid()}-{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_staging(final: Path) -> list[Path]:
    """Remove the temporary siblings of ``final`` left by dead processes on this host."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return []
    prefix = f".{final.name}.tmp-"
    removed = []
    for tmp in final.parent.glob(f"{prefix}*"):
        owner_host, _, rest = tmp.name[len(prefix) :].rpartition("@")
        pid = rest.split("-", 1)[0]
        if owner_host == _host() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed
