"""Classify raw texts with a checkpoint: ``python -m embedclf.predict CHECKPOINT [FILE ...]``.

Texts are read one per line from each FILE, or from stdin when none is given (blank lines carry
no text and are skipped); ``--dir DIR`` classifies every ``*.txt`` under DIR instead, one text
per file. One JSON object is printed per text, in input order::

    {"label": "pos", "probs": {"neg": 0.12, "pos": 0.88}}

(with ``"path"`` first under ``--dir``). ``--table FILE --column text --keep id,...``
classifies the rows of a CSV, TSV, JSON lines or Parquet file and copies the kept columns
into each line. The checkpoint alone is enough: its text encoder
holds the vocabulary, tokeniser, padding and classes, so no dataset, token cache or ``conf/``
is read, and the text is preprocessed exactly as in training. Texts are encoded and scored a
batch at a time under ``torch.inference_mode``, without a Lightning Trainer, by one thread per
core a few batches ahead (output stays in input order).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from embedclf.data.readers.table import Columns, expand, format_of, iter_texts
from embedclf.text.inputs import MAX_TEXT_BYTES, folder_texts, line_texts
from embedclf.util.cli import exit_on_user_error
from embedclf.util.cores import usable_cores
from embedclf.util.errors import DataError
from embedclf.util.startup import quick_imports

if TYPE_CHECKING:
    import torch

DEFAULT_BATCH_SIZE = 1024


class Predictor:
    """A checkpoint's featurizer and trained module, ready to classify raw texts."""

    def __init__(self, checkpoint_path: str | Path, setting: str = "checkpoint") -> None:
        # lazy: torch loads with the first model, so --help and bad arguments answer at once
        from embedclf.models.checkpoint import (
            featurizer_of,
            load_checkpoint,
            module_from_checkpoint,
        )

        checkpoint = load_checkpoint(checkpoint_path, setting)
        where = f"{setting}={checkpoint_path}"
        self.featurizer = featurizer_of(checkpoint, where)
        self.lookup = self.featurizer.word_lookup  # its dict and ids built now, not by a batch
        self.module = module_from_checkpoint(checkpoint, where)
        self.classes = list(self.featurizer.classes)
        # one text scored now: numba's compiled loops (n-grams, the bag) load from their cache on
        # first use, a quarter of a second that belongs to loading, not to the first batch
        self.probabilities(["a b"])

    def probabilities(self, texts: Sequence[str]) -> torch.Tensor:
        """``(len(texts), classes)`` class probabilities, float32 on the CPU."""
        import torch  # loaded already by __init__

        from embedclf.data.batches import Tokens  # lazy, as torch is: --help and errors stay fast

        features = self.featurizer.batch(self.featurizer.word_ids(texts))
        with torch.inference_mode():  # flat, padded only as far as the encoder needs
            tokens = Tokens.from_ragged(features, self.featurizer.padding)
            return self.module.probabilities(self.module(tokens))

    def probabilities_of(
        self, batches: Iterable[Sequence[str]], workers: int | None = None
    ) -> Iterator[torch.Tensor]:
        """:meth:`probabilities` of each batch, in order, by ``workers`` threads (default: one
        per core) a few batches ahead of the caller. Splitting words (Arrow, numpy) and the
        forward pass (torch) release the GIL, so batches overlap: on 2 cores, IMDB's test
        reviews take 0.7 s where one batch at a time takes 1.2 s. Where reading the input
        fails (a line over the size limit), the batches read before it are given first."""
        workers = workers or usable_cores()
        if workers < 2:
            yield from map(self.probabilities, batches)
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="predict") as pool:
            pending: deque[Future[torch.Tensor]] = deque()
            batches = iter(batches)
            while True:
                try:
                    batch = next(batches, None)
                except Exception:  # bad input: what was read before it is given first
                    while pending:
                        yield pending.popleft().result()
                    raise
                if batch is None:
                    break
                pending.append(pool.submit(self.probabilities, batch))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """``{"label": class, "probs": {class: p}}`` for each text, in order."""
        if not texts:
            return []
        return self.results(self.probabilities(texts))

    def results(self, probs: torch.Tensor) -> list[dict[str, Any]]:
        """:meth:`predict`'s dicts for rows of class probabilities."""
        best = probs.argmax(-1).tolist()  # ties go to the first class, as accuracy scores them
        return [
            {
                "label": self.classes[index],
                "probs": dict(zip(self.classes, row, strict=True)),
            }
            for index, row in zip(best, probs.tolist(), strict=True)
        ]


