"""The LightningDataModule for folder text datasets such as aclImdb.

``prepare_data`` (once per machine) finds or downloads the data, reads the review texts
straight from the archive's stream (or the folder), tokenises them and caches the ids;
``setup`` (every process) loads the cache, applies the encoder (vocabulary limit, n-grams,
padding) and splits train/validation with a seeded shuffle. Token ids are cached under a key
made of every setting that changes them, so only the first run of a dataset pays for reading
and tokenising; a damaged cache is said so and rebuilt.

Batches are cut where the data lives: the loaders yield row indices, and
:meth:`transfer_batch_to_device` gathers the rows from a copy of the padded ids kept on the
batch's device (one copy per run, not one per step: on a GPU the ids live on the GPU). One
training "step" of Lightning carries ``steps_per_call`` optimiser steps of ``batch_size``
reviews (see ``module.py``): Lightning's per-step machinery then costs little next to the
seed's tiny model, with exactly the same updates.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from embedclf.data import sources, tokenstore
from embedclf.data.dataset import FolderDataset, TextDataset
from embedclf.data.tokenstore import TokenizedCorpus
from embedclf.text.featurizer import TextFeaturizer
from embedclf.text.tokenizer import KERAS_FILTERS
from embedclf.util.errors import ConfigError, DataError

log = logging.getLogger(__name__)


class Batch(NamedTuple):
    """Rows of one split on the model's device; ``step_size`` rows per optimiser step."""

    ids: torch.Tensor
    labels: torch.Tensor
    step_size: int


class Rows(NamedTuple):
    """What the loaders yield: which rows of which split (cut on the device)."""

    split: str
    index: torch.Tensor


class _SplitRows(Dataset):
    """Hands the sampler's index tensors through unchanged, tagged with the split."""

    def __init__(self, split: str, size: int) -> None:
        self.split, self.size = split, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: torch.Tensor) -> Rows:
        return Rows(self.split, index)


