"""Reading archives without extracting them (tar streams, one zip member), and atomic writes,
on archives and files generated here."""

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

from embedclf.data.readers.folder import read_archive
from embedclf.util.archive import check_member_name, choose_zip_member, iter_tar_files
from embedclf.util.errors import ArchiveError
from embedclf.util.fileio import atomic_write, atomic_write_text, staging_path


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


def read_all(archive: Path) -> list[tuple[str, bytes]]:
    return list(iter_tar_files(archive, lambda name: True))


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- tar streams ---------------------------------------------------------------------------
def test_parent_member_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", [("top/ok.txt", b"ok"), ("../evil.txt", b"evil")])
    before = listing(tmp_path)

    with pytest.raises(ArchiveError) as caught:
        read_all(archive)

    message = str(caught.value)
    assert "\n" not in message
    assert "'../evil.txt'" in message and "'..'" in message and str(archive) in message
    assert listing(tmp_path) == before and not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/tmp/elsewhere/evil.txt", "absolute path"),
        ("top/../../evil.txt", "'..'"),
        ("C:/evil.txt", "drive letter"),
        ("top\\..\\..\\evil.txt", "'..'"),
    ],
)
def test_unsafe_names_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", [("top/ok.txt", b"ok"), (name, b"evil")])
    with pytest.raises(ArchiveError, match=reason):
        read_all(archive)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (tarfile.SYMTYPE, "symlink"),
        (tarfile.LNKTYPE, "hardlink"),
        (tarfile.CHRTYPE, "device"),
        (tarfile.BLKTYPE, "device"),
        (tarfile.FIFOTYPE, "FIFO"),
    ],
)
def test_special_member_is_refused(tmp_path: Path, kind: bytes, reason: str) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", [("top/ok.txt", b"ok")], extra=("top/x", kind))
    before = listing(tmp_path)
    with pytest.raises(ArchiveError, match=f"member 'top/x' is a {reason}"):
        read_all(archive)
    assert listing(tmp_path) == before


def test_unsafe_member_is_refused_even_if_not_chosen(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", [("top/ok.txt", b"ok"), ("../evil.txt", b"evil")])
    with pytest.raises(ArchiveError):
        list(iter_tar_files(archive, lambda name: name.startswith("top/")))


def test_chosen_regular_members_are_read_in_archive_order(tmp_path: Path) -> None:
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
    before = listing(tmp_path)

    got = list(iter_tar_files(archive, lambda name: "/unsup/" not in name))

    assert got == [(n, d) for n, d in files.items() if "/unsup/" not in n]
    assert listing(tmp_path) == before  # nothing extracted, nothing written


def test_labelled_texts_come_in_class_then_file_name_order(tmp_path: Path) -> None:
    # packed in an order unlike the sorted one, with a README and unlabelled reviews
    members = [
        ("aclImdb/README", b"readme"),
        ("aclImdb/train/pos/2_7.txt", b"train pos 2"),
        ("aclImdb/train/neg/9_1.txt", b"train neg 9"),
        ("aclImdb/train/unsup/0_0.txt", b"unlabelled"),
        ("aclImdb/test/pos/0_8.txt", b"test pos 0"),
        ("aclImdb/train/pos/10_9.txt", b"train pos 10"),
        ("aclImdb/train/neg/1_2.txt", b"train neg 1"),
        ("aclImdb/test/neg/5_3.txt", b"test neg 5"),
    ]
    archive = make_tar(tmp_path / "a.tar.gz", members)
    before = listing(tmp_path)

    texts, unsup = read_archive(archive)

    assert texts.classes == ["neg", "pos"]
    # file names sorted as strings: 10_9 before 2_7
    assert texts.texts["train"] == ["train neg 1", "train neg 9", "train pos 10", "train pos 2"]
    assert texts.labels["train"].tolist() == [0, 0, 1, 1]
    assert texts.texts["test"] == ["test neg 5", "test pos 0"]
    assert texts.labels["test"].tolist() == [0, 1]
    assert unsup == []
    assert read_archive(archive, unlabelled=True)[1] == ["unlabelled"]
    assert listing(tmp_path) == before


def test_truncated_archive(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "a.tar.gz", [(f"top/{i}.bin", os.urandom(20_000)) for i in range(10)]
    )
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])

    with pytest.raises(ArchiveError) as caught:
        read_all(archive)

    message = str(caught.value)
    assert "\n" not in message
    assert str(archive) in message and "corrupt or truncated" in message
    assert "delete it and download it again" in message


def test_not_an_archive(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(os.urandom(1000))
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        read_all(archive)


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="cannot read"):
        read_all(tmp_path / "absent.tar.gz")


# -- zip members ------------------------------------------------------------------------------
def make_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


@pytest.fixture
def zip_path(tmp_path: Path) -> Path:
    return make_zip(
        tmp_path / "glove.zip",
        {"glove.6B.50d.txt": "the 0.1 0.2\n", "glove.6B.100d.txt": "the 0.1 0.2 0.3\n"},
    )


def test_named_member_is_chosen(zip_path: Path) -> None:
    assert choose_zip_member(zip_path, "glove.6B.100d.txt") == "glove.6B.100d.txt"
    assert [p.name for p in zip_path.parent.iterdir()] == ["glove.zip"]


