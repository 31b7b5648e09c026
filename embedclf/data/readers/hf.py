"""Anything Hugging Face ``datasets`` loads: a builder (``csv``, ``parquet``, ``json``) with
local ``data_files``, a Hub name (when online), or a dataset saved with ``save_to_disk``.

``datasets`` is an optional extra (``make install-hf``), imported only here. ClassLabel
features give the class names; other labels are read as they are (strings or integers).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from embedclf.data.dataset import carve_test
from embedclf.data.readers.base import LabelledTexts, joined_texts, labelled
from embedclf.util.errors import ConfigError, DataError

INSTALL_HINT = "make install-hf (pip install 'embedclf[hf]')"
BLOCK_ROWS = 20_000  # rows read into Python at a time when the token store is built


def _datasets() -> Any:
    try:  # lazy: an optional extra, and a heavy import that only data=hf needs
        import datasets
    except ImportError:
        raise ConfigError(f"data=hf needs Hugging Face datasets: {INSTALL_HINT}") from None
    return datasets


@dataclass(frozen=True)
class HFDataset:
    """A ``datasets`` dataset's splits (``splits`` maps train/val/test to its split names)."""

    path: str | None
    name: str | None
    data_files: Any
    load_from_disk: str | None
    splits: Mapping[str, str]
    text: tuple[str, ...]
    label: str
    test_samples: float = 0.1

    def __str__(self) -> str:
        return self.load_from_disk or str(self.path)

    def _load(self) -> Any:
        datasets = _datasets()
        try:
            if self.load_from_disk:
                return datasets.load_from_disk(self.load_from_disk)
            return datasets.load_dataset(self.path, self.name, data_files=self.data_files)
        except (FileNotFoundError, ValueError, ConnectionError, OSError) as err:
            what = self.load_from_disk or self.path
            reason = " ".join(str(err).split())[:160]
            raise DataError(f"datasets cannot load {what} ({reason})") from None

    @cached_property
    def _loaded(self) -> dict[str, Any]:
        """The splits by role, loaded once for identity, stream, row_counts and classes_of
        (``datasets`` maps them from its cache: nothing is read into memory here)."""
        return self._splits(self._load())

    def _splits(self, loaded: Any) -> dict[str, Any]:
        present = list(loaded.keys()) if hasattr(loaded, "keys") else []
        out = {}
        for role, split in self.splits.items():
            if split is None:
                continue
            if split not in present:
                raise DataError(
                    f"{self}: no split {split!r} (data.splits.{role}); it has {', '.join(present)}"
                )
            out[role] = loaded[split]
        if "train" not in out:
            raise ConfigError("data.splits.train must name the dataset's training split")
        return out

    def identity(self) -> object:
        splits = self._loaded
        return {
            "source": str(self),
            "name": self.name,
            "fingerprints": {role: ds._fingerprint for role, ds in splits.items()},
            "text": self.text,
            "label": self.label,
            "test_samples": None if "test" in splits else self.test_samples,
        }

    def read(self, *, unlabelled: bool = False) -> tuple[LabelledTexts, list[str]]:
        splits = self._loaded
        texts, raw, where = {}, {}, {}
        names: Sequence[str] | None = None
        for role, ds in splits.items():
            where[role] = self._checked(role, ds)
            names = self._names(ds) or names
            texts[role] = _texts(ds, self.text, where[role])
            raw[role] = _labels(ds[self.label], where[role])
        if "test" not in texts:
            carve_test(texts, raw, where, self.test_samples)
        return labelled(texts, raw, where, names=names), []

    def streams(self) -> bool:
        """Whether :meth:`stream` can read it: a test split to read, none to carve out."""
        return self.splits.get("test") is not None

    def stream(self) -> Iterator[tuple[str, list[str], list[Any]]]:
        """``(split, texts, raw labels)`` :data:`BLOCK_ROWS` at a time, ``train`` first: the
        token store is built without holding a split's texts (``datasets`` maps them)."""
        splits, rows = self._loaded, BLOCK_ROWS
        for role in sorted(splits, key=lambda name: name != "train"):
            ds = splits[role]
            where = self._checked(role, ds)
            for start in range(0, len(ds), rows):
                block = ds[start : start + rows]
                texts = _joined([block[c] for c in self.text], self.text, where, start)
                yield role, texts, _labels(block[self.label], where, start)

    def row_counts(self) -> dict[str, int]:
        return {role: len(ds) for role, ds in self._loaded.items()}

    def classes_of(self, raw: Mapping[str, list[Any]]) -> tuple[list[str], dict[str, np.ndarray]]:
        """The class names and integer labels of what :meth:`stream` gave."""
        splits = self._loaded
        names = next((n for ds in splits.values() if (n := self._names(ds))), None)
        where = {role: f"{self} split {self.splits[role]}" for role in raw}
        found = labelled({}, dict(raw), where, names=names)
        return found.classes, found.labels

    def _checked(self, role: str, ds: Any) -> str:
        where = f"{self} split {self.splits[role]}"
        missing = [c for c in (*self.text, self.label) if c not in ds.column_names]
        if missing:
            raise DataError(
                f"{where}: no column {', '.join(map(repr, missing))}; it has "
                f"{', '.join(map(repr, ds.column_names))} (set data.text and data.label)"
            )
        return where

    def _names(self, ds: Any) -> Sequence[str] | None:
        return getattr(ds.features[self.label], "names", None)


def _labels(values: list[Any], where: str, first: int = 0) -> list[Any]:
    bad = next((i for i, v in enumerate(values) if v is None or v == -1), None)
    if bad is not None:
        raise DataError(f"{where}: row {first + bad + 1} has no label")
    return values


def _texts(ds: Any, columns: Sequence[str], where: str) -> list[str]:
    return _joined([ds[column] for column in columns], columns, where)


def _joined(
    parts: list[list[Any]], columns: Sequence[str], where: str, first: int = 0
) -> list[str]:
    for column, values in zip(columns, parts, strict=True):
        bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        if bad is not None:
            raise DataError(
                f"{where}: column {column!r} row {first + bad + 1} holds "
                f"{type(values[bad]).__name__}, not text; name the column that holds the "
                "texts (data.text)"
            )
    return joined_texts(parts, where, first + 1)
