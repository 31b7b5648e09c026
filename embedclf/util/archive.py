"""Reading archives: tar members as a stream, one zip member, or a whole archive unpacked.

Review texts are read straight from the compressed tar stream (one pass, no 100,000 small
files on disk), and a vectors file straight from its zip member. Tables, which are read by
pyarrow in blocks and need a real file, are unpacked once into the cache (:func:`extract`).
An archive with a member that could not be extracted safely (an absolute path, ``..``, a
drive letter, a link, a device or a FIFO) is refused outright: such an archive is corrupt or
hostile, and no part of it is trusted.
"""

from __future__ import annotations

import errno
import gzip
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from embedclf.util.errors import ArchiveError
from embedclf.util.fileio import atomic_directory, exclusive

# what a member's own name can cause while it is written (not the disk's state)
MEMBER_ERRORS = {errno.EEXIST, errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR}


def _unsafe_name(name: str) -> str | None:
    """Why the member name ``name`` could escape an extraction directory, or None."""
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
            f"refusing to read {archive}: member '{member.name}' {reason}; "
            "the archive is unsafe or corrupt, delete it and download it again"
        )


def iter_tar_files(archive: Path, wanted: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """``(name, content)`` of the regular members of a tar (plain or compressed) that
    ``wanted(name)`` chooses, in archive order, in one pass over the stream.

    Every member is checked, read or not; an unsafe one stops the reading with an
    :class:`ArchiveError`, as does a truncated or corrupt archive.
    """
    from tqdm import tqdm

    archive = Path(archive)
    try:
        size = archive.stat().st_size
        gzipped = _is_gzip(archive)
        with (
            open(archive, "rb") as raw,
            # a progress bar on terminals only (disable=None), by compressed bytes read
            tqdm.wrapattr(
                raw, "read", total=size, desc=f"reading {archive.name}", disable=None
            ) as counted,
            _tar_stream(counted, gzipped) as (tar, rest),
        ):
            for member in tar:
                _refuse_unsafe(archive, member)
                if member.isfile() and wanted(member.name):
                    stream = tar.extractfile(member)
                    assert stream is not None  # a regular file always has a stream
                    yield member.name, stream.read()
            rest()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ArchiveError(
            f"{archive} is corrupt or truncated ({err}); delete it and download it again"
        ) from None
    except OSError as err:
        raise ArchiveError(f"cannot read {archive}: {err.strerror or err}") from None


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(2) == b"\x1f\x8b"


@contextmanager
def _tar_stream(
    raw: IO[bytes], gzipped: bool
) -> Iterator[tuple[tarfile.TarFile, Callable[[], None]]]:
    """A tar read as a stream, and ``rest()`` to call after its last member.

    tarfile takes a header cut short for the end of the archive, and its own gzip stream
    checks no CRC, so a .tar.gz cut in half reads as a shorter archive without a word. A
    gzip file is therefore decompressed by :class:`gzip.GzipFile`, and ``rest()`` reads it
    to its end, where a truncated or damaged stream raises (EOFError, BadGzipFile).
    """
    if not gzipped:
        with tarfile.open(fileobj=raw, mode="r|*") as tar:
            yield tar, lambda: None
        return
    with gzip.GzipFile(fileobj=raw) as unzipped, tarfile.open(fileobj=unzipped, mode="r|") as tar:

        def rest() -> None:
            while unzipped.read(1 << 20):
                pass

        yield tar, rest


def is_zip_name(path: Path | str) -> bool:
    return str(path).lower().endswith(".zip")


def choose_zip_member(
    path: Path, member: str | None, how: str = "choose one with vectors.member"
) -> str:
    """The member of the zip ``path`` to read: ``member`` when the archive has it, else the
    archive's only file (folders and macOS resource forks aside); ``how`` says how to choose
    when neither is there.

    The one rule for every zip this project reads (GloVe's ``glove.6B.zip`` holds four sizes,
    ``glove.6B.50d.zip`` one file, a user's zip any name).
    """
    if member is not None:
        check_member_name(member)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [
                name
                for name in archive.namelist()
                if not name.endswith("/") and not name.startswith("__MACOSX/")
            ]
    except (zipfile.BadZipFile, OSError) as err:
        raise ArchiveError(
            f"{path} is not a readable zip archive ({err}); delete it and download it again, "
            "or point at the unzipped file"
        ) from None
    if member in names:
        return member
    if len(names) == 1:
        return names[0]
    shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
    if member is None:
        raise ArchiveError(f"{path} holds {len(names)} files; {how}: {shown or 'none'}")
    raise ArchiveError(f"{path} has no member '{member}'; it holds: {shown or 'nothing'}")


def is_archive_name(path: Path | str) -> bool:
    """Whether :func:`extract` unpacks ``path`` (a tar, plain or compressed, or a zip)."""
    name = str(path).lower()
    return is_zip_name(name) or name.endswith((".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz"))


def extract(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into the directory ``dest``, once; return ``dest``.

    Members are streamed to disk (a 1.6 GB CSV is never held in memory), every member is
    checked first as in :func:`iter_tar_files`, and the tree is filled in a staging
    directory that is renamed to ``dest`` only when complete, under a lock: a killed or
    failed extraction leaves nothing at ``dest`` to be taken for a finished one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(dest, f"the files of {archive.name}"):
        if dest.is_dir():
            return dest
        with atomic_directory(dest) as tmp:
            try:
                if is_zip_name(archive):
                    _extract_zip(archive, tmp)
                else:
                    _extract_tar(archive, tmp)
            except (
                tarfile.TarError,
                zipfile.BadZipFile,
                EOFError,
                zlib.error,
                gzip.BadGzipFile,
            ) as err:
                raise ArchiveError(
                    f"{archive} is corrupt or truncated ({err}); delete it and download it again"
                ) from None
            except RuntimeError as err:  # zipfile: an encrypted member
                raise ArchiveError(f"{archive} cannot be unpacked ({err})") from None
            except OSError as err:
                if err.errno not in MEMBER_ERRORS:  # a full or read-only disk: said as such
                    raise
                raise ArchiveError(
                    f"{archive} cannot be unpacked: member {err.filename} ({err.strerror}; "
                    "two members of one name, or a name too long); the archive is unsafe or "
                    "corrupt, delete it and download it again"
                ) from None
    return dest


def _copy_member(stream: IO[bytes], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with stream, open(target, "xb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


def _extract_tar(archive: Path, into: Path) -> None:
    with open(archive, "rb") as raw, _tar_stream(raw, _is_gzip(archive)) as (tar, rest):
        for member in tar:
            _refuse_unsafe(archive, member)
            if member.isfile():
                stream = tar.extractfile(member)
                assert stream is not None  # a regular file always has a stream
                _copy_member(stream, into / member.name)
        rest()


def _extract_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            kind = stat.S_IFMT(info.external_attr >> 16)
            reason = _unsafe_name(info.filename) or (
                "is a link or a device" if kind not in (0, stat.S_IFREG, stat.S_IFDIR) else None
            )
            if reason is not None:
                raise ArchiveError(
                    f"refusing to read {archive}: member '{info.filename}' {reason}; "
                    "the archive is unsafe or corrupt, delete it and download it again"
                )
            if not info.is_dir() and not info.filename.startswith("__MACOSX/"):
                _copy_member(zipped.open(info), into / info.filename)
