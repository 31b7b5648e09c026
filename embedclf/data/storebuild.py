"""Building a token store: texts read a block at a time, split into words by a pool of
processes, their ids written straight into the store's files.

Keras's vocabulary (ranked by count, ties by first appearance) is known only once every
training text has been counted, so the build passes twice over ids, never over texts:

1. each block of training texts is split by a worker into its own words (in first-seen
   order) and ids over them; the parent maps those words to corpus-wide first-seen indices
   (blocks in order, so first appearance is the corpus's), counts them, and appends the
   indices to a scratch file;
2. once training is read, words are ranked and the scratch indices are mapped to ranked ids
   into ``train.ids.npy``, a block at a time. Validation and test blocks are looked up in the
   ranked vocabulary as they come (words training never saw are dropped, as Keras drops them).

What is held in memory is the vocabulary, a few blocks of texts and the labels: never a
split's texts or ids (archives, and files or Hugging Face datasets whose test rows are carved
from training, are still read whole first).

Building a store is the slow part of a first run; so is importing torch and Lightning.
Nothing here imports either, so ``train.py`` starts building in a child process as soon as
its config is composed (:func:`start_building`) while it loads them itself. Every builder
holds the store's file lock, so whichever process comes second (the run itself, a parallel
sweep job, a DDP rank) waits for the first and reads what it wrote; a child that fails leaves
nothing behind, and the run then builds the store itself and reports the error.

The ids are those :func:`~embedclf.text.tokenizer.fit_corpus` gives
(``tests/data/test_tokenstore.py`` checks them against the Keras tokeniser's).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.pool import AsyncResult, Pool
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, cast

import numpy as np
from tqdm import tqdm

from embedclf.data import sources
from embedclf.data.dataset import FolderDataset, StreamingDataset, TextDataset
from embedclf.data.tokenstore import StoreWriter, as_dataset, cache_path
from embedclf.text.featurizer import TextFeaturizer
from embedclf.text.ragged import Ragged
from embedclf.text.tokenizer import KERAS_FILTERS, FirstSeen, count_words, rank_order
from embedclf.util.cores import usable_cores
from embedclf.util.errors import DataError, DiskError
from embedclf.util.fileio import atomic_directory, exclusive

log = logging.getLogger(__name__)

BLOCK_TEXTS = 20_000  # texts a worker splits at a time
Labeller = Callable[[Mapping[str, list[Any]]], tuple[list[str], dict[str, np.ndarray]]]


def split_block(
    texts: list[str], filters: str, lower: bool
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A worker's job: the block's distinct words in first-seen order, each text's ids over
    them (flat, int32) and each text's length."""
    words, _, ragged = count_words(texts, filters, lower)
    return words, ragged.flat, ragged.lengths()


Blocks = Iterator[tuple[str, list[str], list[Any]]]


def blocks_of(dataset: TextDataset) -> tuple[Blocks, Labeller, dict[str, int]]:
    """``(split, texts, raw labels)`` blocks of ``dataset``, training first, what turns the
    raw labels into classes and integer labels, and the rows of each split where they are
    known before reading (the progress bars' totals). Folders, and files or Hugging Face
    datasets with a test split, stream; archives, and datasets with a test split to carve, are
    read whole."""
    streams = getattr(dataset, "streams", None)  # FileDataset, FolderDataset, HFDataset
    if streams is not None and streams():
        stream = cast(StreamingDataset, dataset)
        return _rechunked(stream.stream()), stream.classes_of, stream.row_counts()
    texts, _ = dataset.read()

    def whole() -> Iterator[tuple[str, list[str], list[Any]]]:
        for split in sorted(texts.texts, key=lambda name: name != "train"):  # train first
            yield split, texts.texts[split], texts.labels[split].tolist()

    def label(raw: Mapping[str, list[Any]]) -> tuple[list[str], dict[str, np.ndarray]]:
        return texts.classes, dict(texts.labels)

    return _rechunked(whole()), label, {split: len(t) for split, t in texts.texts.items()}


