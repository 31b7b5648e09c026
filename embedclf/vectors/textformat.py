"""The word-vector text formats: GloVe (``word v1 ... vD``) and word2vec/fastText (a ``N D``
header first), parsed in bounded chunks into :class:`Vectors`, and written back (export).

Text is decoded as strict UTF-8 (every published GloVe set is valid UTF-8); an invalid byte
sequence is reported with its line number rather than silently replaced, because a wrongly
decoded word would quietly never match the vocabulary. Non-finite values are refused with the
file and word named.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedclf.util.errors import VectorsError
from embedclf.util.fileio import atomic_write

log = logging.getLogger(__name__)


# Rows parsed per numpy call: bounds the memory held in unparsed strings (about 32 MB).
_FLOATS_PER_CHUNK = 4_000_000


# A decimal number such as "0.418" or "-1.5e-03": the shape every vector value has in text
# files, and which no word of the 840B set that contains a space ends with.
_DECIMAL = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(eq=False)
class Vectors:
    """Word vectors: row ``i`` of ``matrix`` is the vector of ``words[i]``.

    ``matrix`` is float32 of shape (n, dim) and may be a read-only ``np.memmap``.
    """

    words: list[str]
    matrix: np.ndarray
    _index: dict[str, int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.words):
            raise VectorsError(
                f"{len(self.words)} words do not match a vector matrix of shape {self.matrix.shape}"
            )

    def __repr__(self) -> str:
        return f"Vectors(count={len(self.words)}, dim={self.dim})"

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def lookup(self) -> dict[str, int]:
        """Word -> row, built on first use and kept; a repeated word maps to its first row."""
        if self._index is None:
            n = len(self.words)
            # Filled from the end so that the first (most frequent) occurrence wins.
            self._index = dict(zip(reversed(self.words), range(n - 1, -1, -1), strict=True))
        return self._index


def _header(fields: list[str]) -> tuple[int, int] | None:
    """(count, dim) if ``fields`` is a word2vec/fastText header of exactly two integers."""
    if len(fields) != 2:
        return None
    try:
        return int(fields[0]), int(fields[1])
    except ValueError:
        return None


def _trailing_numbers(fields: list[str]) -> int:
    """The dimension a first line implies: how many of its last fields are numbers.

    Counting from the right lets the word contain spaces (840B); a line made only of numbers
    has a numeric word, so its first field is still the word.
    """
    count = 0
    for text in reversed(fields):
        try:
            float(text)
        except ValueError:
            break
        count += 1
    return min(count, len(fields) - 1)


def _parse_rows(rows: list[str], linenos: list[int], source: str) -> np.ndarray:
    """Parse rows of space-separated numbers, as many in each, into a float32 array."""
    try:
        return np.loadtxt(rows, dtype=np.float32, delimiter=" ", comments=None, ndmin=2)
    except ValueError:
        pass
    # Slow path, only to say which line is wrong.
    for row, lineno in zip(rows, linenos, strict=True):
        try:
            np.array(row.split(" "), dtype=np.float32)
        except ValueError:
            raise VectorsError(
                f"{source}: line {lineno}: the vector has a value that is not a number: "
                f"{row[:60]!r}"
            ) from None
    raise VectorsError(f"{source}: lines {linenos[0]}-{linenos[-1]} could not be parsed")


def _word_end(text: str, dim: int, where: str) -> int:
    """Where the word of ``word v1 ... vD`` ends (a word may hold spaces: split from the right)."""
    spaces = text.count(" ")
    if spaces == dim:
        return text.index(" ")
    if spaces < dim:
        raise VectorsError(f"{where}: expected a word and {dim} numbers, got {spaces + 1} fields")
    cut = len(text.rsplit(" ", dim)[0])
    if _DECIMAL.fullmatch(text[:cut].rsplit(" ", 1)[1]):
        raise VectorsError(f"{where}: more than {dim} numbers after the word")
    return cut


def _count_mismatch(source: str, expected: int, found: int, trust_header: bool) -> None:
    """A file cut short at a line boundary parses cleanly: only its header can tell."""
    if trust_header:
        raise VectorsError(
            f"{source}: its header announces {expected} vectors but it holds {found}: it may be "
            "cut short, so download it again (or set vectors.trust_header=false to use the rows "
            "it has)"
        )
    log.warning("%s: header announces %d vectors, found %d", source, expected, found)


def parse_text_vectors(
    lines: Iterable[str], *, source: str = "<text>", trust_header: bool = True
) -> Vectors:
    """Parse word vectors in text format: ``word v1 ... vd`` a line.

    Reads every published GloVe set (6B, 42B, 840B, Twitter) and word2vec/fastText ``.vec``
    text, whose first line is a header ``count dim`` (used for ``dim``, then skipped). Each line
    is split from the right, so a word may contain spaces (840B has a few, such as
    ``at name@domain.com``). ``dim`` comes from the first line. Blank lines are skipped;
    trailing whitespace (fastText writes a space before the newline) is ignored.
    """
    words: list[str] = []
    chunks: list[np.ndarray] = []
    rows: list[str] = []
    linenos: list[int] = []
    dim = 0
    chunk_rows = 0
    expected_count: int | None = None
    lineno = 0
    try:
        for lineno, line in enumerate(lines, 1):
            text = line.rstrip()
            if not text:
                continue
            if not dim:
                fields = text.split(" ")
                header = _header(fields)
                if header is not None:
                    expected_count, dim = header
                    if dim < 1:
                        raise VectorsError(f"{source}: line {lineno}: header gives dim {dim}")
                    chunk_rows = max(1, _FLOATS_PER_CHUNK // dim)
                    continue
                dim = _trailing_numbers(fields)
                if dim < 1:
                    raise VectorsError(
                        f"{source}: line {lineno}: expected a word followed by numbers, "
                        f"got {text[:60]!r}"
                    )
                chunk_rows = max(1, _FLOATS_PER_CHUNK // dim)
            cut = _word_end(text, dim, f"{source}: line {lineno}")
            words.append(text[:cut])
            rows.append(text[cut + 1 :])
            linenos.append(lineno)
            if len(rows) == chunk_rows:
                chunks.append(_parse_rows(rows, linenos, source))
                rows, linenos = [], []
    except UnicodeDecodeError as err:
        raise VectorsError(
            f"{source}: line {lineno + 1} is not valid UTF-8 ({err.reason} at byte {err.start})"
        ) from None
    if rows:
        chunks.append(_parse_rows(rows, linenos, source))
    if not words:
        raise VectorsError(f"{source}: no word vectors found")
    if expected_count is not None and expected_count != len(words):
        _count_mismatch(source, expected_count, len(words), trust_header)
    matrix = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    check_finite(words, matrix, source)
    return Vectors(words=words, matrix=matrix)


def check_finite(words: Sequence[str], matrix: np.ndarray, source: str) -> None:
    """Refuse vectors holding NaN or infinity: training on them gives NaN losses."""
    bad_rows = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if len(bad_rows):
        row = int(bad_rows[0])
        raise VectorsError(
            f"{source}: the vector of {words[row]!r} (row {row + 1}) is not finite "
            f"({len(bad_rows)} such rows); fix or remove those rows"
        )


_UNWRITABLE = (" ", "\n", "\r")  # a word with these would not read back as one word


def write_word2vec(path: Path, words: Sequence[str], matrix: np.ndarray) -> int:
    """Write vectors in word2vec text format (``N D``, then ``word v1 ... vD``), atomically.

    Values are written with 9 significant digits, which read back as the same float32.
    Words that could not be read back as one word (holding a space or a line break) and the
    empty padding word are left out; returns how many words were written.
    """

    keep = [i for i, word in enumerate(words) if word and not any(c in word for c in _UNWRITABLE)]
    rows = np.asarray(matrix, dtype=np.float32)
    with atomic_write(path, "w") as file:
        file.write(f"{len(keep)} {rows.shape[1]}\n")
        for i in keep:
            file.write(words[i] + " " + " ".join(f"{x:.9g}" for x in rows[i].tolist()) + "\n")
    return len(keep)
