"""Texts to classify, read as a command's input: one per line of files or stdin, or one per
``*.txt`` file of a folder. Bounded reads (``/dev/zero`` is refused at once, not read into
memory) and one-line errors naming the file and line. No torch here: ``embedclf.runtime``
reads its input with these too.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from embedclf.util.errors import DataError

MAX_TEXT_BYTES = 10 << 20  # a text (a line, or a --dir file) longer than this is refused


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
