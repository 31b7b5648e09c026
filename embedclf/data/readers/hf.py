"""Anything Hugging Face ``datasets`` loads: a builder (``csv``, ``parquet``, ``json``) with
local ``data_files``, a Hub name (when online), or a dataset saved with ``save_to_disk``.

``datasets`` is an optional extra (``make install-hf``), imported only here. ClassLabel
features give the class names; other labels are read as they are (strings or integers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from embedclf.data.dataset import carve_test
from embedclf.data.readers.base import LabelledTexts, joined_texts, labelled
from embedclf.util.errors import ConfigError, DataError

INSTALL_HINT = "make install-hf (pip install 'embedclf[hf]')"


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
        splits = self._splits(self._load())
        return {
            "source": str(self),
            "name": self.name,
            "fingerprints": {role: ds._fingerprint for role, ds in splits.items()},
            "text": self.text,
            "label": self.label,
            "test_samples": None if "test" in splits else self.test_samples,
        }

    def read(self, *, unlabelled: bool = False) -> tuple[LabelledTexts, list[str]]:
        splits = self._splits(self._load())
        texts, raw, where = {}, {}, {}
        names: Sequence[str] | None = None
        for role, ds in splits.items():
            where[role] = f"{self} split {self.splits[role]}"
            missing = [c for c in (*self.text, self.label) if c not in ds.column_names]
            if missing:
                raise DataError(
                    f"{where[role]}: no column {', '.join(map(repr, missing))}; it has "
                    f"{', '.join(map(repr, ds.column_names))} (set data.text and data.label)"
                )
            feature = ds.features[self.label]
            names = getattr(feature, "names", None) or names
            texts[role] = _texts(ds, self.text, where[role])
            raw[role] = ds[self.label]
            bad = next((i for i, v in enumerate(raw[role]) if v is None or v == -1), None)
            if bad is not None:
                raise DataError(f"{where[role]}: row {bad + 1} has no label")
        if "test" not in texts:
            carve_test(texts, raw, where, self.test_samples)
        return labelled(texts, raw, where, names=names), []


def _texts(ds: Any, columns: Sequence[str], where: str) -> list[str]:
    parts = []
    for column in columns:
        values = ds[column]
        bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        if bad is not None:
            raise DataError(
                f"{where}: column {column!r} row {bad + 1} holds {type(values[bad]).__name__}, "
                "not text; name the column that holds the texts (data.text)"
            )
        parts.append(values)
    return joined_texts(parts, where)
