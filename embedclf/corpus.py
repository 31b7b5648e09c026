"""Review texts from a dataset (an archive read as a stream, or a folder), tokenised once.

A dataset is laid out as ``train/<class>/*.txt`` and ``test/<class>/*.txt`` (aclImdb, or any
folder of N classes); ``train/unsup/`` (aclImdb's unlabelled reviews) is not a class, since a
class is a folder present under both ``train/`` and ``test/``. Texts are ordered by class name,
then file name, whatever the order of the archive, so the vocabulary's ties (and so the ids)
never depend on how the archive was packed.

:class:`TokenizedCorpus` is what the token cache holds: the whole training vocabulary ranked as
Keras ranks it, with counts, and every review's ids over that vocabulary. A ``num_words``
limit is applied when the data is set up, so sweeping it never tokenises again.
"""

from __future__ import annotations

import json
import logging
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedclf.archive import iter_tar_files
from embedclf.errors import DataError
from embedclf.fileio import atomic_write

log = logging.getLogger(__name__)

TOKENS_FORMAT = 2  # bump when the layout of the token cache changes
UNLABELLED = "unsup"


@dataclass
class LabelledTexts:
    """Texts and integer labels per split; ``classes[label]`` is the label's folder name."""

    classes: list[str]
    texts: dict[str, list[str]]
    labels: dict[str, np.ndarray]


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{where} is not UTF-8 text ({err.reason}); fix or remove the file"
        ) from None


def _choose_classes(found: dict[str, set[str]], where: str) -> list[str]:
    train, test = found.get("train", set()), found.get("test", set())
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
    classes = _choose_classes(found, where)
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


def read_archive(archive: Path, *, unlabelled: bool = False) -> tuple[LabelledTexts, list[str]]:
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
    texts = _assemble(files, str(archive), ("train", "test"))
    return texts, [unsup[file] for file in sorted(unsup)]


def _folder_files(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.glob("*.txt")):
        if not path.is_file():
            what = "a broken link" if path.is_symlink() else "not a file"
            raise DataError(f"{path} is {what}; data.root must hold text files only: remove it")
        out[path.name] = _decode(path.read_bytes(), str(path))
    return out


def read_folder(root: Path, *, unlabelled: bool = False) -> tuple[LabelledTexts, list[str]]:
    """The labelled texts of a dataset folder, and its ``train/unsup`` texts if asked."""
    files: dict[tuple[str, str], dict[str, str]] = {}
    for split in ("train", "test"):
        for folder in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            if folder.name != UNLABELLED or split != "train":
                files[split, folder.name] = _folder_files(folder)
    unsup_dir = root / "train" / UNLABELLED
    unsup = _folder_files(unsup_dir) if unlabelled and unsup_dir.is_dir() else {}
    return _assemble(files, str(root), ("train", "test")), [unsup[f] for f in sorted(unsup)]


def read_dataset(source: Path, *, unlabelled: bool = False) -> tuple[LabelledTexts, list[str]]:
    if source.is_file():
        return read_archive(source, unlabelled=unlabelled)
    return read_folder(source, unlabelled=unlabelled)


@dataclass
class Ragged:
    """Variable-length id sequences as one flat array and offsets (``offsets[i]:offsets[i+1]``)."""

    flat: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def keep(self, mask: np.ndarray) -> Ragged:
        """The same sequences with the ids where ``mask`` (over ``flat``) is false dropped."""
        kept = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        return Ragged(self.flat[mask], kept[self.offsets])

    def rows(self, index: np.ndarray) -> Ragged:
        lengths = self.lengths()[index]
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        starts = self.offsets[:-1][index]
        flat = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Ragged(self.flat[flat], offsets)

    def sequences(self) -> list[np.ndarray]:
        return np.split(self.flat, self.offsets[1:-1])


@dataclass
class TokenizedCorpus:
    """What the token cache holds: the training vocabulary, ranked, and ids of every review.

    ``vocab[i]`` is the word of id ``i`` (``""`` at 0, padding), ranked by count over the
    training texts with ties in order of first appearance (Keras's ranking); ``counts[i]`` is
    its count. Test words absent from the training texts are dropped, as Keras drops them.
    """

    classes: list[str]
    vocab: list[str]
    counts: np.ndarray
    ids: dict[str, Ragged]
    labels: dict[str, np.ndarray]

    def save(self, path: Path) -> None:
        """Write atomically: a killed writer leaves a temporary sibling, never a short ``path``."""
        meta = {"format": TOKENS_FORMAT, "classes": self.classes, "vocab": self.vocab}
        arrays = {
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            "counts": self.counts,
        }
        for split, ragged in self.ids.items():
            arrays[f"{split}_flat"] = ragged.flat
            arrays[f"{split}_offsets"] = ragged.offsets
            arrays[f"{split}_labels"] = self.labels[split]
        with atomic_write(path) as file:
            np.savez(file, **arrays)

    @classmethod
    def load(cls, path: Path) -> TokenizedCorpus:
        """Read a token cache; :class:`DataError` if it is damaged in any way.

        Every array is read in full, so zip's CRC-32 of each member is checked: a truncated
        file, a zero-length file and flipped bytes are all caught here.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes())
                if meta.get("format") != TOKENS_FORMAT:
                    raise ValueError(f"cache format {meta.get('format')}, not {TOKENS_FORMAT}")
                splits = [k.removesuffix("_flat") for k in z.files if k.endswith("_flat")]
                ids = {s: Ragged(z[f"{s}_flat"], z[f"{s}_offsets"]) for s in splits}
                labels = {s: z[f"{s}_labels"] for s in splits}
                counts = z["counts"]
            corpus = cls(meta["classes"], meta["vocab"], counts, ids, labels)
            corpus.check()
        except (OSError, ValueError, KeyError, TypeError, EOFError, zlib.error) as err:
            raise DataError(f"token cache {path} is damaged ({err})") from None
        except zipfile.BadZipFile as err:
            raise DataError(f"token cache {path} is damaged ({err})") from None
        return corpus

    def check(self) -> None:
        if len(self.counts) != len(self.vocab):
            raise ValueError("counts and vocabulary differ in length")
        for split, ragged in self.ids.items():
            offsets = ragged.offsets
            if (
                len(offsets) != len(self.labels[split]) + 1
                or offsets[0] != 0
                or offsets[-1] != len(ragged.flat)
                or np.any(np.diff(offsets) < 0)
                or (
                    len(ragged.flat)
                    and not 0 < ragged.flat.min() <= ragged.flat.max() < len(self.vocab)
                )
            ):
                raise ValueError(f"the {split} ids are inconsistent")
