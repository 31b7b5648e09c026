"""The LightningDataModule for text datasets: aclImdb-like folders here, files and Hugging
Face datasets in their own modules.

``prepare_data`` (once per machine) finds or downloads the data, reads the texts, tokenises
them and writes the token store (``tokenstore.py``: flat ids and offsets per split, memory
mapped); ``setup`` (every process) opens the store and splits train/validation with a seeded
shuffle, keeping only row numbers. Nothing is padded here: the store is keyed by every setting
that changes the ids, so only the first run of a dataset pays for reading and tokenising, and
a damaged store is said so and rebuilt.

Batches are made per batch: the loader's dataset gathers the rows of a batch from the store,
applies the vocabulary limit, n-grams and ``maxlen`` truncation (:class:`TextFeaturizer`) and
yields flat ids with offsets (:class:`~embedclf.data.batches.Batch`); the model pads them only
as far as its encoder needs. One training "step" of Lightning carries ``steps_per_call``
optimiser steps of ``batch_size`` reviews (see ``models/recipe.py``): Lightning's per-step
machinery then costs little next to the seed's tiny model, with exactly the same updates.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from embedclf.data import sources, storebuild, tokenstore
from embedclf.data.batches import Batch, Tokens
from embedclf.data.dataset import FolderDataset, TextDataset
from embedclf.data.device_batches import DeviceBatches, device_for
from embedclf.data.readers.folder import training_groups
from embedclf.data.tokenstore import TokenizedCorpus
from embedclf.text.featurizer import TextFeaturizer
from embedclf.text.ragged import Ragged, concatenate
from embedclf.text.tokenizer import KERAS_FILTERS
from embedclf.util.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# which of the training file's texts the vocabulary is counted over (data.vocab_from)
VOCAB_FROM = ("train_file", "train_rows")


class _SplitBatches(Dataset):
    """One batch per index tensor the sampler yields: the rows' features, flat, with labels.

    The work per batch (gather, n-grams, truncation) happens here, so ``num_workers > 0``
    spreads it over processes; the store's mapped ids are shared by them, not copied.
    """

    def __init__(
        self,
        words: Ragged,
        rows: np.ndarray,
        labels: np.ndarray,
        featurizer: TextFeaturizer,
        step_size: int | None,
        features: Ragged | None = None,
    ) -> None:
        self.words, self.rows, self.labels = words, rows, labels
        self.featurizer, self.step_size = featurizer, step_size
        self.features = features  # every row's features, computed once (feature_cache_mb)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: torch.Tensor) -> Batch:
        if self.features is not None:
            features = self.features.rows(index.numpy())
        else:
            features = self.featurizer.batch(self.words.rows(self.rows[index.numpy()]))
        labels = torch.from_numpy(np.asarray(self.labels[index.numpy()], dtype=np.int64))
        tokens = Tokens.from_ragged(features, self.featurizer.padding)
        return Batch(tokens, labels, self.step_size or len(labels))


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

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        generator = torch.Generator()
        generator.manual_seed(seed)
        return self._shuffled(generator)

    def _shuffled(self, generator: torch.Generator) -> torch.Tensor:
        return torch.randperm(self.n, generator=generator)

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = self._order()
        if self.world > 1:
            stop = self._rows() * self.world if self.even else self.n
            order = order[self.rank : stop : self.world]
        yield from order.split(self.chunk)


class LengthBucketSampler(ChunkSampler):
    """A shuffled pass in which each batch of ``batch`` rows holds rows of similar length, so
    that batches padded to their longest row carry little padding (``data.length_buckets``).

    Rows are shuffled, then sorted by length within pools of 50 chunks, cut into batches, and
    the batches shuffled; each epoch draws from torch's generator as :class:`ChunkSampler`.
    """

    POOL_CHUNKS = 50

    def __init__(self, lengths: np.ndarray, chunk: int, batch: int, **kwargs: Any) -> None:
        super().__init__(len(lengths), chunk, True, **kwargs)
        self.lengths, self.batch = torch.from_numpy(np.asarray(lengths, np.int64)), batch

    def _shuffled(self, generator: torch.Generator) -> torch.Tensor:
        order = torch.randperm(self.n, generator=generator)
        pool = self.chunk * self.POOL_CHUNKS
        parts = []
        for start in range(0, self.n, pool):
            rows = order[start : start + pool]
            parts.append(rows[torch.argsort(self.lengths[rows], stable=True)])
        batches = torch.cat(parts).split(self.batch)
        shuffle = torch.randperm(len(batches), generator=generator).tolist()
        return torch.cat([batches[i] for i in shuffle]) if batches else order


class TextDataModule(pl.LightningDataModule):
    """Labelled texts as batches of feature ids; subclasses say where the texts come from
    (:meth:`source`).

    Args:
        cache_dir: overrides ``$EMBEDCLF_CACHE_DIR``.
        num_words, filters, lower: the Keras tokeniser's settings (``num_words=None``: all).
        unseen_words: ``drop`` (Keras): words of the validation and test texts that training
            never saw are dropped; ``keep``: they get ids after the training words, so that
            pretrained vectors stand for them (their rows are never trained).
        vocab_from: ``train_file`` (Keras): the vocabulary is counted over every text of the
            training file, a validation carve's included; ``train_rows``: where validation is
            carved from the training file, over the rows training uses, so the carve's words
            training never saw are unseen words there as test's are
            (:meth:`TokenizedCorpus.ranked_over`: the stored ids, remapped as batches read
            them, with one pass over the training rows to count).
        ngrams, buckets: add hashed word n-grams up to ``ngrams`` into ``buckets`` ids.
        maxlen, padding, truncating: Keras ``pad_sequences`` settings.
        train_samples: training rows kept after the shuffle; ``None`` keeps all but val.
        val_samples: rows held out after the training ones: a count, or a fraction of all
            (unless the dataset gives a validation split, used as given).
        split_seed: seed of the shuffle that precedes the split.
        val_seed: when set, validation is the last ``val_samples`` of a shuffle with this seed,
            the same whatever ``split_seed`` and ``train_samples`` (learning curves).
        val_groups: validation holds whole groups of training rows (:meth:`groups`: aclImdb's
            films), about ``val_samples`` rows of groups drawn in the carve's seeded order,
            so that no group has rows on both sides, as none of aclImdb's test films is a
            training film; false: rows drawn one by one.
        batch_size: rows per optimiser step; eval_batch_size: rows per evaluation pass.
        steps_per_call: optimiser steps per Lightning training step (1 under DDP).
        length_buckets: training batches of rows of similar length (less padding for
            encoders that pad to a batch's longest row; another order than the plain shuffle).
        feature_cache_mb: the training rows' features (n-grams hashed, rows cut to
            ``maxlen``) are computed once and kept in memory when they fit in this many MB, so
            each epoch and the feature statistics gather them instead of computing them
            again; larger training sets are featurized per batch (0: always).
        features_on_device: on a CUDA device, those cached features (and the labels) are
            copied there once, where they fit half its free memory, and each training batch
            is gathered there (``device_batches.py``); else batches come from pinned memory.
    """

    def __init__(
        self,
        *,
        cache_dir: str | None = None,
        num_words: int | None = 10000,
        filters: str = KERAS_FILTERS,
        lower: bool = True,
        unseen_words: str = "drop",
        vocab_from: str = "train_file",
        ngrams: int = 1,
        buckets: int = 0,
        maxlen: int = 20,
        padding: str = "pre",
        truncating: str = "pre",
        train_samples: int | None = None,
        val_samples: float = 0.2,
        split_seed: int = 0,
        val_seed: int | None = None,
        val_groups: bool = False,
        batch_size: int = 32,
        eval_batch_size: int = 1024,
        steps_per_call: int = 25,
        length_buckets: bool = False,
        num_workers: int = 0,
        feature_cache_mb: float = 256,
        features_on_device: bool = True,
    ) -> None:
        super().__init__()
        if unseen_words not in ("drop", "keep"):
            raise ConfigError(f"data.unseen_words must be drop or keep, got {unseen_words!r}")
        if vocab_from not in VOCAB_FROM:
            raise ConfigError(
                f"data.vocab_from must be one of {', '.join(VOCAB_FROM)}, got {vocab_from!r}"
            )
        flags = {
            "val_groups": val_groups,
            "length_buckets": length_buckets,
            "features_on_device": features_on_device,
        }
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise ConfigError(f"data.{name} must be true or false, got {value!r}")
        if isinstance(feature_cache_mb, bool) or not (
            isinstance(feature_cache_mb, int | float) and feature_cache_mb >= 0
        ):
            raise ConfigError(
                f"data.feature_cache_mb must be a size in MB (0: none), got {feature_cache_mb!r}"
            )
        self.save_hyperparameters(logger=False)  # with the subclass's own arguments
        self.featurizer: TextFeaturizer | None = None  # fitted in setup(), or a checkpoint's
        self._checkpoint_featurizer = False  # True: use_featurizer fixed it before setup()
        self.corpus: TokenizedCorpus | None = None
        self.words: dict[str, Ragged] = {}  # the store's splits, windowed where that is smaller
        self.rows: dict[str, tuple[str, np.ndarray]] = {}  # split: (store split, its rows)
        self.labels: dict[str, np.ndarray] = {}
        self._features: dict[str, Ragged | None] = {}  # split: its cached features, or None
        self._device_batches: DeviceBatches | None = None  # those of train on the device

    # -- preparation (once per machine) ------------------------------------------------
    def source(self) -> TextDataset:
        """The dataset to read (found, or downloaded and verified, where it has to be)."""
        raise NotImplementedError

    def groups(self, classes: list[str]) -> np.ndarray | None:
        """Each training row's group (rows of one group are never split between training
        and validation under ``val_groups``), or None where the dataset gives none."""
        return None

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
            keep_unseen=hp.unseen_words == "keep",
        )

    def prepare_data(self) -> None:
        hp = self.hparams
        source = self.source()
        storebuild.ensure(
            source,
            self._tokens_path(source),
            filters=hp.filters,
            lower=hp.lower,
            encoder=self._checkpoint_vocab,
            keep_unseen=hp.unseen_words == "keep",
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
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(
                missing_ok=True
            )
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

    def _parts(self, corpus: TokenizedCorpus) -> tuple[dict[str, np.ndarray], bool]:
        """The training file's rows for training and validation (a seeded carve), and
        whether validation is a split of its own (its rows then used as given)."""
        hp = self.hparams
        n = len(corpus.labels["train"])
        given_val = "val" in corpus.ids  # a validation file or split: used as given
        n_train, n_val = self._split_sizes(n) if not given_val else (n, 0)
        order = np.random.default_rng(hp.split_seed).permutation(n)
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val]}
        if hp.val_groups and not given_val and n_val > 0:
            held_out = self._group_carve(corpus.classes, n, n_val)
            rest = order[~np.isin(order, held_out)]
            n_train = len(rest) if hp.train_samples is None else n_train  # all the others
            if len(rest) < max(n_train, 1):
                raise ConfigError(
                    f"data.val_groups=true holds out {len(held_out)} rows of whole groups, "
                    f"leaving {len(rest)} for training (data.train_samples="
                    f"{hp.train_samples}); lower data.val_samples or data.train_samples"
                )
            parts = {"train": rest[:n_train], "val": held_out}
        elif hp.val_seed is not None:  # one validation set for every split_seed (and size)
            held_out = np.random.default_rng(hp.val_seed).permutation(n)[n - n_val :]
            rest = order[~np.isin(order, held_out)]
            parts = {"train": rest[:n_train], "val": held_out}
        if given_val:
            parts["val"] = np.arange(len(corpus.labels["val"]))
        return parts, given_val

    def _group_carve(self, classes: list[str], n: int, n_val: int) -> np.ndarray:
        """The rows of whole groups, drawn in a seeded order (``val_seed``, else
        ``split_seed``) until they number ``n_val`` or more, ascending."""
        hp = self.hparams
        groups = self.groups(classes)
        if groups is None:
            raise ConfigError(
                "data.val_groups=true needs a dataset that gives each training row a group "
                "(aclImdb's train/urls_<class>.txt); this one gives none: set "
                "data.val_groups=false"
            )
        if len(groups) != n:
            raise DataError(
                f"the dataset gives {len(groups)} groups for {n} training rows (a review file "
                "listed twice?); set data.val_groups=false"
            )
        names, of_row = np.unique(groups, return_inverse=True)
        seed = hp.val_seed if hp.val_seed is not None else hp.split_seed
        drawn = np.random.default_rng(seed).permutation(len(names))
        sizes = np.bincount(of_row, minlength=len(names))[drawn]
        taken = drawn[: int(np.searchsorted(np.cumsum(sizes), n_val)) + 1]
        return np.flatnonzero(np.isin(of_row, taken))

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is not None:
            return
        hp = self.hparams
        corpus = self._load_corpus()
        parts, given_val = self._parts(corpus) if "train" in corpus.ids else ({}, False)
        carved = not given_val and len(parts.get("val", ())) > 0
        if hp.vocab_from == "train_rows" and carved and self.featurizer is None:
            corpus = corpus.ranked_over(parts["train"], keep_unseen=hp.unseen_words == "keep")
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
        self.words = {split: self._windowed(ids) for split, ids in corpus.ids.items()}
        # test rows in a fixed shuffled order: a limited run (debug=limit) scores every class
        test_rows = np.random.default_rng(0).permutation(len(corpus.labels["test"]))
        self.rows["test"], self.labels["test"] = (
            ("test", test_rows),
            corpus.labels["test"][test_rows],
        )
        self.corpus = corpus
        # no training split: a checkpoint scored on a dataset of test rows only
        stored = {"train": "train", "val": "val" if given_val else "train"}
        for split, rows in parts.items():
            self.rows[split] = (stored[split], rows)
            self.labels[split] = corpus.labels[stored[split]][rows]

    def _windowed(self, ids: Ragged, chunk: int = 1 << 16) -> Ragged:
        """A split's ids as batches will read them: cut to the featurizer's word window (and
        vocabulary) up front where that at least halves them (the seed keeps 20 words of
        reviews of hundreds), else the store's mapped ids as they are (batches cut them)."""
        assert self.featurizer is not None
        featurizer = self.featurizer
        kept = np.minimum(np.diff(ids.offsets), featurizer.word_window).sum()
        if 2 * kept > int(ids.offsets[-1]):
            return ids
        return concatenate(
            [
                featurizer.window(ids.slice(a, min(a + chunk, len(ids))))
                for a in range(0, len(ids), chunk)
            ]
        )

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

    def features(self, split: str, index: np.ndarray | None = None) -> Ragged:
        """The features of ``split``'s rows ``index`` (all by default), as batches hold them:
        cut to ``maxlen``, not padded."""
        assert self.featurizer is not None, "call setup() first"
        stored, rows = self.rows[split]
        chosen = rows if index is None else rows[index]
        return self.featurizer.batch(self.words[stored].rows(chosen))

    def _cached_features(self, split: str) -> Ragged | None:
        """Every row's features of ``split``, computed once, where they fit
        ``feature_cache_mb`` (bounded by the rows' word counts before computing any) and the
        batches are made in this process; else None: each batch computes its own."""
        if split in self._features:
            return self._features[split]
        hp, featurizer = self.hparams, self.featurizer
        assert featurizer is not None
        stored, rows = self.rows[split]
        words = np.diff(self.words[stored].offsets)[rows]
        # features per row: at most featurizer.features_per_word a word, never over maxlen
        bound = np.minimum(words * featurizer.features_per_word, featurizer.maxlen).sum() * 4
        cached = None
        if hp.num_workers == 0 and 0 < bound <= hp.feature_cache_mb * 2**20:
            # each block narrowed before they are joined: half the bytes to copy
            blocks = []
            for start in range(0, len(rows), 8192):
                block = featurizer.batch(self.words[stored].rows(rows[start : start + 8192]))
                flat = np.asarray(block.flat, dtype=featurizer.id_dtype)
                blocks.append(Ragged(flat, block.offsets))
            cached = concatenate(blocks)
        self._features[split] = cached
        return cached

    def training_batches(self, size: int = 8192) -> Iterator[Batch]:
        """The training split in order, ``size`` rows per batch, on the CPU: what the model's
        feature statistics (NB weights, standardisation) are fitted to."""
        loader = self._loader("train", train=False, chunk=size)
        for index in loader.sampler:
            yield loader.dataset[index]

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

    def _loader(self, split: str, train: bool, chunk: int | None = None) -> DataLoader:
        assert self.featurizer is not None, "call setup() first"
        hp = self.hparams
        rank, world = self._world() if chunk is None else (0, 1)
        steps = hp.steps_per_call if world == 1 else 1  # DDP syncs once per forward
        chunk = chunk or (hp.batch_size * steps if train else hp.eval_batch_size)
        # training: the same number of rows on every rank (DDP steps together); scoring: every
        # row exactly once across the ranks (torchmetrics sums the ranks' counts)
        stored, rows = self.rows[split]
        sampler = ChunkSampler(len(self.labels[split]), chunk, train, rank, world, even=train)
        if train and hp.length_buckets:
            lengths = np.diff(self.words[stored].offsets)[rows]  # words, a cheap stand-in
            sampler = LengthBucketSampler(lengths, chunk, hp.batch_size, rank=rank, world=world)
        features = self._cached_features(split) if split == "train" else None
        trainer = self.trainer
        batches: Dataset | None = None
        # on the device only without workers: CUDA tensors do not survive a fork
        on_device = train and features is not None and hp.num_workers == 0
        if on_device and hp.features_on_device and trainer is not None:
            batches = self._on_device(features, trainer.strategy.root_device)
        if batches is None:
            batches = _SplitBatches(
                self.words[stored],
                rows,
                self.labels[split],
                self.featurizer,
                hp.batch_size if train else None,
                features,
            )
        return DataLoader(
            batches,
            batch_size=None,
            sampler=sampler,
            num_workers=hp.num_workers,
            # a fresh iterator each epoch draws from torch's generator as num_workers=0
            # does: persistent workers skip that draw and would change the shuffles
            persistent_workers=False,
            # on a GPU: batches copied from pinned memory, without blocking (transfer below),
            # unless they are gathered there
            pin_memory=(
                not isinstance(batches, DeviceBatches)
                and trainer is not None
                and trainer.strategy.root_device.type == "cuda"
            ),
        )

    def _on_device(self, features: Ragged, device: torch.device) -> DeviceBatches | None:
        """The training features on ``device`` where they fit, copied there once per run:
        a loader made again (``reload_dataloaders_every_n_epochs``) reuses the copy, which
        would otherwise be held twice, and counted against the free memory it is judged by."""
        held = self._device_batches
        if held is None or held.device != device:
            self._device_batches = None  # the old copy freed before a new one is judged
            if device_for(features, self.labels["train"], device) is not None:
                assert self.featurizer is not None
                self._device_batches = DeviceBatches(
                    features,
                    self.labels["train"],
                    self.featurizer.padding,
                    self.hparams.batch_size,
                    device,
                )
        return self._device_batches

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
        if isinstance(batch, Batch):
            return batch.to(device, non_blocking=True)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)


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
        scoring = self._checkpoint_featurizer  # a checkpoint's vocabulary: test/ alone
        return FolderDataset(
            sources.find_dataset(
                root=hp.root,
                archive=hp.archive,
                urls=hp.urls,
                sha256=hp.sha256,
                data_dir=hp.data_dir,
                need_train=not scoring,
            ),
            follow_links=bool(hp.follow_links),
            test_only=scoring,
        )

    def groups(self, classes: list[str]) -> np.ndarray | None:
        """aclImdb's films (``train/urls_<class>.txt``), or None for a tree without them."""
        source = self.source()
        assert isinstance(source, FolderDataset)
        return training_groups(source.path, classes, follow_links=source.follow_links)