def predict_texts(checkpoint_path: str | Path, texts: Sequence[str]) -> list[dict[str, Any]]:
    """Classify ``texts`` with the checkpoint: a dict per text (see :meth:`Predictor.predict`)."""
    predictor = Predictor(checkpoint_path)
    out: list[dict[str, Any]] = []
    for probs in predictor.probabilities_of(batched(texts, DEFAULT_BATCH_SIZE)):
        out += predictor.results(probs)
    return out


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


# -- reading the input -----------------------------------------------------------------------
def table_texts(
    path: str, column: str, keep: Sequence[str], fmt: str | None = None
) -> Iterator[tuple[dict[str, Any], str]]:
    """(kept columns, text) of every row of a CSV, TSV, JSON lines or Parquet table."""
    files = expand(path, "--table")
    columns = Columns(
        text=(column,), label=None, keep=tuple(keep), hint="name them with --column and --keep"
    )
    for file in files:
        for block, texts, _ in iter_texts(file, format_of(file, fmt), columns):
            kept = [block.column(name).to_pylist() for name in keep]
            for index, text in enumerate(texts):
                yield {name: values[index] for name, values in zip(keep, kept, strict=True)}, text


# -- the command -----------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m embedclf.predict",
        description="Classify texts with a trained embedclf checkpoint; one JSON line per text.",
    )
    parser.add_argument("checkpoint", help="a .ckpt file written by train.py")
    parser.add_argument(
        "files", nargs="*", metavar="FILE", help="texts, one per line (default: stdin)"
    )
    parser.add_argument(
        "--dir", metavar="DIR", help="classify every *.txt under DIR (one text per file)"
    )
    parser.add_argument(
        "--table",
        metavar="FILE",
        help="classify the rows of a CSV, TSV, JSON lines or Parquet file (or glob)",
    )
    parser.add_argument(
        "--column", default="text", help="--table: the column holding the texts (default text)"
    )
    parser.add_argument(
        "--keep",
        default="",
        metavar="COLS",
        help="--table: columns copied into each output line, comma-separated (e.g. id)",
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=MAX_TEXT_BYTES,
        metavar="N",
        help=f"refuse a text (a line, or a --dir file) over N bytes (default {MAX_TEXT_BYTES:,})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"texts scored at a time (default {DEFAULT_BATCH_SIZE})",
    )
    args = parser.parse_args(argv)
    if sum(bool(x) for x in (args.files, args.dir is not None, args.table)) > 1:
        parser.error("give FILEs, --dir DIR or --table FILE, one of them")
    if args.batch_size < 1:
        parser.error(f"--batch-size {args.batch_size} must be 1 or more")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    try:
        run(argv)
    except BrokenPipeError:  # the reader stopped early (| head): as for any Unix filter
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        raise SystemExit(1) from None


@exit_on_user_error
def run(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with quick_imports():  # torch and Lightning, with the collector paused, before any text
        import embedclf.models.checkpoint  # noqa: F401
    predictor = Predictor(args.checkpoint)
    if args.table:
        keep = [name for name in args.keep.split(",") if name]
        texts = table_texts(args.table, args.column, keep)
    elif args.dir is not None:
        texts = folder_texts(args.dir, args.max_bytes)
    else:
        texts = line_texts(args.files, args.max_bytes)
    count = 0
    # a progress bar on stderr when it is a terminal: large inputs take a while
    with tqdm(desc="classifying", unit=" texts", disable=None, file=sys.stderr) as progress:
        batches = deque[list[tuple[dict[str, Any], str]]]()  # those being scored, in order

        def texts_of_batches() -> Iterator[list[str]]:
            for batch in batched(texts, args.batch_size):
                batches.append(batch)
                yield [text for _, text in batch]

        for probs in predictor.probabilities_of(texts_of_batches()):
            batch = batches.popleft()
            for (kept, _), result in zip(batch, predictor.results(probs), strict=True):
                print(json.dumps({**kept, **result}))
            count += len(batch)
            progress.update(len(batch))
    if not count:
        where = args.table or ", ".join(args.files) or "stdin"
        raise DataError(f"no text to classify in {where}; give one text per line")


if __name__ == "__main__":
    main()
