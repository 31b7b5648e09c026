"""The token cache: every review's ids, built once per dataset and word rules, by one process.

:class:`TokenizedCorpus` is what it holds: the whole training vocabulary ranked as Keras ranks
it, with counts, and every review's ids over that vocabulary. A ``num_words`` limit is
applied when the data is set up, so sweeping it never tokenises again.

Building it (reading the archive, tokenising 50,000 reviews) is the slow part of a first run;
so is importing torch and Lightning. Nothing here imports either, so ``train.py`` can start
building the cache in a child process as soon as its config is composed
(:func:`start_building`) while it loads them itself: on two cores the two overlap. Every
builder holds the cache entry's file lock, so whichever process comes second (the run itself,
a parallel sweep job, a DDP rank) waits for the first and reads what it wrote; a child that
fails leaves nothing behind, and the run then builds the cache itself and reports the error.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np

from embedclf.data import sources
from embedclf.data.dataset import FolderDataset, TextDataset
from embedclf.text.featurizer import TextFeaturizer
from embedclf.text.ragged import Ragged
from embedclf.text.tokenizer import KERAS_FILTERS, fit_corpus
from embedclf.util.errors import DataError
from embedclf.util.fileio import atomic_directory, exclusive, file_crc32, write_synced
from embedclf.util.paths import cache_dir as resolve_cache_dir
from embedclf.util.paths import cache_key

log = logging.getLogger(__name__)


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
) -> Path:
    """Where the ids of ``source`` under these word rules live: a vocabulary fitted on its
    training texts, or (``encoder``) a checkpoint's own vocabulary."""
    settings = {
        "source": as_dataset(source).identity(),
        "filters": filters,
        "lower": lower,
        "vocab": encoder.digest() if encoder is not None else "fitted",
        "format": TOKENS_FORMAT,
    }
    return resolve_cache_dir(cache_dir) / "tokens" / cache_key(settings)


def ensure(
    source: Path | TextDataset,
    path: Path,
    *,
    filters: str,
    lower: bool,
    encoder: TextFeaturizer | None = None,
) -> None:
    """Build the cache entry ``path`` unless it exists, one process at a time."""
    if path.exists():
        return
    with exclusive(path, f"the token ids of {source}"):
        if not path.exists():  # another process may have built it while we waited
            build(source, path, filters=filters, lower=lower, encoder=encoder)


def build(
    source: Path | TextDataset,
    path: Path,
    *,
    filters: str,
    lower: bool,
    encoder: TextFeaturizer | None = None,
) -> None:
    """Read every review of ``source``, tokenise it and write ``path`` atomically."""
    started = time.perf_counter()
    log.info("reading %s", source)
    texts, _ = as_dataset(source).read()
    log.info("tokenising %s", ", ".join(f"{len(t)} {s}" for s, t in texts.texts.items()))
    if encoder is None:
        vocab, counts, ids = fit_corpus(texts.texts, filters, lower)
    else:  # a checkpoint's vocabulary: never refitted on other data
        if texts.classes != encoder.classes:
            raise DataError(
                f"{source} has classes {texts.classes} but the checkpoint was trained "
                f"on {encoder.classes}"
            )
        vocab, counts = encoder.vocab, np.zeros(len(encoder.vocab), np.int64)
        ids = {split: encoder.word_ids(t) for split, t in texts.texts.items()}
    TokenizedCorpus(texts.classes, vocab, counts, ids, texts.labels).save(path)
    log.info("tokenised %s in %.1f s -> %s", source, time.perf_counter() - started, path)


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(1)


def _build_quietly(source: TextDataset, path: Path, filters: str, lower: bool) -> None:
    """The child's whole life: build, and never let an error out (the run reports it).

    A parent that exits early (a config error) terminates its daemonic child: SIGTERM then
    unwinds the build like an error, so its staging file is removed, not left behind.
    """
    code = 0
    try:
        signal.signal(signal.SIGTERM, _stop)
        ensure(source, path, filters=filters, lower=lower)
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
        path = cache_path(source, filters=filters, lower=lower, cache_dir=data.get("cache_dir"))
    except Exception:
        return None
    if path.exists():
        return None
    child = multiprocessing.get_context("fork").Process(
        target=_build_quietly, args=(source, path, filters, lower), daemon=True
    )
    try:
        child.start()
    except (AssertionError, OSError):  # e.g. a daemonic worker, which may not have children
        return None
    log.info("building the token ids of %s in process %d, beside this one", source, child.pid)
    return child


TOKENS_FORMAT = 3  # bump when the layout of the token store changes
META_FILE = "meta.json"


def _array_files(splits: list[str]) -> list[str]:
    names = ["counts.npy"]
    for split in splits:
        names += [f"{split}.ids.npy", f"{split}.offsets.npy", f"{split}.labels.npy"]
    return names


@dataclass
class TokenizedCorpus:
    """What the token store holds: the training vocabulary, ranked, and ids of every review.

    ``vocab[i]`` is the word of id ``i`` (``""`` at 0, padding), ranked by count over the
    training texts with ties in order of first appearance (Keras's ranking); ``counts[i]`` is
    its count. Test words absent from the training texts are dropped, as Keras drops them.

    On disk it is a directory: per split, flat ``int32`` ids, ``int64`` offsets (n + 1) and
    labels, each an ``.npy`` file, with the counts beside them and the vocabulary, classes and
    each file's CRC-32 in ``meta.json``. :meth:`load` memory-maps the arrays: a split's ids
    are read from the page cache as batches need them, never held as a padded table.
    """

    classes: list[str]
    vocab: list[str]
    counts: np.ndarray
    ids: dict[str, Ragged]
    labels: dict[str, np.ndarray]

    def save(self, path: Path) -> None:
        """Write the directory ``path`` atomically: a killed writer leaves a temporary
        sibling (removed by the next writer), never a ``path`` that is not complete."""
        arrays = {"counts.npy": np.asarray(self.counts, np.int64)}
        for split, ragged in self.ids.items():
            arrays[f"{split}.ids.npy"] = np.asarray(ragged.flat, np.int32)
            arrays[f"{split}.offsets.npy"] = np.asarray(ragged.offsets, np.int64)
            arrays[f"{split}.labels.npy"] = np.asarray(self.labels[split], np.int64)
        with atomic_directory(path) as tmp:
            for name, array in arrays.items():
                write_synced(tmp / name, partial(np.save, arr=array, allow_pickle=False))
            meta = {
                "format": TOKENS_FORMAT,
                "classes": self.classes,
                "splits": list(self.ids),
                "rows": {split: len(labels) for split, labels in self.labels.items()},
                "crc32": {name: file_crc32(tmp / name) for name in arrays},
                "vocab": self.vocab,
            }
            write_synced(tmp / META_FILE, lambda file: file.write(json.dumps(meta).encode()))

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
