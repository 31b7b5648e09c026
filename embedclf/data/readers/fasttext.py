"""fastText's supervised format: ``__label__pos some text`` a line (the prefix is
``data.label_prefix``). One label a line: this project trains single-label classifiers.

With an empty prefix the first word of each line is its label, as in TREC's
``DESC:manner How did serfdom develop ?``; ``label_delimiter`` then keeps the label's part
before it (``:``: TREC's six coarse classes).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path

from embedclf.util.errors import DataError


def read_fasttext(
    path: Path, prefix: str, encoding: str = "utf-8", delimiter: str | None = None
) -> tuple[list[str], list[str]]:
    """The texts and labels of one file of ``PREFIXlabel text`` lines."""
    texts: list[str] = []
    labels: list[str] = []
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as raw, io.TextIOWrapper(raw, encoding=encoding) as file:
            for lineno, line in enumerate(file, 1):
                words = line.split()
                if not words:
                    continue
                tags = [w for w in words if w.startswith(prefix)] if prefix else words[:1]
                if not words[0].startswith(prefix):
                    raise DataError(
                        f"{path}: line {lineno} does not start with a label ({prefix}NAME); "
                        "set data.label_prefix"
                    )
                if len(tags) > 1:
                    raise DataError(
                        f"{path}: line {lineno} has {len(tags)} labels ({', '.join(tags)}); "
                        "this project trains single-label classifiers: keep one"
                    )
                label, text = words[0][len(prefix) :], " ".join(words[1:])
                if delimiter:
                    label = label.partition(delimiter)[0]
                if not label or not text:
                    raise DataError(
                        f"{path}: line {lineno} has an empty {'label' if not label else 'text'}"
                    )
                labels.append(label)
                texts.append(text)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not {encoding} text ({err.reason}); set data.encoding") from None
    if not texts:
        raise DataError(f"{path} holds no labelled line; give {prefix}NAME text lines")
    return texts, labels


def fasttext_blocks(
    path: Path, prefix: str, encoding: str = "utf-8", delimiter: str | None = None
) -> Iterator[tuple[list[str], list[str]]]:
    """:func:`read_fasttext` as blocks (one: the file), as the token store's build reads."""
    yield read_fasttext(path, prefix, encoding, delimiter)