def _rechunked(
    blocks: Iterator[tuple[str, list[str], list[Any]]],
) -> Iterator[tuple[str, list[str], list[Any]]]:
    for split, texts, raw in blocks:
        for start in range(0, len(texts), BLOCK_TEXTS):
            yield split, texts[start : start + BLOCK_TEXTS], raw[start : start + BLOCK_TEXTS]


def _workers() -> int:
    """Processes to split words in: every core, unless this process may not have children
    (a daemonic one, such as train.py's early builder) or there is one core."""
    if multiprocessing.current_process().daemon:
        return 0
    cores = usable_cores()
    return cores if cores > 1 else 0


class _Split:
    """One split's ids appended to a scratch file as they come, with lengths and labels."""

    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / f".{name}.scratch"
        self.file = open(self.path, "xb")  # noqa: SIM115  (closed by done())
        self.lengths: list[np.ndarray] = []
        self.raw: list[Any] = []
        self.count = 0

    def add(self, ids: np.ndarray, lengths: np.ndarray, raw: list[Any]) -> None:
        np.ascontiguousarray(ids, dtype=np.int32).tofile(self.file)
        self.count += len(ids)
        self.lengths.append(lengths)
        self.raw += raw

    def done(self) -> np.ndarray:
        """The offsets (the ids are in the scratch file)."""
        self.file.close()
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64)
        return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])


class _Vocabulary:
    """The corpus's words in first-seen order with counts, then (``rank()``) Keras's ids."""

    def __init__(self, encoder: TextFeaturizer | None, keep_unseen: bool = False) -> None:
        self.keep_unseen = keep_unseen and encoder is None  # a checkpoint's vocabulary is fixed
        self.seen = FirstSeen()  # word -> first-seen index, a new word the next one
        self.counts = np.zeros(0, np.int64)
        self.index: dict[str, int] | None = encoder.word_index if encoder is not None else None
        self.vocab: list[str] = list(encoder.vocab) if encoder is not None else []
        self.by_seen = np.zeros(0, np.int32)

    def count(self, words: list[str], flat: np.ndarray) -> np.ndarray:
        """Training block: its ids as first-seen indices, counted."""
        glob = np.fromiter(map(self.seen.__getitem__, words), np.int32, len(words))[flat]
        found = np.bincount(glob, minlength=len(self.seen))
        found[: len(self.counts)] += self.counts
        self.counts = found
        return glob

    def rank(self) -> None:
        order = rank_order(self.counts)
        self.by_seen = np.empty(len(order), np.int32)
        self.by_seen[order] = np.arange(1, len(order) + 1, dtype=np.int32)
        words = list(self.seen)
        self.vocab = ["", *(words[i] for i in order)]
        self.index = {word: i for i, word in enumerate(self.vocab) if i}
        self.counts = np.concatenate([[0], self.counts[order]])

    def lookup(self, words: list[str], flat: np.ndarray) -> np.ndarray:
        """A block's ids in the ranked (or the checkpoint's) vocabulary; 0: not in it. With
        ``keep_unseen``, a word training never saw is appended to the vocabulary (count 0)."""
        assert self.index is not None
        if self.keep_unseen:
            new = [word for word in dict.fromkeys(words) if word not in self.index]
            first = len(self.vocab)
            self.index.update(zip(new, range(first, first + len(new)), strict=True))
            self.vocab += new
            self.counts = np.concatenate([self.counts, np.zeros(len(new), np.int64)])
        return np.fromiter(map(self.index.get, words, [0] * len(words)), np.int32, len(words))[flat]


