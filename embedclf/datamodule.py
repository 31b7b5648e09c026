"""The LightningDataModule for folder text datasets such as aclImdb.

``prepare_data`` (once per machine) finds or downloads the data, extracts it into the cache,
tokenises it and stores the token ids; ``setup`` (every process) loads those ids, pads them
and splits train/validation with a seeded shuffle. Token ids are cached under a key made of
every setting that changes them, so only the first run of a setting pays for tokenising.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from embedclf import sources
from embedclf.paths import cache_dir as resolve_cache_dir
from embedclf.paths import cache_key, file_identity
from embedclf.tokenizer import KERAS_FILTERS, KerasTokenizer, pad_sequences

log = logging.getLogger(__name__)

TOKENS_FORMAT = 1  # bump when the layout of the token cache changes


class BatchDataset(Dataset):
    """Padded ids and labels in memory, fetched a whole batch at a time.

    ``__getitems__`` lets the DataLoader index the tensors once per batch instead of once per
    sample; with batches of 32 short sequences that per-sample overhead would dominate a step.
    """

    def __init__(self, ids: np.ndarray, labels: np.ndarray) -> None:
        self.ids = torch.from_numpy(ids)
        self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ids[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices)
        return self.ids[index], self.labels[index]


def _keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


@dataclass
class TokenizedCorpus:
    """What the token cache holds: ragged ids per split, labels, classes and the vocabulary."""

    classes: list[str]
    vocab: list[str]  # word of each id, "" at 0
    counts: list[int]  # count of each vocabulary word in the training texts
    train_ids: list[np.ndarray]
    train_labels: np.ndarray
    test_ids: list[np.ndarray]
    test_labels: np.ndarray

    def save(self, path: Path) -> None:
        """Write atomically: a killed writer leaves a temp file, never a short ``path``."""
        meta = {
            "format": TOKENS_FORMAT,
            "classes": self.classes,
            "vocab": self.vocab,
            "counts": self.counts,
        }
        arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
        for split, ids in (("train", self.train_ids), ("test", self.test_ids)):
            arrays[f"{split}_flat"] = np.concatenate(ids) if ids else np.zeros(0, np.int32)
            arrays[f"{split}_offsets"] = np.cumsum([0, *map(len, ids)])
        arrays["train_labels"] = self.train_labels
        arrays["test_labels"] = self.test_labels
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> TokenizedCorpus:
        with np.load(path) as z:
            meta = json.loads(z["meta"].tobytes())
            if meta.get("format") != TOKENS_FORMAT:
                raise ValueError(f"{path} has cache format {meta.get('format')}")

            def ragged(split: str) -> list[np.ndarray]:
                flat, offsets = z[f"{split}_flat"], z[f"{split}_offsets"]
                return np.split(flat, offsets[1:-1])

            return cls(
                meta["classes"],
                meta["vocab"],
                meta["counts"],
                ragged("train"),
                z["train_labels"],
                ragged("test"),
                z["test_labels"],
            )


def read_split(root: Path, split: str, classes: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Texts of ``root/split/<class>/*.txt`` in class order, then file-name order."""
    texts: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = sorted((root / split / name).glob("*.txt"))
        for file in files:
            try:
                texts.append(file.read_text(encoding="utf-8"))
            except UnicodeDecodeError as err:
                raise sources.DataError(
                    f"{file} is not UTF-8 text ({err.reason}); fix or remove the file"
                ) from None
        labels += [label] * len(files)
    return texts, np.asarray(labels, dtype=np.int64)


def dataset_classes(root: Path) -> list[str]:
    """Classes are the folders present under both ``train/`` and ``test/`` (so not ``unsup/``)."""
    train = {p.name for p in (root / "train").iterdir() if p.is_dir()}
    test = {p.name for p in (root / "test").iterdir() if p.is_dir()}
    classes = sorted(train & test)
    if len(classes) < 2:
        raise sources.DataError(
            f"{root} needs at least two class folders present in both train/ and test/, "
            f"found {classes or 'none'}"
        )
    return classes


def source_identity(source: Path) -> object:
    """Cheap identity of a dataset archive (path, size, mtime) or folder (its listing)."""
    if source.is_file():
        return file_identity(source)
    listing = []
    for split in ("train", "test"):
        for entry in sorted((source / split).glob("*/*.txt")):
            stat = entry.stat()
            listing.append((str(entry.relative_to(source)), stat.st_size, stat.st_mtime_ns))
    return {"path": str(source.resolve()), "files": cache_key(listing, 32)}


