"""Safe archive extraction and reading.

Tar members that are links, devices or FIFOs, or whose names are absolute or contain ``..``,
are refused outright, then the stdlib ``data`` filter applies. Extraction goes to a temporary
sibling directory that is renamed to ``dest`` only when complete, so an existing ``dest`` is
always a finished extraction.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO

from embedclf.staging import remove_stale_staging, staging_path

# tarfile's extraction filters came with Python 3.11.4 / 3.10.12; Debian 12's 3.11.2 lacks them
_HAS_FILTERS = hasattr(tarfile, "data_filter")

log = logging.getLogger(__name__)


class ArchiveError(RuntimeError):
    """One-line, user-facing error about an archive."""


def _unsafe_name(name: str) -> str | None:
    """Why the member name ``name`` could escape the extraction directory, or None."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/"):
        return "has an absolute path"
    if re.match(r"[A-Za-z]:", normalized):
        return "has a drive letter"
    if ".." in normalized.split("/"):
        return "has '..'"
    return None


def check_member_name(name: str) -> None:
    """Raise ArchiveError for absolute paths, drive letters, or any '..' component."""
    reason = _unsafe_name(name)
    if reason is not None:
        raise ArchiveError(f"archive member '{name}' {reason}; refusing to read it")


def _refuse_unsafe(archive: Path, member: tarfile.TarInfo) -> None:
    if member.issym():
        reason = "is a symlink"
    elif member.islnk():
        reason = "is a hardlink"
    elif member.ischr() or member.isblk():
        reason = "is a device"
    elif member.isfifo():
        reason = "is a FIFO"
    else:
        reason = _unsafe_name(member.name)
    if reason is not None:
        raise ArchiveError(
            f"refusing to extract {archive}: member '{member.name}' {reason}; "
            "the archive is unsafe or corrupt, delete it and download it again"
        )


def _safe_filter(archive: Path, member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
    """A tarfile extraction filter: refuse unsafe members, then apply the ``data`` filter."""
    _refuse_unsafe(archive, member)
    return tarfile.data_filter(member, dest_path)


def safe_extract_tar(
    archive: Path, dest: Path, *, members: Callable[[str], bool] | None = None
) -> Path:
    """Extract `archive` (tar, tar.gz) into `dest` atomically: into a temporary sibling dir
    (``staging.staging_path``), then os.replace/rename to `dest` only
    when every member is written. If `dest` already exists, return it without doing anything
    (a completed extraction). `members`, when given, is a predicate on the member name
    choosing which members to extract (e.g. skip aclImdb/train/unsup/). Returns dest."""
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        return dest
    tmp = staging_path(dest)
    log.info("extracting %s to %s", archive, dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale_staging(dest):
            log.info("removed %s, left by a killed extraction", stale)
        tmp.mkdir()
        _extract_into(archive, tmp, members)
        _move_into_place(tmp, dest)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _as_archive_error(err, archive, dest) from None
    except BaseException:  # ArchiveError, KeyboardInterrupt, an error in `members`
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _extract_into(archive: Path, tmp: Path, members: Callable[[str], bool] | None) -> None:
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:  # one pass over a compressed stream
            _refuse_unsafe(archive, member)  # every member, extracted or not
            if members is None or members(member.name):
                _extract_member(tar, member, tmp, archive)


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, tmp: Path, archive: Path):
    if _HAS_FILTERS:
        # like extractall, leave directories' modes alone so that a read-only
        # directory cannot block its own contents
        tar.extract(
            member, tmp, set_attrs=not member.isdir(), filter=partial(_safe_filter, archive)
        )
    else:
        # no filters in this Python: _refuse_unsafe has refused what the data filter would,
        # and no owner, mode or time is taken from the archive
        tar.extract(member, tmp, set_attrs=False)


def _move_into_place(tmp: Path, dest: Path) -> None:
    try:
        os.replace(tmp, dest)
    except OSError:
        if not dest.is_dir():
            raise
        # another process finished the same extraction first; theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)


def _as_archive_error(err: Exception, archive: Path, dest: Path) -> ArchiveError:
    """The one-line ArchiveError for a failed extraction."""
    if _HAS_FILTERS and isinstance(err, tarfile.FilterError):
        return ArchiveError(
            f"refusing to extract {archive}: {err}; "
            "the archive is unsafe or corrupt, delete it and download it again"
        )
    if isinstance(err, OSError) and err.errno is not None:  # the file system, not the data
        where = f" ({err.filename})" if err.filename else ""
        return ArchiveError(f"cannot extract {archive} into {dest.parent}: {err.strerror}{where}")
    return ArchiveError(
        f"{archive} is corrupt or truncated ({err}); delete it and download it again"
    )


def read_zip_member(archive: Path, member: str) -> IO[bytes]:
    """Open one member of a zip for reading, without extracting the rest."""
    check_member_name(member)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise ArchiveError(
            f"{archive} is not a valid zip file (corrupt or truncated); "
            "delete it and download it again"
        ) from None
    with zf:
        try:
            # the member stays readable after the ZipFile is closed: it holds its own reference
            return zf.open(member)
        except KeyError:
            names = zf.namelist()
    shown = ", ".join(names[:20])
    if len(names) > 20:
        shown += f", ... ({len(names) - 20} more)"
    raise ArchiveError(f"{archive} has no member '{member}'; it has: {shown or 'nothing'}")