def build_store(
    dataset: TextDataset,
    path: Path,
    *,
    filters: str,
    lower: bool,
    encoder: TextFeaturizer | None = None,
    keep_unseen: bool = False,
) -> None:
    """Read, tokenise and write the token store ``path`` (atomically) for ``dataset``.

    ``keep_unseen``: words of the other splits that training never saw get ids after the
    training vocabulary (in first-seen order, count 0) instead of being dropped, so that
    pretrained vectors can stand for them (the vocabulary of Kim (2014): every split's texts,
    never their labels)."""
    started = time.perf_counter()
    log.info("reading and tokenising %s", dataset)
    blocks, label, totals = blocks_of(dataset)
    vocabulary = _Vocabulary(encoder, keep_unseen)
    splits: dict[str, _Split] = {}
    with atomic_directory(path) as tmp:
        writer = StoreWriter(tmp)
        pools: list[Pool] = []  # started at the second block: small data needs none
        try:
            for split, (words, flat, lengths), raw in _split_all(
                blocks, pools, filters, lower, totals
            ):
                if split not in splits:
                    if split != "train" and encoder is None and not vocabulary.vocab:
                        vocabulary.rank()
                    splits[split] = _Split(tmp, split)
                if split == "train" and encoder is None:
                    ids = vocabulary.count(words, flat)
                    splits[split].add(ids, lengths, raw)
                else:
                    ids = vocabulary.lookup(words, flat)
                    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
                    known = Ragged(ids, offsets).keep(ids != 0)  # unseen words dropped
                    splits[split].add(known.flat, known.lengths(), raw)
        finally:
            for pool in pools:
                pool.terminate()
        if "train" not in splits and encoder is None:  # a checkpoint's vocabulary needs none
            raise DataError(f"{dataset} has no training rows")
        if encoder is None and not vocabulary.vocab:
            vocabulary.rank()
        classes, labels = label({name: split.raw for name, split in splits.items()})
        if encoder is not None and classes != encoder.classes:
            raise DataError(
                f"{dataset} has classes {classes} but the checkpoint was trained on "
                f"{encoder.classes}"
            )
        for name, split in splits.items():
            offsets = split.done()
            ranked = name == "train" and encoder is None
            remap = partial(np.take, vocabulary.by_seen) if ranked else None
            writer.save_streamed(f"{name}.ids.npy", split.path, split.count, remap)
            split.path.unlink()
            writer.save(f"{name}.offsets.npy", offsets)
            writer.save(f"{name}.labels.npy", labels[name])
        counts = vocabulary.counts if encoder is None else np.zeros(len(vocabulary.vocab), np.int64)
        writer.save("counts.npy", counts)
        writer.finish(classes, list(splits), vocabulary.vocab)
    log.info("tokenised %s in %.1f s -> %s", dataset, time.perf_counter() - started, path)


def _split_all(
    blocks: Iterator[tuple[str, list[str], list[Any]]],
    pools: list[Pool],
    filters: str,
    lower: bool,
    totals: Mapping[str, int],
) -> Iterator[tuple[str, tuple[list[str], np.ndarray, np.ndarray], list[Any]]]:
    """Each block's words and ids, in order, split by a pool of workers (started at the
    second block into ``pools``; a few blocks ahead of the parent, never the whole file), or
    here where there is one core or this process may not have children."""
    job = partial(split_block, filters=filters, lower=lower)
    pending: deque[tuple[str, AsyncResult | tuple, list[Any]]] = deque()
    workers, ahead = _workers(), 0
    bars: dict[str, tqdm] = {}
    try:
        for index, (split, texts, raw) in enumerate(blocks):
            if index == 1 and workers:
                pools.append(multiprocessing.get_context("fork").Pool(workers))
                ahead = 2 * workers
            if split not in bars:
                bars[split] = tqdm(  # rate, and the ETA where the split's rows are known
                    desc=f"tokenising {split}",
                    total=totals.get(split),
                    unit=" texts",
                    unit_scale=True,
                    disable=None,
                )
            work = pools[0].apply_async(job, (texts,)) if pools else job(texts)
            pending.append((split, work, raw))
            while len(pending) > ahead:
                yield _done(pending.popleft(), bars)
        while pending:
            yield _done(pending.popleft(), bars)
    finally:
        for bar in bars.values():
            bar.close()


def _done(item: tuple[str, Any, list[Any]], bars: dict[str, tqdm]):
    split, work, raw = item
    result = work.get() if isinstance(work, AsyncResult) else work
    bars[split].update(len(raw))
    return split, result, raw