class ChunkSampler(Sampler[torch.Tensor]):
    """Index tensors of ``chunk`` rows: a shuffled or in-order pass over ``n`` rows.

    The shuffle draws its seed from torch's global generator when the epoch's iteration
    starts and permutes with ``torch.randperm``, exactly as ``RandomSampler`` does, so runs keep
    the figures they had with a plain shuffled ``DataLoader``; a resumed run restores that
    generator (``module.py``) and continues with the same order. Under DDP every rank draws the
    same permutation and takes every ``world``-th row, all ranks the same count.
    """

    def __init__(
        self, n: int, chunk: int, shuffle: bool, rank: int = 0, world: int = 1, even: bool = True
    ) -> None:
        self.n, self.chunk, self.shuffle, self.rank, self.world = n, chunk, shuffle, rank, world
        self.even = even  # every rank the same count (training); else every row once (scoring)

    def _rows(self) -> int:
        if self.world == 1:
            return self.n
        if self.even:
            return self.n // self.world
        return len(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return math.ceil(self._rows() / self.chunk)

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.shuffle:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator = torch.Generator()
            generator.manual_seed(seed)
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        if self.world > 1:
            stop = self._rows() * self.world if self.even else self.n
            order = order[self.rank : stop : self.world]
        yield from order.split(self.chunk)


class TextDataModule(pl.LightningDataModule):
    """Labelled texts as padded id sequences; subclasses say where the texts come from
    (:meth:`dataset`).

    Args:
        cache_dir: overrides ``$EMBEDCLF_CACHE_DIR``.
        num_words, filters, lower: the Keras tokeniser's settings (``num_words=None``: all).
        ngrams, buckets: add hashed word n-grams up to ``ngrams`` into ``buckets`` ids.
        maxlen, padding, truncating: Keras ``pad_sequences`` settings.
        train_samples: training rows kept after the shuffle; ``None`` keeps all but val.
        val_samples: rows held out after the training ones: a count, or a fraction of all
            (unless the dataset gives a validation split, used as given).
        split_seed: seed of the shuffle that precedes the split.
        val_seed: when set, validation is the last ``val_samples`` of a shuffle with this seed,
            the same whatever ``split_seed`` and ``train_samples`` (learning curves).
        batch_size: rows per optimiser step; eval_batch_size: rows per evaluation pass.
        steps_per_call: optimiser steps per Lightning training step (1 under DDP).
    """

    def __init__(
        self,
        *,
        cache_dir: str | None = None,
        num_words: int | None = 10000,
        filters: str = KERAS_FILTERS,
        lower: bool = True,
        ngrams: int = 1,
        buckets: int = 0,
        maxlen: int = 20,
        padding: str = "pre",
        truncating: str = "pre",
        train_samples: int | None = None,
        val_samples: float = 0.2,
        split_seed: int = 0,
        val_seed: int | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 1024,
        steps_per_call: int = 25,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # with the subclass's own arguments
        self.featurizer: TextFeaturizer | None = None  # fitted in setup(), or a checkpoint's
        self._checkpoint_featurizer = False  # True: use_featurizer fixed it before setup()
        self.corpus: TokenizedCorpus | None = None
        self.padded: dict[str, np.ndarray] = {}
        self.labels: dict[str, np.ndarray] = {}
        self._on_device: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    # -- preparation (once per machine) ------------------------------------------------
    def source(self) -> TextDataset:
        """The dataset to read (found, or downloaded and verified, where it has to be)."""
        raise NotImplementedError

    @property
    def _checkpoint_vocab(self) -> TextFeaturizer | None:
        """The checkpoint's encoder whose vocabulary the ids must use; None: fit one."""
        return self.featurizer if self._checkpoint_featurizer else None

    def _tokens_path(self, source: TextDataset) -> Path:
        hp = self.hparams
        return tokenstore.cache_path(
            source,
            filters=hp.filters,
            lower=hp.lower,
            cache_dir=hp.cache_dir,
            encoder=self._checkpoint_vocab,
        )

    def prepare_data(self) -> None:
        hp = self.hparams
        source = self.source()
        tokenstore.ensure(
            source,
            self._tokens_path(source),
            filters=hp.filters,
            lower=hp.lower,
            encoder=self._checkpoint_vocab,
        )

    # -- setup (every process) --------------------------------------------------------
    def _load_corpus(self) -> TokenizedCorpus:
        source = self.source()
        path = self._tokens_path(source)
        try:
            return TokenizedCorpus.load(path)
        except DataError as err:
            if not path.exists():
                raise DataError(f"{err}; run prepare_data first") from None
            log.warning("%s; rebuilding it", err)
            path.unlink(missing_ok=True)
            self.prepare_data()
            return TokenizedCorpus.load(path)

    def _split_sizes(self, n: int) -> tuple[int, int]:
        hp = self.hparams
        n_val = round(hp.val_samples * n) if hp.val_samples < 1 else int(hp.val_samples)
        n_train = n - n_val if hp.train_samples is None else int(hp.train_samples)
        if n_train < 1 or n_val < 0 or n_train + n_val > n:
            raise ConfigError(
                f"data.train_samples={hp.train_samples} and data.val_samples={hp.val_samples} "
                f"ask for {n_train} + {n_val} reviews but the training set has {n}"
            )
        return n_train, n_val

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is not None:
            return
        hp = self.hparams
        corpus = self._load_corpus()
        if self.featurizer is None:
            words = (
                len(corpus.vocab) if hp.num_words is None else min(hp.num_words, len(corpus.vocab))
            )
            self.featurizer = TextFeaturizer(
                vocab=corpus.vocab[:words],
                classes=corpus.classes,
                filters=hp.filters,
                lower=hp.lower,
                maxlen=hp.maxlen,
                padding=hp.padding,
                truncating=hp.truncating,
                ngrams=hp.ngrams,
                buckets=hp.buckets,
            )
        encoder = self.featurizer
        limit = len(encoder.vocab)
        padded = {
            split: encoder.pad(encoder.features(ids.keep(ids.flat < limit)))
            for split, ids in corpus.ids.items()
        }
        n = len(corpus.labels["train"])
        given_val = "val" in corpus.ids  # a validation file or split: used as given
        n_train, n_val = self._split_sizes(n) if not given_val else (n, 0)
        order = np.random.default_rng(hp.split_seed).permutation(n)
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val]}
        if hp.val_seed is not None:  # one validation set for every split_seed (and size)
            held_out = np.random.default_rng(hp.val_seed).permutation(n)[n - n_val :]
            rest = order[~np.isin(order, held_out)]
            parts = {"train": rest[:n_train], "val": held_out}
        for split, rows in parts.items():
            self.padded[split] = padded["train"][rows]
            self.labels[split] = corpus.labels["train"][rows]
        if given_val:
            self.padded["val"], self.labels["val"] = padded["val"], corpus.labels["val"]
        # test rows in a fixed shuffled order: a limited run (debug=limit) scores every class
        test_order = np.random.default_rng(0).permutation(len(corpus.labels["test"]))
        self.padded["test"] = padded["test"][test_order]
        self.labels["test"] = corpus.labels["test"][test_order]
        self.corpus = corpus

    # -- a checkpoint's featurizer -----------------------------------------------------
    def use_featurizer(self, featurizer: TextFeaturizer) -> None:
        """Encode with a checkpoint's featurizer: before setup() it decides the vocabulary;
        after it, one that differs from the data's is refused, not silently misread."""
        if self.featurizer is not None and self.featurizer != featurizer:
            raise DataError(
                "the checkpoint was trained with another vocabulary, padding or n-gram "
                "setting than this run's data; use its own data settings"
            )
        if self.featurizer is None:
            self._checkpoint_featurizer = True
        self.featurizer = featurizer

    # -- what the model needs to know ------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Rows the embedding needs (words, plus n-gram buckets)."""
        assert self.featurizer is not None, "call setup() first"
        return self.featurizer.input_size

    @property
    def num_classes(self) -> int:
        assert self.featurizer is not None, "call setup() first"
        return len(self.featurizer.classes)

    def training_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The training split's padded ids ``(n, maxlen)`` and labels, as the model sees them."""
        return self.padded["train"], self.labels["train"]

    def feature_counts(self) -> np.ndarray:
        """Each feature id's count over the dataset's training texts (0 for n-gram buckets):
        the vocabulary's statistics, which use no label."""
        assert self.featurizer is not None and self.corpus is not None, "call setup() first"
        counts = np.zeros(self.featurizer.input_size)
        words = len(self.featurizer.vocab)
        counts[:words] = self.corpus.counts[:words]
        return counts

    def sizes(self) -> dict[str, int]:
        return {split: len(labels) for split, labels in self.labels.items()}

    # -- loaders ------------------------------------------------------------------------
    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _loader(self, split: str, train: bool) -> DataLoader:
        hp = self.hparams
        rank, world = self._world()
        steps = hp.steps_per_call if world == 1 else 1  # DDP syncs once per forward
        chunk = hp.batch_size * steps if train else hp.eval_batch_size
        # training: the same number of rows on every rank (DDP steps together); scoring: every
        # row exactly once across the ranks (torchmetrics sums the ranks' counts)
        sampler = ChunkSampler(len(self.labels[split]), chunk, train, rank, world, even=train)
        return DataLoader(
            _SplitRows(split, len(self.labels[split])),
            batch_size=None,
            sampler=sampler,
            num_workers=hp.num_workers,
            # a fresh iterator each epoch draws from torch's generator as num_workers=0
            # does: persistent workers skip that draw and would change the shuffles
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        if not isinstance(batch, Rows):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        key = (batch.split, str(device))
        if key not in self._on_device:
            self._on_device[key] = (
                torch.from_numpy(self.padded[batch.split]).to(device),
                torch.from_numpy(self.labels[batch.split]).to(device),
            )
        ids, labels = self._on_device[key]
        index = batch.index.to(device, non_blocking=True)
        step = self.hparams.batch_size if batch.split == "train" else len(index)
        return Batch(ids[index], labels[index], step)

    def teardown(self, stage: str) -> None:
        self._on_device.clear()


class TextFolderDataModule(TextDataModule):
    """Folder text classification data (aclImdb by default): ``DIR/{train,test}/<class>/``.

    Args:
        root: a folder laid out like aclImdb; ``None`` finds or downloads ``archive``.
        archive, urls, sha256: the archive's file name (or path), mirrors and checksum.
        data_dir: overrides ``$EMBEDCLF_DATA_DIR``.
        follow_links: read text files that link out of ``root`` (refused otherwise).
        **common: :class:`TextDataModule`'s settings.
    """

    def __init__(
        self,
        *,
        root: str | None = None,
        archive: str = "aclImdb_v1.tar.gz",
        urls: Sequence[str] = (),
        sha256: str | None = None,
        data_dir: str | None = None,
        follow_links: bool = False,
        **common: Any,
    ) -> None:
        urls = list(urls)  # not a ListConfig: checkpoints must load with weights_only=True
        super().__init__(**common)

    def source(self) -> TextDataset:
        hp = self.hparams
        return FolderDataset(
            sources.find_dataset(
                root=hp.root,
                archive=hp.archive,
                urls=hp.urls,
                sha256=hp.sha256,
                data_dir=hp.data_dir,
            ),
            follow_links=bool(hp.follow_links),
        )
