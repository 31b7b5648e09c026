"""The token cache: every review's ids, built once per dataset and word rules, by one process.

Building it (reading the archive, tokenising 50,000 reviews) is the slow part of a first run;
so is importing torch and Lightning. Nothing here imports either, so ``train.py`` can start
building the cache in a child process as soon as its config is composed
(:func:`start_building`) while it loads them itself: on two cores the two overlap. Every
builder holds the cache entry's file lock, so whichever process comes second (the run itself,
a parallel sweep job, a DDP rank) waits for the first and reads what it wrote; a child that
fails leaves nothing behind, and the run then builds the cache itself and reports the error.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np

from embedclf import sources
from embedclf.corpus import TOKENS_FORMAT, TokenizedCorpus, read_dataset
from embedclf.encoder import TextEncoder
from embedclf.errors import DataError
from embedclf.fileio import exclusive
from embedclf.paths import cache_dir as resolve_cache_dir
from embedclf.paths import cache_key, file_identity
from embedclf.tokenizer import KERAS_FILTERS, fit_corpus

log = logging.getLogger(__name__)


def source_identity(source: Path) -> object:
    """Cheap identity of a dataset archive (path, size, mtime) or folder (its listing)."""
    if source.is_file():
        return file_identity(source)
    listing = []
    for split in ("train", "test"):
        for entry in sorted((source / split).glob("*/*.txt")):
            stat = entry.stat() if entry.exists() else None
            listing.append(
                (str(entry.relative_to(source)), stat and stat.st_size, stat and stat.st_mtime_ns)
            )
    return {"path": str(source.resolve()), "files": cache_key(listing, 32)}


def cache_path(
    source: Path,
    *,
    filters: str,
    lower: bool,
    cache_dir: str | None,
    encoder: TextEncoder | None = None,
) -> Path:
    """Where the ids of ``source`` under these word rules live: a vocabulary fitted on its
    training texts, or (``encoder``) a checkpoint's own vocabulary."""
    settings = {
        "source": source_identity(source),
        "filters": filters,
        "lower": lower,
        "vocab": encoder.digest() if encoder is not None else "fitted",
        "format": TOKENS_FORMAT,
    }
    return resolve_cache_dir(cache_dir) / "tokens" / f"{cache_key(settings)}.npz"


def ensure(
    source: Path, path: Path, *, filters: str, lower: bool, encoder: TextEncoder | None = None
) -> None:
    """Build the cache entry ``path`` unless it exists, one process at a time."""
    if path.exists():
        return
    with exclusive(path, f"the token ids of {source}"):
        if not path.exists():  # another process may have built it while we waited
            build(source, path, filters=filters, lower=lower, encoder=encoder)


def build(
    source: Path, path: Path, *, filters: str, lower: bool, encoder: TextEncoder | None = None
) -> None:
    """Read every review of ``source``, tokenise it and write ``path`` atomically."""
    started = time.perf_counter()
    log.info("reading %s", source)
    texts, _ = read_dataset(source)
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


def _build_quietly(source: Path, path: Path, filters: str, lower: bool) -> None:
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
        source = sources.find_dataset(
            root=data.get("root"),
            archive=data["archive"],
            urls=[],
            sha256=None,
            data_dir=data.get("data_dir"),
            download=False,
        )
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