def ensure(
    source: Path | TextDataset,
    path: Path,
    *,
    filters: str,
    lower: bool,
    encoder: TextFeaturizer | None = None,
    keep_unseen: bool = False,
) -> None:
    """Build the store ``path`` unless it exists, one process at a time. Where this
    process's early child (:func:`start_building`) failed on the disk, its error is raised as
    it is: building again would read and tokenise it all a second time, for the same error
    (other failures are met again, and reported, by this process's own build)."""
    if path.exists():
        return
    with exclusive(path, f"the token ids of {source}"):
        if path.exists():  # another process may have built it while we waited
            return
        failure = _child_failure(path)
        if failure is not None:
            raise DataError(failure)
        build_store(
            as_dataset(source),
            path,
            filters=filters,
            lower=lower,
            encoder=encoder,
            keep_unseen=keep_unseen,
        )


# the early children this process started, by store path, with the end of a pipe on which a
# child that fails with a DiskError sends its message
_CHILDREN: dict[Path, tuple[BaseProcess, Connection]] = {}


def _child_failure(path: Path) -> str | None:
    """The DiskError message of this process's child that built ``path``, if it failed so."""
    entry = _CHILDREN.pop(path, None)
    if entry is None:
        return None
    child, reader = entry
    child.join()
    try:
        return reader.recv() if reader.poll() else None
    except (EOFError, OSError):
        return None
    finally:
        reader.close()


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(1)


def _build_quietly(
    source: TextDataset,
    path: Path,
    filters: str,
    lower: bool,
    keep_unseen: bool,
    report: Connection,
) -> None:
    """The child's whole life: build, and never let an error out (the run reports it; a
    DiskError's message goes to the parent through ``report``).

    A parent that exits early (a config error) terminates its daemonic child: SIGTERM then
    unwinds the build like an error, so its staging file is removed, not left behind.
    """
    code = 0
    try:
        signal.signal(signal.SIGTERM, _stop)
        ensure(source, path, filters=filters, lower=lower, keep_unseen=keep_unseen)
    except DiskError as err:  # the run would meet the same disk: it takes this error as is
        report.send(str(err))
        code = 1
    except BaseException as err:
        log.debug("building the token cache in a child process failed: %r", err)
        code = 1
    finally:
        os._exit(code)  # no atexit handlers or buffers inherited from the parent


def start_building(data: Mapping[str, Any]) -> BaseProcess | None:
    """Start building the token cache of the ``data`` config in a child process, or None.

    Only where it is safe and useful: on Linux (where forking before torch is loaded is
    safe), in a process that is single-threaded and has not loaded torch, in the first (or
    only) rank of a machine, when the dataset is already on disk (no download from a child)
    and its cache entry is missing. Anything odd in the settings means no child: the run
    itself then checks them and says what is wrong.
    """
    if (
        sys.platform != "linux"
        or "torch" in sys.modules
        or threading.active_count() > 1
        or os.environ.get("LOCAL_RANK", "0") != "0"
    ):
        return None
    try:
        found = sources.find_dataset(
            root=data.get("root"),
            archive=data["archive"],
            urls=[],
            sha256=None,
            data_dir=data.get("data_dir"),
            download=False,
        )
        source = FolderDataset(found, follow_links=bool(data.get("follow_links", False)))
        # as given, not converted: the key must be the one the data module computes
        filters, lower = data.get("filters", KERAS_FILTERS), data.get("lower", True)
        keep_unseen = data.get("unseen_words", "drop") == "keep"
        path = cache_path(
            source,
            filters=filters,
            lower=lower,
            cache_dir=data.get("cache_dir"),
            keep_unseen=keep_unseen,
        )
    except Exception:
        return None
    if path.exists():
        return None
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(
        target=_build_quietly, args=(source, path, filters, lower, keep_unseen, writer), daemon=True
    )
    try:
        child.start()
    except (AssertionError, OSError):  # e.g. a daemonic worker, which may not have children
        reader.close()
        return None
    finally:
        writer.close()
    _CHILDREN[path] = (child, reader)
    log.info("building the token ids of %s in process %d, beside this one", source, child.pid)
    return child
