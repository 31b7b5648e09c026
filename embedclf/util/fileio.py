"""Files and directories that appear complete or not at all, and the leftovers of killed writers.

Every file or directory this project writes for later reading (token caches, vectors caches,
checkpoints, ``metrics.json``, plots) is written under a temporary sibling name and renamed
into place when complete, so a reader never takes a half-written one for a finished one.

A writer killed midway (SIGKILL, power loss) leaves its temporary sibling behind. Its name
records the writer's host and process id: ``.<name>.tmp-<host>@<pid>-<random>``, so a later
writer of the same target on the same host removes the leftovers of processes that no longer
exist and leaves live writers alone (and writers on other hosts sharing the directory, whose
process ids mean nothing here).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from embedclf.util.errors import DiskError


def _host() -> str:
    return socket.gethostname().replace("/", "_").replace("@", "_")


def staging_path(final: Path) -> Path:
    """A fresh temporary sibling of ``final``: ``.<name>.tmp-<host>@<pid>-<random>``."""
    final = Path(final)
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
    """Remove the temporary siblings of ``final`` (files or directories) left by dead
    processes on this host."""
    final = Path(final)
    if os.name != "posix" or not final.parent.is_dir():  # os.kill(pid, 0) kills on Windows
        return []
    prefix = f".{final.name}.tmp-"
    removed = []
    for tmp in final.parent.glob(f"{glob_escape(prefix)}*"):
        owner_host, _, rest = tmp.name[len(prefix) :].rpartition("@")
        pid = rest.split("-", 1)[0]
        if owner_host == _host() and pid.isdigit() and not _pid_alive(int(pid)):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


# a full, read-only or forbidden place to write: the user's to fix, said in one line
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _disk_message(final: Path, err: OSError, written: int) -> str:
    where = final.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(where).free
        return (
            f"cannot write {final}: no space left ({free / 1e6:,.0f} MB free in {where}, "
            f"{max(written, 1) / 1e6:,.1f} MB or more needed); free some, or choose another "
            "directory (paths.cache_dir, hydra.run.dir)"
        )
    return (
        f"cannot write {final}: {err.strerror} ({where} is read-only or not yours); choose a "
        "writable directory (paths.cache_dir, hydra.run.dir)"
    )


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    On any error (or a KeyboardInterrupt) the temporary file is removed and ``path`` is left
    as it was. Leftovers of killed writers of the same ``path`` are removed first. The file
    gets the usual permissions (0666 less the umask), like any other file the user writes.
    """
    if "w" not in mode:
        raise ValueError(f"atomic_write needs a write mode, got {mode!r}")
    final = Path(path)
    written = [0]
    with _disk_errors_said(final, written):
        tmp = _fresh_staging(final)
        try:
            encoding = None if "b" in mode else "utf-8"
            with open(tmp, mode, encoding=encoding) as file:
                try:
                    yield file
                finally:
                    written[0] = file.tell()
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling directory of ``path`` to fill; renamed to ``path`` on success.

    ``path`` must not exist yet (the caller holds its lock, :func:`exclusive`). On any error
    the temporary directory is removed, so a killed or failed writer never leaves a
    directory at ``path`` to be taken for a finished one. Write its files with
    :func:`write_synced`, so that what is renamed into place is on the disk.
    """
    final = Path(path)
    written = [0]
    with _disk_errors_said(final, written):
        tmp = _fresh_staging(final)
        tmp.mkdir()
        try:
            yield tmp
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                written[0] = sum(p.stat().st_size for p in tmp.iterdir())
                shutil.rmtree(tmp, ignore_errors=True)


def _fresh_staging(final: Path) -> Path:
    """A new staging name for ``final``, after removing dead writers' leftovers."""
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(final)
    return staging_path(final)


@contextlib.contextmanager
def _disk_errors_said(final: Path, written: list[int]) -> Iterator[None]:
    """A full, read-only or forbidden disk as one :class:`DiskError` line naming ``final``."""
    try:
        yield
    except OSError as err:
        if err.errno not in DISK_ERRORS:
            raise
        raise DiskError(_disk_message(final, err, written[0])) from None


def write_synced(path: Path, write: Any) -> None:
    """Create ``path``, let ``write(file)`` fill it, and flush it to the disk."""
    with open(path, "xb") as file:
        write(file)
        file.flush()
        os.fsync(file.fileno())


def file_crc32(path: Path, block: int = 1 << 24) -> int:
    """The CRC-32 of a file, read in blocks (not mapped: checking a large file costs no
    resident memory)."""
    crc, buffer = 0, bytearray(block)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as file:
        while read := file.readinto(buffer):
            crc = zlib.crc32(view[:read], crc)
    return crc


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as file:
        file.write(text)


def atomic_write_json(path: str | os.PathLike, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold an inter-process file lock ``<path>.lock`` while building ``what``.

    Parallel jobs that need the same cache entry (a joblib sweep started on an empty cache)
    wait for the first one instead of all building it at the same time.
    """
    import logging

    from filelock import FileLock, Timeout

    lock = FileLock(f"{path}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logging.getLogger(__name__).info("waiting for another process building %s", what)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
