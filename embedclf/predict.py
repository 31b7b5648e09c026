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
batch at a time under ``torch.inference_mode``, without a Lightning Trainer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from tqdm import tqdm

from embedclf.data.readers.table import Columns, expand, format_of, iter_texts
from embedclf.util.cli import exit_on_user_error
from embedclf.util.errors import DataError
from embedclf.util.startup import quick_imports

if TYPE_CHECKING:
    import torch

DEFAULT_BATCH_SIZE = 1024
MAX_TEXT_BYTES = 10 << 20  # a text (a line, or a --dir file) longer than this is refused


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
        self.module = module_from_checkpoint(checkpoint, where)
        self.classes = list(self.featurizer.classes)

    def probabilities(self, texts: Sequence[str]) -> torch.Tensor:
        """``(len(texts), classes)`` class probabilities, float32 on the CPU."""
        import torch  # loaded already by __init__

        from embedclf.data.batches import Tokens  # lazy, as torch is: --help and errors stay fast

        features = self.featurizer.batch(self.featurizer.word_ids(texts))
        with torch.inference_mode():  # flat, padded only as far as the encoder needs
            tokens = Tokens.from_ragged(features, self.featurizer.padding)
            return self.module.probabilities(self.module(tokens))

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """``{"label": class, "probs": {class: p}}`` for each text, in order."""
        if not texts:
            return []
        probs = self.probabilities(texts)
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
    for batch in batched(texts, DEFAULT_BATCH_SIZE):
        out += predictor.predict(batch)
    return out


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


# -- reading the input -----------------------------------------------------------------------
def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{where} is not UTF-8 text ({err.reason} at byte {err.start}); "
            "convert it to UTF-8 (e.g. iconv -t UTF-8)"
        ) from None


def _read_bytes(path: Path, limit: int = MAX_TEXT_BYTES) -> bytes:
    """A whole file of at most ``limit`` bytes (a text of --dir)."""
    try:
        with open(path, "rb") as file:
            raw = file.read(limit + 1)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}; give a readable text file") from None
    if len(raw) > limit:
        raise DataError(f"{path} is over {limit:,} bytes; --max-bytes N to allow longer texts")
    return raw


def _raw_lines(stream: BinaryIO, name: str, limit: int) -> Iterator[bytes]:
    """The lines of ``stream``, read in bounded chunks; none may be over ``limit`` bytes
    (``/dev/zero`` is refused at once instead of filling the memory)."""
    pending = b""
    while chunk := stream.read(1 << 20):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in [*lines, pending]:
            if len(line) > limit:
                raise DataError(
                    f"{name} has a line over {limit:,} bytes; --max-bytes N to allow longer texts"
                )
        yield from lines
    if pending:
        yield pending


def line_texts(
    files: Sequence[str], limit: int = MAX_TEXT_BYTES
) -> Iterator[tuple[dict[str, Any], str]]:
    """Non-blank lines of each file in turn, or of stdin when ``files`` is empty."""
    sources: list[tuple[str, Path | None]] = [(f, Path(f)) for f in files] or [("stdin", None)]
    for name, path in sources:
        try:
            stream = sys.stdin.buffer if path is None else open(path, "rb")  # noqa: SIM115
        except OSError as err:
            raise DataError(
                f"cannot read {path}: {err.strerror}; give a readable text file"
            ) from None
        with stream if path is not None else contextlib.nullcontext(stream):
            # only "\n" ends a text: splitlines() would also split at U+0085, U+2028, ...
            for number, raw in enumerate(_raw_lines(stream, name, limit), 1):
                line = _decode(raw, f"{name} line {number}" if number > 1 else name)
                if number == 1:  # a leading byte-order mark is not part of the text
                    line = line.removeprefix("\ufeff")
                line = line.removesuffix("\r")
                if line.strip():
                    yield {}, line


def folder_texts(folder: str, limit: int = MAX_TEXT_BYTES) -> Iterator[tuple[dict[str, Any], str]]:
    """(path, text) of every ``*.txt`` file under ``folder``, in sorted path order."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"--dir {folder} is not a directory; give a folder holding *.txt files")
    paths = sorted(p for p in root.rglob("*.txt") if p.is_file())
    if not paths:
        raise DataError(f"--dir {folder} holds no *.txt file")
    for path in paths:
        yield {"path": str(path)}, _decode(_read_bytes(path, limit), str(path))


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
        for batch in batched(texts, args.batch_size):
            results = predictor.predict([text for _, text in batch])
            for (kept, _), result in zip(batch, results, strict=True):
                print(json.dumps({**kept, **result}))
            count += len(batch)
            progress.update(len(batch))
    if not count:
        where = args.table or ", ".join(args.files) or "stdin"
        raise DataError(f"no text to classify in {where}; give one text per line")


if __name__ == "__main__":
    main()
