"""What a data module reads: a dataset that says who it is (a cheap identity for cache keys)
and reads its labelled texts once, whatever it is stored in.

:class:`FolderDataset` is an aclImdb-like tree or archive; :class:`FileDataset` is files of
one format per split (tables, fastText lines), read by a reader function. Both give
:class:`~embedclf.data.readers.base.LabelledTexts`; the token store and everything above it
never look further.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow.parquet as pq

from embedclf.data.readers.base import LabelledTexts, labelled
from embedclf.data.readers.folder import folder_listing, read_dataset, stream_folder
from embedclf.util.errors import ConfigError
from embedclf.util.paths import cache_key, file_identity

# the split carved out for testing when a dataset gives none: the same rows for every seed
TEST_SEED = 0
BLOCK_FILES = 20_000  # a folder dataset's files read at a time into the token store


class TextDataset(Protocol):
    def identity(self) -> object: ...

    def read(self, *, unlabelled: bool = False) -> tuple[LabelledTexts, list[str]]: ...


class StreamingDataset(TextDataset, Protocol):
    """A dataset the token store can read a block at a time (when :meth:`streams`)."""

    def streams(self) -> bool: ...

    def stream(self) -> Iterator[tuple[str, list[str], list[Any]]]: ...

    def row_counts(self) -> dict[str, int]: ...

    def classes_of(
        self, raw: Mapping[str, list[Any]]
    ) -> tuple[list[str], dict[str, np.ndarray]]: ...


@dataclass(frozen=True)
class FolderDataset:
    """``DIR/{train,test}/<class>/*.txt``, a folder or an archive of one (aclImdb)."""

    path: Path
    follow_links: bool = False  # read files that link out of the folder (data.follow_links)
    test_only: bool = False  # scoring a checkpoint: read test/ alone (train/ may be absent)

    def __str__(self) -> str:
        return str(self.path)

    def identity(self) -> object:
        identity = source_identity(self.path)
        if self.follow_links or self.test_only:
            identity = {"folder": identity, "follow_links": self.follow_links}
            identity.update({"test_only": True} if self.test_only else {})
        return identity

    def read(self, *, unlabelled: bool = False) -> tuple[LabelledTexts, list[str]]:
        return read_dataset(
            self.path, unlabelled=unlabelled, follow_links=self.follow_links, splits=self._splits
        )

    @property
    def _splits(self) -> tuple[str, ...]:
        return ("test",) if self.test_only else ("train", "test")

    def streams(self) -> bool:
        """A folder streams, a file at a time; an archive is read whole, in one pass over its
        compressed stream (its members come in the packer's order, not training first)."""
        return self.path.is_dir()

    @cached_property
    def _listing(self) -> tuple[list[str], dict]:
        """The classes and files, listed once for stream, row_counts and classes_of."""
        return folder_listing(self.path, self._splits)

    def stream(self) -> Iterator[tuple[str, list[str], list[Any]]]:
        _, files = self._listing
        return stream_folder(self.path, files, follow_links=self.follow_links, block=BLOCK_FILES)

    def row_counts(self) -> dict[str, int]:
        _, files = self._listing
        return {split: sum(map(len, per_class)) for split, per_class in files.items()}

    def classes_of(self, raw: Mapping[str, list[Any]]) -> tuple[list[str], dict[str, np.ndarray]]:
        classes, _ = self._listing
        return classes, {split: np.asarray(labels, dtype=np.int64) for split, labels in raw.items()}


@dataclass(frozen=True)
class FileDataset:
    """Files per split (``train``; ``val`` and ``test`` optional), each read by ``read_blocks``
    into texts and raw labels, a block at a time. Without test files, ``test_samples`` training
    rows (a count, or a fraction) are held out for testing by a fixed shuffle, before the
    vocabulary is fitted."""

    files: Mapping[str, tuple[Path, ...]]
    read_blocks: Callable[[Path], Iterable[tuple[list[str], list[Any]]]] = field(compare=False)
    settings: Mapping[str, Any]
    test_samples: float = 0.1
    label_names: tuple[str, ...] | None = None
    label_offset: int = 0
    # texts without labels (pretraining reads them), each file's texts a block at a time
    unlabelled: tuple[Path, ...] = ()
    read_texts: Callable[[Path], Iterable[list[str]]] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return ", ".join(str(p) for paths in self.files.values() for p in paths)

    def identity(self) -> object:
        return {
            "files": {s: [file_identity(p) for p in paths] for s, paths in self.files.items()},
            "settings": dict(self.settings),
            "test_samples": None if "test" in self.files else self.test_samples,
            "label_names": self.label_names,
            "label_offset": self.label_offset,
            **(
                {"unlabelled": [file_identity(p) for p in self.unlabelled]}
                if self.unlabelled
                else {}
            ),
        }

    def read(self, *, unlabelled: bool = False) -> tuple[LabelledTexts, list[str]]:
        texts: dict[str, list[str]] = {}
        raw: dict[str, list[Any]] = {}
        where = {}
        for split in self.files:
            texts[split], raw[split] = [], []
            for split_texts, split_labels in self._blocks(split):
                texts[split] += split_texts
                raw[split] += split_labels
            where[split] = self._where(split)
        if "test" not in self.files:
            carve_test(texts, raw, where, self.test_samples)
        found = labelled(texts, raw, where, names=self.label_names, offset=self.label_offset)
        extra: list[str] = []
        if unlabelled and self.read_texts is not None:
            for path in self.unlabelled:
                for block in self.read_texts(path):
                    extra += block
        return found, extra

    def _blocks(self, split: str) -> Iterator[tuple[list[str], list[Any]]]:
        for path in self.files[split]:
            yield from self.read_blocks(path)

    def _where(self, split: str) -> str:
        return ", ".join(map(str, self.files[split]))

    def streams(self) -> bool:
        """Whether :meth:`stream` can read it (a test split to read, none to carve out)."""
        return "test" in self.files

    def stream(self) -> Iterator[tuple[str, list[str], list[Any]]]:
        """``(split, texts, raw labels)`` a block at a time, ``train`` first."""
        for split in self.files:
            for texts, raw in self._blocks(split):
                yield split, texts, raw

    def row_counts(self) -> dict[str, int]:
        """Rows of the splits whose files all say so without being read (Parquet's footer)."""
        counts = {}
        for split, paths in self.files.items():
            if all(path.suffix == ".parquet" for path in paths):
                try:
                    counts[split] = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
                except Exception:  # not Parquet after all: the reader says so, by name
                    continue
        return counts

    def classes_of(self, raw: Mapping[str, list[Any]]) -> tuple[list[str], dict[str, np.ndarray]]:
        """The class names and integer labels of what :meth:`stream` gave."""
        where = {split: self._where(split) for split in raw}
        found = labelled({}, dict(raw), where, names=self.label_names, offset=self.label_offset)
        return found.classes, found.labels


def carve_test(texts: dict, raw: dict, where: dict, share: float) -> None:
    """Move ``share`` of the training rows (a fraction, or a count) into a test split, in place:
    the same rows for every seed (a fixed shuffle), before any vocabulary is fitted."""
    n = len(raw["train"])
    n_test = round(share * n) if isinstance(share, float) and share < 1 else int(share)
    if not 1 <= n_test < n:
        raise ConfigError(
            f"data.test_samples={share} holds out {n_test} of the {n} training rows; with no "
            "test split give a fraction in (0, 1) or a count below the row count"
        )
    order = np.random.default_rng(TEST_SEED).permutation(n)
    held, kept = np.sort(order[:n_test]), np.sort(order[n_test:])
    texts["test"] = [texts["train"][i] for i in held]
    raw["test"] = [raw["train"][i] for i in held]
    texts["train"] = [texts["train"][i] for i in kept]
    raw["train"] = [raw["train"][i] for i in kept]
    where["test"] = f"{where['train']} (the held-out test rows)"


def source_identity(source: Path) -> object:
    """Cheap identity of a dataset archive (path, size, mtime) or folder (its listing)."""
    if source.is_file():
        return file_identity(source)
    listing = []
    for split in ("train", "test"):
        for entry in sorted((source / split).glob("*/*.txt")):
            stat = entry.stat() if entry.exists() else None
            listing.append(
                (str(entry.relative_to(source)), stat and stat.st_size, stat and stat.st_mtime_ns)
            )
    return {"path": str(source.resolve()), "files": cache_key(listing, 32)}