class TextFolderDataModule(pl.LightningDataModule):
    """Folder text classification data (aclImdb by default) as padded id sequences.

    Args:
        root: a folder laid out like aclImdb; ``None`` finds or downloads ``archive``.
        archive, urls, sha256: the archive's file name (or path), mirrors and checksum.
        data_dir, cache_dir: override ``$EMBEDCLF_DATA_DIR`` / ``$EMBEDCLF_CACHE_DIR``.
        num_words, filters, lower: the Keras tokeniser's settings.
        maxlen, padding, truncating: Keras ``pad_sequences`` settings.
        train_samples: training reviews kept after the shuffle; ``None`` keeps all but val.
        val_samples: reviews held out after the training ones: a count, or a fraction of all.
        split_seed: seed of the shuffle that precedes the split.
    """

    def __init__(
        self,
        root: str | None = None,
        archive: str = "aclImdb_v1.tar.gz",
        urls: Sequence[str] = (),
        sha256: str | None = None,
        data_dir: str | None = None,
        cache_dir: str | None = None,
        num_words: int | None = 10000,
        filters: str = KERAS_FILTERS,
        lower: bool = True,
        maxlen: int = 20,
        padding: str = "pre",
        truncating: str = "pre",
        train_samples: int | None = None,
        val_samples: float = 0.2,
        split_seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        urls = list(urls)  # not a ListConfig: checkpoints must load with weights_only=True
        self.save_hyperparameters(logger=False)
        self.corpus: TokenizedCorpus | None = None
        self.data: dict[str, BatchDataset] = {}

    # -- preparation (once per machine) ------------------------------------------------
    def _source(self) -> Path:
        hp = self.hparams
        return sources.find_dataset(
            root=hp.root,
            archive=hp.archive,
            urls=hp.urls,
            sha256=hp.sha256,
            data_dir=hp.data_dir,
        )

    def _tokens_path(self, source: Path) -> Path:
        hp = self.hparams
        settings = {
            "source": source_identity(source),
            "num_words": hp.num_words,
            "filters": hp.filters,
            "lower": hp.lower,
            "format": TOKENS_FORMAT,
        }
        return resolve_cache_dir(hp.cache_dir) / "tokens" / f"{cache_key(settings)}.npz"

    def prepare_data(self) -> None:
        source = self._source()
        path = self._tokens_path(source)
        if path.exists():
            return
        hp = self.hparams
        started = time.perf_counter()
        root = source
        if source.is_file():
            root = sources.extracted_root(source, resolve_cache_dir(hp.cache_dir))
        classes = dataset_classes(root)
        train_texts, train_labels = read_split(root, "train", classes)
        test_texts, test_labels = read_split(root, "test", classes)
        if not train_texts or not test_texts:
            raise sources.DataError(f"{root} has no train or no test texts (*.txt)")
        tokenizer = KerasTokenizer(num_words=hp.num_words, filters=hp.filters, lower=hp.lower)
        tokenizer.fit_on_texts(train_texts)
        vocab = tokenizer.vocabulary()

        def encode(texts: list[str]) -> list[np.ndarray]:
            return [np.asarray(s, np.int32) for s in tokenizer.texts_to_sequences(texts)]

        corpus = TokenizedCorpus(
            classes,
            vocab,
            [0] + [tokenizer.word_counts[w] for w in vocab[1:]],
            encode(train_texts),
            train_labels,
            encode(test_texts),
            test_labels,
        )
        corpus.save(path)
        log.info(
            "tokenised %d train and %d test texts from %s in %.1f s -> %s",
            len(train_texts),
            len(test_texts),
            root,
            time.perf_counter() - started,
            path,
        )

    # -- setup (every process) --------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.corpus is not None:
            return
        path = self._tokens_path(self._source())
        try:
            corpus = TokenizedCorpus.load(path)
        except (OSError, ValueError, KeyError) as err:
            raise sources.DataError(
                f"token cache {path} is unreadable ({err}); delete it "
                "and run again, or run prepare_data first"
            ) from None
        hp = self.hparams
        n = len(corpus.train_labels)
        n_val = round(hp.val_samples * n) if hp.val_samples < 1 else int(hp.val_samples)
        n_train = n - n_val if hp.train_samples is None else int(hp.train_samples)
        if n_train < 1 or n_val < 0 or n_train + n_val > n:
            raise sources.DataError(
                f"data.train_samples={hp.train_samples} and data.val_samples={hp.val_samples} "
                f"ask for {n_train} + {n_val} reviews but the training set has {n}"
            )
        order = np.random.default_rng(hp.split_seed).permutation(n)
        pad = {"maxlen": hp.maxlen, "padding": hp.padding, "truncating": hp.truncating}
        train_ids = pad_sequences(corpus.train_ids, **pad)
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val]}
        for split, rows in parts.items():
            self.data[split] = BatchDataset(train_ids[rows], corpus.train_labels[rows])
        self.data["test"] = BatchDataset(pad_sequences(corpus.test_ids, **pad), corpus.test_labels)
        self.corpus = corpus

    # -- what the model needs to know ------------------------------------------------
    @property
    def vocab_size(self) -> int:
        assert self.corpus is not None, "call setup() first"
        return len(self.corpus.vocab)

    @property
    def num_classes(self) -> int:
        assert self.corpus is not None, "call setup() first"
        return len(self.corpus.classes)

    def sizes(self) -> dict[str, int]:
        return {split: len(data) for split, data in self.data.items()}

    # -- loaders ------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.data[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            collate_fn=_keep_batch,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
