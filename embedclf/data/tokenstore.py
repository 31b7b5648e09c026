"""The token store: every text's ids, flat per split, built once per dataset and word rules.

:class:`TokenizedCorpus` is what it holds: the whole training vocabulary ranked as Keras ranks
it, with counts, and every text's ids over that vocabulary. A ``num_words`` limit is applied
per batch, so sweeping it never tokenises again. ``storebuild.py`` builds stores; this module
says where one lives (:func:`cache_path`), and writes (:class:`StoreWriter`) and opens one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from embedclf.data.dataset import FolderDataset, TextDataset
from embedclf.text.featurizer import TextFeaturizer
from embedclf.text.ragged import Ragged
from embedclf.util.errors import DataError
from embedclf.util.fileio import atomic_directory, file_crc32, write_synced
from embedclf.util.paths import cache_dir as resolve_cache_dir
from embedclf.util.paths import cache_key


def as_dataset(source: Path | TextDataset) -> TextDataset:
    """A folder or archive path as a :class:`FolderDataset`; a dataset as it is."""
    return FolderDataset(source) if isinstance(source, Path) else source


def cache_path(
    source: Path | TextDataset,
    *,
    filters: str,
    lower: bool,
    cache_dir: str | None,
    encoder: TextFeaturizer | None = None,
    keep_unseen: bool = False,
) -> Path:
    """Where the ids of ``source`` under these word rules live: a vocabulary fitted on its
    training texts (``keep_unseen``: with the other splits' new words after it), or
    (``encoder``) a checkpoint's own vocabulary."""
    vocab = "fitted+unseen" if keep_unseen else "fitted"
    settings = {
        "source": as_dataset(source).identity(),
        "filters": filters,
        "lower": lower,
        "vocab": encoder.digest() if encoder is not None else vocab,
        "format": TOKENS_FORMAT,
    }
    return resolve_cache_dir(cache_dir) / "tokens" / cache_key(settings)


# rows counted at a time (TokenizedCorpus.ranked_over): the peak is one chunk's ids
RANK_CHUNK_ROWS = 1 << 16
TOKENS_FORMAT = 3  # bump when the layout of the token store changes
META_FILE = "meta.json"


def _array_files(splits: list[str]) -> list[str]:
    names = ["counts.npy"]
    for split in splits:
        names += [f"{split}.ids.npy", f"{split}.offsets.npy", f"{split}.labels.npy"]
    return names


class RerankedIds:
    """A split's stored ids read through another ranking of the vocabulary: ``new_id[i]`` is
    the new id of stored id ``i``, or -1 for a word the new vocabulary drops (left out of its
    row). Rows are remapped as they are read, so the stored ids stay mapped, never copied;
    ``offsets`` are the stored rows' (a row reads at most that many ids)."""

    def __init__(self, stored: Ragged, new_id: np.ndarray) -> None:
        self.stored, self.new_id = stored, new_id
        self.offsets = stored.offsets

    def __len__(self) -> int:
        return len(self.stored)

    def _remapped(self, part: Ragged) -> Ragged:
        ids = self.new_id[np.asarray(part.flat)]
        return Ragged(ids, part.offsets).keep(ids >= 0)

    def rows(self, index: np.ndarray) -> Ragged:
        return self._remapped(self.stored.rows(index))

    def slice(self, start: int, stop: int) -> Ragged:
        return self._remapped(self.stored.slice(start, stop))

    def sequences(self) -> list[np.ndarray]:
        return self.slice(0, len(self)).sequences()


def _reranked(ids: Ragged | RerankedIds, new_id: np.ndarray) -> RerankedIds:
    """``ids`` read through ``new_id``; ids already reranked through the two in turn."""
    if isinstance(ids, RerankedIds):
        earlier = ids.new_id
        return RerankedIds(ids.stored, np.where(earlier >= 0, new_id[earlier], -1))
    return RerankedIds(ids, new_id)


@dataclass
class TokenizedCorpus:
    """What the token store holds: the training vocabulary, ranked, and ids of every review.

    ``vocab[i]`` is the word of id ``i`` (``""`` at 0, padding), ranked by count over the
    training texts with ties in order of first appearance (Keras's ranking); ``counts[i]`` is
    its count. Test words absent from the training texts are dropped, as Keras drops them, or
    (``data.unseen_words=keep``) follow the training words with count 0.

    On disk it is a directory: per split, flat ``int32`` ids, ``int64`` offsets (n + 1) and
    labels, each an ``.npy`` file, with the counts beside them and the vocabulary, classes and
    each file's CRC-32 in ``meta.json``. :meth:`load` memory-maps the arrays: a split's ids
    are read from the page cache as batches need them, never held as a padded table.
    """

    classes: list[str]
    vocab: list[str]
    counts: np.ndarray
    ids: dict[str, Ragged | RerankedIds]  # RerankedIds: a ranked_over corpus (not saved)
    labels: dict[str, np.ndarray]

    def save(self, path: Path) -> None:
        """Write the directory ``path`` atomically: a killed writer leaves a temporary
        sibling (removed by the next writer), never a ``path`` that is not complete."""
        with atomic_directory(path) as tmp:
            writer = StoreWriter(tmp)
            writer.save("counts.npy", np.asarray(self.counts, np.int64))
            for split, ragged in self.ids.items():
                writer.save(f"{split}.ids.npy", np.asarray(ragged.flat, np.int32))
                writer.save(f"{split}.offsets.npy", np.asarray(ragged.offsets, np.int64))
                writer.save(f"{split}.labels.npy", np.asarray(self.labels[split], np.int64))
            writer.finish(self.classes, list(self.ids), self.vocab)

    @classmethod
    def load(cls, path: Path) -> TokenizedCorpus:
        """Open a token store; :class:`DataError` if it is damaged in any way.

        Every file's CRC-32 is checked against ``meta.json`` (read in blocks, not mapped), so
        a truncated or missing file and flipped bytes are all caught here, before training.
        """
        try:
            if not path.is_dir():
                raise ValueError("not a token store directory")
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
            if meta.get("format") != TOKENS_FORMAT:
                raise ValueError(f"store format {meta.get('format')}, not {TOKENS_FORMAT}")
            splits = list(meta["splits"])
            for name in _array_files(splits):
                if file_crc32(path / name) != meta["crc32"][name]:
                    raise ValueError(f"{name} does not match its checksum")

            def array(name: str) -> np.ndarray:
                return np.load(path / name, mmap_mode="r", allow_pickle=False)

            ids = {s: Ragged(array(f"{s}.ids.npy"), array(f"{s}.offsets.npy")) for s in splits}
            labels = {s: np.asarray(array(f"{s}.labels.npy")) for s in splits}
            counts = np.asarray(array("counts.npy"))
            corpus = cls(meta["classes"], meta["vocab"], counts, ids, labels)
            corpus.check()
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise DataError(f"token cache {path} is damaged ({err})") from None
        return corpus

    def ranked_over(self, rows: np.ndarray, keep_unseen: bool) -> TokenizedCorpus:
        """This corpus with its vocabulary counted over the training texts ``rows`` only (a
        validation carve's texts left out, as test's are): its ids are the stored ones,
        remapped as rows are read (:class:`RerankedIds`).

        Words are ranked by their count over ``rows``, ties in this store's rank. Words those
        rows never hold (the carve's own and, in a ``keep_unseen`` store, test's) follow them
        in store order with count 0 when ``keep_unseen``; else they are dropped, as Keras
        drops test's. With the carve's words in the vocabulary, as Keras fits its tokenizer
        before the split, validation cannot tell what unseen words cost, or what keeping
        them gains: test's unseen words only show on test."""
        chunk = RANK_CHUNK_ROWS
        counts = np.zeros(len(self.vocab), np.int64)
        for start in range(0, len(rows), chunk):
            part = self.ids["train"].rows(rows[start : start + chunk])
            counts += np.bincount(part.flat, minlength=len(self.vocab))
        counts[0] = 0  # padding
        seen = np.flatnonzero(counts)
        seen = seen[np.argsort(-counts[seen], kind="stable")]
        order = [np.zeros(1, np.int64), seen]
        if keep_unseen:
            order.append(np.flatnonzero(counts == 0)[1:])
        order = np.concatenate(order)
        new_id = np.full(len(self.vocab), -1, np.int32)
        new_id[order] = np.arange(len(order), dtype=np.int32)
        return TokenizedCorpus(
            self.classes,
            [self.vocab[i] for i in order],
            counts[order],
            {split: _reranked(ids, new_id) for split, ids in self.ids.items()},
            self.labels,
        )

    def check(self) -> None:
        """Cheap consistency checks of offsets and labels (the ids are as the build wrote
        them: their checksum says so)."""
        if len(self.counts) != len(self.vocab):
            raise ValueError("counts and vocabulary differ in length")
        for split, ragged in self.ids.items():
            offsets = ragged.offsets
            if (
                len(offsets) != len(self.labels[split]) + 1
                or offsets[0] != 0
                or offsets[-1] != len(ragged.flat)
                or np.any(np.diff(offsets) < 0)
            ):
                raise ValueError(f"the {split} ids are inconsistent")


class StoreWriter:
    """Writes the files of a token store into a staging directory, each flushed to the disk,
    then ``meta.json`` with every file's CRC-32 (last: a store without it is not one)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.names: list[str] = []

    def save(self, name: str, array: np.ndarray) -> None:
        write_synced(self.directory / name, partial(np.save, arr=array, allow_pickle=False))
        self.names.append(name)

    def save_streamed(
        self, name: str, scratch: Path, count: int, convert: Any = None, block: int = 1 << 22
    ) -> None:
        """``count`` int32 ids from the raw ``scratch`` file as the array ``name``, a block at
        a time through ``convert`` if given (the build's remapping to ranked ids). Plain reads
        and writes, no mapping: resident memory stays one block whatever the split's size."""
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.int32)),
            "fortran_order": False,
            "shape": (count,),
        }

        def write(file: Any) -> None:
            np.lib.format.write_array_header_1_0(file, header)
            with open(scratch, "rb") as source:
                while len(part := np.fromfile(source, dtype=np.int32, count=block)):
                    part = convert(part) if convert is not None else part
                    file.write(np.ascontiguousarray(part, dtype=np.int32).tobytes())

        write_synced(self.directory / name, write)
        self.names.append(name)

    def finish(self, classes: list[str], splits: list[str], vocab: list[str]) -> None:
        if sorted(self.names) != sorted(_array_files(splits)):
            raise ValueError(f"a token store needs {_array_files(splits)}, got {self.names}")
        meta = {
            "format": TOKENS_FORMAT,
            "classes": classes,
            "splits": splits,
            "crc32": {name: file_crc32(self.directory / name) for name in self.names},
            "vocab": vocab,
        }
        write_synced(self.directory / META_FILE, lambda file: file.write(json.dumps(meta).encode()))