def test_upper_case_multi_member_zip_with_member_set(tmp_path: Path) -> None:
    """Issue 10: a multi-member GLOVE.ZIP failed even with vectors.member set."""
    from embedclf.vectors.cache import load_vectors

    path = make_zip(
        tmp_path / "GLOVE.ZIP",
        {"glove.6B.50d.txt": "the 0.1 0.2\nof 0.3 0.4\n", "glove.6B.100d.txt": "x 1 2 3\n"},
    )
    assert choose_zip_member(path, "glove.6B.50d.txt") == "glove.6B.50d.txt"
    vectors = load_vectors(path, member="glove.6B.50d.txt", cache_dir=tmp_path / "cache")
    assert vectors.words == ["the", "of"] and vectors.dim == 2


def test_single_member_zip_needs_no_name(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "one.zip",
        {"docs/": "", "__MACOSX/._vectors.txt": "fork", "vectors.txt": "a 1\n"},
    )
    assert choose_zip_member(path, None) == "vectors.txt"
    # a configured name the zip lacks falls back to its only file (glove.6B.50d.zip's case)
    assert choose_zip_member(path, "glove.6B.50d.txt") == "vectors.txt"


def test_several_members_and_no_name_lists_them(zip_path: Path) -> None:
    with pytest.raises(ArchiveError) as caught:
        choose_zip_member(zip_path, None)
    message = str(caught.value)
    assert "\n" not in message and "vectors.member" in message
    assert "glove.6B.50d.txt" in message and "glove.6B.100d.txt" in message


def test_missing_zip_member_lists_members(zip_path: Path) -> None:
    with pytest.raises(ArchiveError) as caught:
        choose_zip_member(zip_path, "glove.6B.300d.txt")
    message = str(caught.value)
    assert "\n" not in message
    assert "no member 'glove.6B.300d.txt'" in message
    assert "glove.6B.50d.txt" in message and "glove.6B.100d.txt" in message


def test_unsafe_zip_member_name(zip_path: Path) -> None:
    with pytest.raises(ArchiveError, match=r"'\.\.'"):
        choose_zip_member(zip_path, "../glove.6B.50d.txt")


@pytest.mark.parametrize("content", [b"<html>not found</html>", b"", os.urandom(3000)])
def test_not_a_zip(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "glove.zip"
    path.write_bytes(content)
    with pytest.raises(ArchiveError) as caught:
        choose_zip_member(path, "glove.6B.50d.txt")
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value) and "not a readable zip" in str(caught.value)


@pytest.mark.parametrize(
    "name", ["../x", "a/../b", "a/..", "/etc/passwd", "C:/x", "c:\\x", "a\\..\\b"]
)
def test_check_member_name_refuses(name: str) -> None:
    with pytest.raises(ArchiveError):
        check_member_name(name)


@pytest.mark.parametrize("name", ["a.txt", "a/b/c.txt", "a..b/c", "..a", "./a"])
def test_check_member_name_accepts(name: str) -> None:
    check_member_name(name)


# -- atomic writes ---------------------------------------------------------------------------
def test_atomic_write_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out" / "metrics.json"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError, match="midway"), atomic_write(target, "w") as file:
        file.write("half of the new")
        raise RuntimeError("midway")
    assert target.read_text() == "old\n"  # the previous contents, untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


def test_atomic_write_creates_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_killed_writer_leftover_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "cache.npz"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from embedclf.util.fileio import atomic_write\n"
            "with atomic_write(sys.argv[1]) as f:\n"
            "    f.write(b'half'); f.flush(); time.sleep(60)",
            str(target),
        ]
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".cache.npz.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    [killed] = tmp_path.glob(".cache.npz.tmp-*")
    assert not target.exists()  # the half-written file is not under the final name
    # leftovers of a live process, or of a process on another host, are not touched
    live = staging_path(target)  # named for this (live) test process
    elsewhere = tmp_path / ".cache.npz.tmp-another-host@1-00000000"
    live.write_bytes(b"live")
    elsewhere.write_bytes(b"elsewhere")

    with atomic_write(target) as file:
        file.write(b"complete")

    assert target.read_bytes() == b"complete"
    assert not killed.exists()
    assert live.is_file() and elsewhere.is_file()


@pytest.mark.parametrize(
    "members", [["a/x.csv", "a/x.csv"], ["a/d", "a/d/x.csv"], ["a/" + "n" * 300 + ".csv"]]
)
def test_extract_refuses_members_that_cannot_be_written_in_one_line(members, tmp_path):
    """Two members of one name, a file then a folder of its name, a name too long: one line,
    and nothing left at the destination."""
    from embedclf.util.archive import extract
    from embedclf.util.errors import ArchiveError

    archive = tmp_path / "bad.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in members:
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"1,a"))
    with pytest.raises(ArchiveError) as caught:
        extract(archive, tmp_path / "out")
    assert "cannot be unpacked: member" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_tar_gz_cut_anywhere_is_refused_not_read_as_a_shorter_archive(tmp_path):
    """tarfile takes a cut header for the end of the archive and its gzip stream checks no
    CRC: cut at a block boundary, the archive read as a smaller dataset without a word."""
    from conftest import write_tree
    from embedclf.util.archive import extract, iter_tar_files
    from embedclf.util.errors import ArchiveError

    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(write_tree(tmp_path / "aclImdb", per_class=10), arcname="aclImdb")
    raw = archive.read_bytes()
    assert len(list(iter_tar_files(archive, lambda name: True))) > 40
    for tenth in range(1, 10):
        cut = tmp_path / f"cut{tenth}.tar.gz"
        cut.write_bytes(raw[: len(raw) * tenth // 10])
        with pytest.raises(ArchiveError, match="corrupt or truncated"):
            list(iter_tar_files(cut, lambda name: True))
        with pytest.raises(ArchiveError, match="corrupt or truncated"):
            extract(cut, tmp_path / f"out{tenth}")
        assert not (tmp_path / f"out{tenth}").exists()
