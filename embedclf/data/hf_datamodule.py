"""``data=hf``: the data module over Hugging Face ``datasets`` (``make install-hf``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from embedclf.data.datamodule import TextDataModule
from embedclf.data.dataset import TextDataset
from embedclf.data.readers.hf import HFDataset
from embedclf.util.errors import ConfigError


class HFDataModule(TextDataModule):
    """Labelled texts from ``datasets.load_dataset(path, name, data_files=...)`` or
    ``datasets.load_from_disk(load_from_disk)``.

    Args:
        path, name, data_files: what ``load_dataset`` takes (a Hub name, or a builder such as
            ``csv`` or ``parquet`` with local files).
        load_from_disk: a folder written by ``save_to_disk`` (instead of ``path``).
        splits: the dataset's split names for train, val and test (val, test may be null).
        text: the text column, or a list joined with a space; label: the label column.
        test_samples: rows held out for testing when no test split is named.
        **common: :class:`TextDataModule`'s settings.
    """

    def __init__(
        self,
        *,
        path: str | None = None,
        name: str | None = None,
        data_files: Any = None,
        load_from_disk: str | None = None,
        splits: Mapping[str, str | None] | None = None,
        text: str | Sequence[str] = "text",
        label: str = "label",
        test_samples: float = 0.1,
        **common: Any,
    ) -> None:
        if not (path or load_from_disk):
            raise ConfigError(
                "data=hf needs data.path (a builder or Hub name) or data.load_from_disk"
            )
        splits = dict(splits or {"train": "train", "val": None, "test": "test"})
        text = [text] if isinstance(text, str) else [str(t) for t in text]
        super().__init__(**common)

    def source(self) -> TextDataset:
        hp = self.hparams
        return HFDataset(
            path=hp.path,
            name=hp.name,
            data_files=hp.data_files,
            load_from_disk=hp.load_from_disk,
            splits=dict(hp.splits),
            text=tuple(hp.text),
            label=str(hp.label),
            test_samples=hp.test_samples,
        )
