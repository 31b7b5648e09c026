"""How much of a vocabulary a set of word vectors covers, and the embedding matrix built from
them: rows of the words that have a vector, zero rows (reported, with their counts) for the
rest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from embedclf.util.errors import VectorsError
from embedclf.vectors.textformat import Vectors


def _percent(part: int, whole: int) -> str:
    """``part/whole`` as a percentage that never rounds a shortfall up to 100.0%."""
    if whole == 0:
        return "0.0%"
    share = part / whole
    if part < whole and share > 0.9995:
        return ">99.9%"
    return f"{share:.1%}"


@dataclass
class Coverage:
    """How much of a vocabulary (padding row excluded) pre-trained vectors cover."""

    vocab_size: int
    vocab_found: int
    tokens_total: int
    tokens_found: int
    top_missing: list[tuple[str, int]]

    @property
    def vocab_share(self) -> float:
        return self.vocab_found / self.vocab_size if self.vocab_size else 0.0

    @property
    def token_share(self) -> float:
        return self.tokens_found / self.tokens_total if self.tokens_total else 0.0

    def summary(self, name: str = "vectors", shown: int = 10) -> str:
        """One line for a log, naming the ``shown`` most frequent missing words."""
        line = (
            f"{name}: {self.vocab_found:,} of {self.vocab_size:,} vocabulary words found "
            f"({_percent(self.vocab_found, self.vocab_size)}) and "
            f"{_percent(self.tokens_found, self.tokens_total)} of training tokens"
        )
        if not self.top_missing:
            return line + "; none missing"
        missing = ", ".join(word for word, _ in self.top_missing[:shown])
        more = ", ..." if self.vocab_size - self.vocab_found > shown else ""
        return f"{line}; most frequent missing: {missing}{more}"


def build_embedding_matrix(
    vocab: Sequence[str],
    counts: Sequence[int],
    vectors: Vectors,
    init: np.ndarray,
    *,
    top_missing: int = 20,
) -> tuple[np.ndarray, Coverage]:
    """An embedding matrix for ``vocab``: a copy of ``init`` with known words' rows replaced.

    ``vocab[i]`` is row ``i``'s word and ``counts[i]`` its count in the training texts; row 0
    is padding and left as it is in ``init``. A word is looked up as it is, then lower-cased
    (so a lower-cased vocabulary and a cased set, or the reverse, still match).
    """
    if len(counts) != len(vocab):
        raise VectorsError(f"{len(counts)} counts given for a vocabulary of {len(vocab)} words")
    expected = (len(vocab), vectors.dim)
    if np.shape(init) != expected:
        raise VectorsError(f"init has shape {np.shape(init)}, expected {expected}")
    matrix = np.array(init, dtype=np.float32, order="C", copy=True)
    index = vectors.lookup()
    rows: list[int] = []
    sources: list[int] = []
    missing: list[tuple[str, int]] = []
    tokens_found = 0
    for row in range(1, len(vocab)):
        word = vocab[row]
        found = index.get(word)
        if found is None:
            lower = word.lower()
            if lower != word:
                found = index.get(lower)
        if found is None:
            missing.append((word, int(counts[row])))
        else:
            rows.append(row)
            sources.append(found)
            tokens_found += int(counts[row])
    if rows:
        matrix[rows] = vectors.matrix[sources]
    missing.sort(key=lambda item: -item[1])  # stable: ties stay in vocabulary order
    coverage = Coverage(
        vocab_size=max(len(vocab) - 1, 0),
        vocab_found=len(rows),
        tokens_total=sum(int(count) for count in counts[1:]),
        tokens_found=tokens_found,
        top_missing=missing[:top_missing],
    )
    return matrix, coverage
