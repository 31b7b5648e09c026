"""Safe tar extraction and zip member reading, on archives generated here."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from embedclf.archive import ArchiveError, check_member_name, read_zip_member, safe_extract_tar
from embedclf.staging import staging_path


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    elif kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "/etc/passwd"
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def make_tar(
    path: Path, members: list[tuple[str, bytes]], extra: tuple[str, bytes] | None = None
) -> Path:
    """A tar.gz of regular files `members`, then one member `extra` of another type."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            add(tar, name, data)
        if extra is not None:
            add(tar, extra[0], kind=extra[1])
    return path


def assert_nothing_left(dest: Path) -> None:
    """No `dest` and no temporary extraction directory beside it."""
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}.tmp")] == []


def test_parent_member_is_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", [("top/ok.txt", b"ok"), ("../evil.txt", b"evil")])
    dest = tmp_path / "out" / "tree"

    with pytest.raises(ArchiveError) as caught:
        safe_extract_tar(archive, dest)

    message = str(caught.value)
    assert "\n" not in message
    assert "'../evil.txt'" in message and "'..'" in message and str(archive) in message
    assert_nothing_left(dest)
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_absolute_member_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "evil.txt"
    archive = make_tar(tmp_path / "a.tar.gz", [("top/ok.txt", b"ok"), (str(target), b"evil")])
    dest = tmp_path / "tree"

    with pytest.raises(ArchiveError, match="absolute path"):
        safe_extract_tar(archive, dest)

    assert_nothing_left(dest)
    assert not target.exists()


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (tarfile.SYMTYPE, "symlink"),
        (tarfile.LNKTYPE, "hardlink"),
        (tarfile.CHRTYPE, "device"),
        (tarfile.FIFOTYPE, "FIFO"),
    ],
)
def test_special_member_is_refused(tmp_path: Path, kind: bytes, reason: str) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", [("top/ok.txt", b"ok")], extra=("top/x", kind))
    dest = tmp_path / "tree"

    with pytest.raises(ArchiveError, match=f"member 'top/x' is a {reason}"):
        safe_extract_tar(archive, dest)

    assert_nothing_left(dest)


def test_unsafe_member_is_refused_even_if_not_chosen(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", [("top/ok.txt", b"ok"), ("../evil.txt", b"evil")])

    with pytest.raises(ArchiveError):
        safe_extract_tar(archive, tmp_path / "tree", members=lambda name: name.startswith("top/"))


def test_good_archive_extracts_chosen_members(tmp_path: Path) -> None:
    files = {
        "aclImdb/README": b"readme",
        "aclImdb/train/pos/0_9.txt": b"great",
        "aclImdb/train/neg/1_2.txt": b"awful",
        "aclImdb/train/unsup/2_0.txt": b"unlabelled",
        "aclImdb/test/pos/3_8.txt": os.urandom(50_000),
    }
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add(tar, "aclImdb", kind=tarfile.DIRTYPE)
        for name, data in files.items():
            add(tar, name, data)
    dest = tmp_path / "cache" / "tree"

    result = safe_extract_tar(archive, dest, members=lambda name: "/unsup/" not in name)

    assert result == dest
    written = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    assert written == {name for name in files if "/unsup/" not in name}
    for name in written:
        assert (dest / name).read_bytes() == files[name]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tree"]  # no temporary dir left
    # a finished extraction is not redone, even if the archive is gone
    archive.unlink()
    assert safe_extract_tar(archive, dest) == dest


def test_truncated_archive(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "a.tar.gz", [(f"top/{i}.bin", os.urandom(20_000)) for i in range(10)]
    )
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    dest = tmp_path / "tree"

    with pytest.raises(ArchiveError) as caught:
        safe_extract_tar(archive, dest)

    message = str(caught.value)
    assert "\n" not in message
    assert str(archive) in message and "corrupt or truncated" in message
    assert "delete it and download it again" in message
    assert_nothing_left(dest)


def test_not_an_archive(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(os.urandom(1000))
    dest = tmp_path / "tree"

    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        safe_extract_tar(archive, dest)

    assert_nothing_left(dest)


@pytest.fixture
def zip_path(tmp_path: Path) -> Path:
    path = tmp_path / "glove.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("glove.6B.50d.txt", "the 0.1 0.2\nof 0.3 0.4\n")
        zf.writestr("glove.6B.100d.txt", "the 0.1 0.2 0.3\n")
    return path


def test_zip_member_is_read_without_extracting(zip_path: Path) -> None:
    with read_zip_member(zip_path, "glove.6B.50d.txt") as stream:
        assert stream.readline() == b"the 0.1 0.2\n"
        assert stream.read() == b"of 0.3 0.4\n"
    assert [p.name for p in zip_path.parent.iterdir()] == ["glove.zip"]


def test_missing_zip_member_lists_members(zip_path: Path) -> None:
    with pytest.raises(ArchiveError) as caught:
        read_zip_member(zip_path, "glove.6B.300d.txt")

    message = str(caught.value)
    assert "\n" not in message
    assert "glove.6B.300d.txt" in message
    assert "glove.6B.50d.txt" in message and "glove.6B.100d.txt" in message


def test_unsafe_zip_member_name(zip_path: Path) -> None:
    with pytest.raises(ArchiveError, match=r"'\.\.'"):
        read_zip_member(zip_path, "../glove.6B.50d.txt")


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "glove.zip"
    path.write_bytes(b"<html>not found</html>")

    with pytest.raises(ArchiveError) as caught:
        read_zip_member(path, "glove.6B.50d.txt")

    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "name", ["../x", "a/../b", "a/..", "/etc/passwd", "C:/x", "c:\\x", "a\\..\\b"]
)
def test_check_member_name_refuses(name: str) -> None:
    with pytest.raises(ArchiveError):
        check_member_name(name)


@pytest.mark.parametrize("name", ["a.txt", "a/b/c.txt", "a..b/c", "..a", "./a"])
def test_check_member_name_accepts(name: str) -> None:
    check_member_name(name)


def test_killed_extraction_is_never_used_and_is_cleaned_up(tmp_path: Path) -> None:
    files = {f"top/{i}.txt": f"review {i}".encode() * 50 for i in range(200)}
    archive = make_tar(tmp_path / "a.tar.gz", list(files.items()))
    dest = tmp_path / "cache" / "tree"
    slow = (
        "import sys, time; from pathlib import Path; from embedclf.archive import safe_extract_tar;"
        "safe_extract_tar(Path(sys.argv[1]), Path(sys.argv[2]),"
        " members=lambda name: time.sleep(0.05) or True)"
    )
    writer = subprocess.Popen([sys.executable, "-c", slow, str(archive), str(dest)])
    deadline = time.monotonic() + 60
    while not any(dest.parent.glob(".tree.tmp-*/top/*.txt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    [killed] = dest.parent.glob(".tree.tmp-*")
    assert not dest.exists()  # the half-written extraction is not under the final name
    # leftovers of a live process, or of a process on another host, are not touched
    live = staging_path(dest)  # named for this (live) test process
    elsewhere = dest.parent / ".tree.tmp-another-host@1-00000000"
    live.mkdir()
    elsewhere.mkdir()

    assert safe_extract_tar(archive, dest) == dest

    assert not killed.exists()
    assert live.is_dir() and elsewhere.is_dir()
    assert {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()} == set(files)
