"""Data modules for datasets kept as files per split: tables (``data=table``: CSV, TSV, JSON
lines, Parquet) and fastText lines (``data=fasttext``).

``train`` is required; ``val`` is used as given when set (else carved from train as for every
data module, ``data.val_samples``); without ``test``, ``test_samples`` training rows are held
out for testing (a fixed shuffle, before the vocabulary is fitted). Each setting is a file or a
glob of files of one format.

The catalogue's datasets (``data=ag_news``, ``data=sst2``, ...) are tables or lines of this
kind that come from the web: their ``data.download`` lists the files with mirrors and
checksums, and the splits are paths inside them (``sources.find_split_files``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from embedclf.data.datamodule import TextDataModule
from embedclf.data.dataset import FileDataset, TextDataset
from embedclf.data.readers.fasttext import fasttext_blocks
from embedclf.data.readers.table import Columns, expand, format_of, iter_texts, table_blocks
from embedclf.data.sources import find_split_files
from embedclf.util.errors import ConfigError

SPLITS = ("train", "val", "test")


def _names(label_names: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if label_names is None else tuple(str(n) for n in label_names)


class FileDataModule(TextDataModule):
    """Files per split, of one format.

    Args:
        train, val, test: a file or glob each (``val`` and ``test`` optional).
        encoding: the files' text encoding.
        test_samples: rows held out for testing when no ``test`` is given.
        download: where a catalogue dataset's files come from (``file``, ``urls``, and
            ``sha256`` or ``md5`` each); the splits are then paths inside them.
        data_dir: the data directory (downloads are looked for and saved there).
        **common: :class:`TextDataModule`'s settings.
    """

    def __init__(
        self,
        *,
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        unlabelled: str | None = None,
        encoding: str = "utf-8",
        test_samples: float = 0.1,
        download: Sequence[dict[str, Any]] | None = None,
        data_dir: str | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)

    def unlabelled_files(self) -> tuple[Path, ...]:
        """Files of texts without labels (``data.unlabelled``), for pretraining only."""
        hp = self.hparams
        return tuple(expand(str(hp.unlabelled), "data.unlabelled")) if hp.unlabelled else ()

    def files(self) -> dict[str, tuple[Path, ...]]:
        """The files of each split given (``train`` required)."""
        hp = self.hparams
        if not hp.train:
            raise ConfigError("data.train is required: the file (or glob) of the training rows")
        given = {split: str(hp[split]) for split in SPLITS if hp[split]}
        found = find_split_files(given, hp.download, data_dir=hp.data_dir, cache=hp.cache_dir)
        return {split: tuple(expand(found[split], f"data.{split}")) for split in given}


class TableDataModule(FileDataModule):
    """Labelled texts in tables.

    Args:
        text: the text column, or a list of columns joined with a space (title + body).
        label: the label column (strings, or integers).
        format: csv, tsv, jsonl or parquet; ``None``: from each file's suffix (``.gz`` too).
        header: CSV/TSV: true (a header row), false (none: columns are named 0, 1, ...), or
            the list of column names.
        delimiter: CSV/TSV field separator (``None``: ``,`` for csv, a tab for tsv).
        label_names: names of integer labels, in order; label_offset: subtracted from each
            integer label first (1 for the Zhang et al. CSVs, whose classes count from 1).
        **files: :class:`FileDataModule`'s settings (train, val, test, encoding, ...).
    """

    def __init__(
        self,
        *,
        text: str | Sequence[str] = "text",
        label: str = "label",
        format: str | None = None,
        header: bool | Sequence[str] = True,
        delimiter: str | None = None,
        label_names: Sequence[str] | None = None,
        label_offset: int = 0,
        **files: Any,
    ) -> None:
        text = [text] if isinstance(text, str) else [str(t) for t in text]
        header = header if isinstance(header, bool) else [str(h) for h in header]
        label_names = None if label_names is None else [str(n) for n in label_names]
        super().__init__(**files)

    def source(self) -> TextDataset:
        hp = self.hparams
        files = self.files()
        columns = Columns(
            text=tuple(hp.text),
            label=str(hp.label),
            header=hp.header if isinstance(hp.header, bool) else tuple(hp.header),
            delimiter=hp.delimiter,
            encoding=hp.encoding,
        )
        formats = {path: format_of(path, hp.format) for paths in files.values() for path in paths}

        def read(path: Path) -> Iterator[tuple[list[str], list[Any]]]:
            return table_blocks(path, formats[path], columns)

        unlabelled = self.unlabelled_files()
        text_only = replace(columns, label=None)

        def read_texts(path: Path) -> Iterator[list[str]]:
            for _, texts, _ in iter_texts(path, format_of(path, hp.format), text_only):
                yield texts

        return FileDataset(
            files,
            read,
            settings={"reader": "table", "formats": sorted(set(formats.values())), **vars(columns)},
            test_samples=hp.test_samples,
            label_names=_names(hp.label_names),
            label_offset=int(hp.label_offset),
            unlabelled=unlabelled,
            read_texts=read_texts,
        )


class FastTextDataModule(FileDataModule):
    """fastText's ``__label__X text`` lines.

    Args:
        label_prefix: what starts a label (fastText's ``__label__``; empty: the first word
            of each line is its label, as in TREC's files).
        label_delimiter: keep only the part of each label before it (``:`` for TREC's
            coarse classes); ``None``: the whole label.
        **files: :class:`FileDataModule`'s settings (train, val, test, encoding, ...).
    """

    def __init__(
        self, *, label_prefix: str = "__label__", label_delimiter: str | None = None, **files: Any
    ) -> None:
        if label_prefix is None:
            raise ConfigError(
                "data.label_prefix must be a string: fastText's is __label__, and '' makes "
                "each line's first word its label"
            )
        super().__init__(**files)

    def source(self) -> TextDataset:
        hp = self.hparams
        return FileDataset(
            self.files(),
            functools.partial(
                fasttext_blocks,
                prefix=hp.label_prefix,
                encoding=hp.encoding,
                delimiter=hp.label_delimiter,
            ),
            settings={
                "reader": "fasttext",
                "prefix": hp.label_prefix,
                "encoding": hp.encoding,
                **({"delimiter": hp.label_delimiter} if hp.label_delimiter else {}),
            },
            test_samples=hp.test_samples,
        )
