"""Review texts of a folder dataset: an aclImdb-like archive read as a stream, or a folder.

A dataset is laid out as ``train/<class>/*.txt`` and ``test/<class>/*.txt`` (aclImdb, or any
folder of N classes); ``train/unsup/`` (aclImdb's unlabelled reviews) is not a class, since a
class is a folder present under both ``train/`` and ``test/``. Texts are ordered by class name,
then file name, whatever the order of the archive, so the vocabulary's ties (and so the ids)
never depend on how the archive was packed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from embedclf.data.readers.base import LabelledTexts
from embedclf.util.archive import iter_tar_files
from embedclf.util.errors import DataError

log = logging.getLogger(__name__)
SPLITS = ("train", "test")

UNLABELLED = "unsup"


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{where} is not UTF-8 text ({err.reason}); fix or remove the file"
        ) from None


def _choose_classes(found: dict[str, set[str]], where: str, splits: tuple[str, ...]) -> list[str]:
    train, test = found.get("train", set()), found.get("test", set())
    if "train" not in splits:  # scoring a checkpoint: the test folders are the classes
        classes = sorted(test - {UNLABELLED})
        if len(classes) < 2:
            raise DataError(f"{where} needs at least two class folders in test/, found {classes}")
        return classes
    classes = sorted(train & test)
    for split, names in (("train", train - test - {UNLABELLED}), ("test", test - train)):
        for name in sorted(names):
            log.warning(
                "%s: class folder %s/%s has no counterpart and is left out", where, split, name
            )
    if len(classes) < 2:
        raise DataError(
            f"{where} needs at least two class folders present in both train/ and test/, "
            f"found {classes or 'none'}"
        )
    return classes


def _assemble(
    files: dict[tuple[str, str], dict[str, str]], where: str, splits: tuple[str, ...]
) -> LabelledTexts:
    found: dict[str, set[str]] = defaultdict(set)
    for split, name in files:
        found[split].add(name)
    classes = _choose_classes(found, where, splits)
    texts: dict[str, list[str]] = {}
    labels: dict[str, np.ndarray] = {}
    for split in splits:
        split_texts: list[str] = []
        split_labels: list[int] = []
        for label, name in enumerate(classes):
            by_name = files.get((split, name), {})
            split_texts += [by_name[file] for file in sorted(by_name)]
            split_labels += [label] * len(by_name)
        if not split_texts:
            raise DataError(f"{where} has no {split} texts (*.txt)")
        texts[split] = split_texts
        labels[split] = np.asarray(split_labels, dtype=np.int64)
    return LabelledTexts(classes, texts, labels)


def _archive_layout(name: str) -> tuple[str, str, str, str] | None:
    """(prefix, split, class, file) of a member ``[prefix/]split/class/file.txt``."""
    parts = name.split("/")
    if len(parts) < 3 or not parts[-1].endswith(".txt") or parts[-3] not in ("train", "test"):
        return None
    return "/".join(parts[:-3]), parts[-3], parts[-2], parts[-1]


def read_archive(
    archive: Path, *, unlabelled: bool = False, splits: tuple[str, ...] = SPLITS
) -> tuple[LabelledTexts, list[str]]:
    """The labelled texts of a dataset archive, and its unlabelled ``train/unsup`` texts when
    ``unlabelled`` (else none), read in one pass over the compressed stream."""
    files: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    prefixes: set[str] = set()

    def wanted(name: str) -> bool:
        layout = _archive_layout(name)
        return layout is not None and (unlabelled or layout[2] != UNLABELLED)

    for name, raw in iter_tar_files(archive, wanted):
        prefix, split, label, file = _archive_layout(name)  # type: ignore[misc]
        prefixes.add(prefix)
        files[split, label][file] = _decode(raw, f"{archive} member {name}")
    if len(prefixes) > 1:
        raise DataError(f"{archive} holds several datasets ({', '.join(sorted(prefixes))})")
    unsup = files.pop(("train", UNLABELLED), {})
    texts = _assemble(files, str(archive), splits)
    return texts, [unsup[file] for file in sorted(unsup)]


def _checked(path: Path, inside: Path, follow_links: bool) -> Path:
    if not path.is_file():
        what = "a broken link" if path.is_symlink() else "not a file"
        raise DataError(f"{path} is {what}; data.root must hold text files only: remove it")
    target = path.resolve()
    if not follow_links and not target.is_relative_to(inside):
        raise DataError(
            f"{path} links out of the dataset (to {target}); remove the link, or set "
            "data.follow_links=true to read what it points to"
        )
    return path


def _read_text(path: Path, root: Path, follow_links: bool) -> str:
    return _decode(_checked(path, root.resolve(), follow_links).read_bytes(), str(path))


def _folder_files(folder: Path, root: Path, follow_links: bool) -> dict[str, str]:
    return {
        path.name: _read_text(path, root, follow_links) for path in sorted(folder.glob("*.txt"))
    }


def folder_listing(root: Path, splits: tuple[str, ...] = SPLITS) -> tuple[list[str], dict]:
    """A folder dataset's classes and, per split, each class's files in reading order
    (class, then file name): what :func:`stream_folder` reads, listed without reading."""
    found: dict[str, set[str]] = defaultdict(set)
    for split in splits:
        if not (root / split).is_dir():
            raise DataError(f"{root} has no {split}/ folder")
        for folder in (p for p in (root / split).iterdir() if p.is_dir()):
            found[split].add(folder.name)
    classes = _choose_classes(found, str(root), splits)
    files = {
        split: [sorted((root / split / name).glob("*.txt")) for name in classes] for split in splits
    }
    for split in splits:
        if not any(files[split]):
            raise DataError(f"{root} has no {split} texts (*.txt)")
    return classes, files


def stream_folder(
    root: Path, files: dict, *, follow_links: bool = False, block: int = 20_000
) -> Iterator[tuple[str, list[str], list[int]]]:
    """``(split, texts, labels)`` of :func:`folder_listing`'s ``files``, ``block`` files at a
    time, splits in the order given: the texts of a split are never all held at once."""
    for split, per_class in files.items():
        listed = [(path, label) for label, paths in enumerate(per_class) for path in paths]
        for start in range(0, len(listed), block):
            part = listed[start : start + block]
            yield (
                split,
                [_read_text(path, root, follow_links) for path, _ in part],
                [label for _, label in part],
            )


def read_folder(
    root: Path,
    *,
    unlabelled: bool = False,
    follow_links: bool = False,
    splits: tuple[str, ...] = SPLITS,
) -> tuple[LabelledTexts, list[str]]:
    """The labelled texts of a dataset folder, and its ``train/unsup`` texts if asked. Files
    that link out of ``root`` are refused unless ``follow_links``."""
    files: dict[tuple[str, str], dict[str, str]] = {}
    for split in splits:
        for folder in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            if folder.name != UNLABELLED or split != "train":
                files[split, folder.name] = _folder_files(folder, root, follow_links)
    unsup_dir = root / "train" / UNLABELLED
    unsup = (
        _folder_files(unsup_dir, root, follow_links) if unlabelled and unsup_dir.is_dir() else {}
    )
    return _assemble(files, str(root), splits), [unsup[f] for f in sorted(unsup)]


def _group_of(urls: list[str], file: str, where: str) -> str:
    number = file.split("_", 1)[0]
    if not (number.isascii() and number.isdigit()) or int(number) >= len(urls):
        raise DataError(
            f"{where}: data.val_groups=true takes a review's group from the line of its class's "
            f"urls file numbered by the file name ({len(urls)} lines there); name it "
            "<line>_<anything>.txt, or set data.val_groups=false"
        )
    return urls[int(number)]


def training_groups(
    source: Path, classes: list[str], *, follow_links: bool = False
) -> np.ndarray | None:
    """Each training review's group, in reading order (class, then file name): for aclImdb
    its film, the line of ``train/urls_<class>.txt`` that the file name's leading number
    counts to (the dataset's README); None where a class has no urls file."""
    names: dict[str, list[str]] = {name: [] for name in classes}
    urls: dict[str, list[str]] = {}
    wanted_urls = {f"urls_{name}.txt": name for name in classes}
    if source.is_file():

        def review(member: str) -> tuple[str, str, str, str] | None:
            layout = _archive_layout(member)
            return layout if layout and layout[1] == "train" and layout[2] in names else None

        def urls_file(member: str) -> bool:
            return member.split("/")[-2:-1] == ["train"] and member.split("/")[-1] in wanted_urls

        # one pass over the stream (which is decompressed whole, read or skipped)
        for member, raw in iter_tar_files(source, lambda m: urls_file(m) or bool(review(m))):
            layout = review(member)
            if layout is not None:
                names[layout[2]].append(layout[3])
            else:
                urls[wanted_urls[member.split("/")[-1]]] = _decode(raw, member).splitlines()
        if len(urls) < len(classes):
            return None
    else:
        for name in classes:
            path = source / "train" / f"urls_{name}.txt"
            if not path.is_file():
                return None
            urls[name] = _read_text(path, source, follow_links).splitlines()
            names[name] = [p.name for p in (source / "train" / name).glob("*.txt")]
    return np.asarray(
        [
            _group_of(urls[name], file, f"{source}: train/{name}/{file}")
            for name in classes
            for file in sorted(names[name])
        ],
        dtype=object,
    )


def read_dataset(
    source: Path,
    *,
    unlabelled: bool = False,
    follow_links: bool = False,
    splits: tuple[str, ...] = SPLITS,
) -> tuple[LabelledTexts, list[str]]:
    """``splits``: both (training), or ``("test",)`` (scoring a checkpoint: no train/ needed)."""
    if source.is_file():
        return read_archive(source, unlabelled=unlabelled, splits=splits)
    return read_folder(source, unlabelled=unlabelled, follow_links=follow_links, splits=splits)
