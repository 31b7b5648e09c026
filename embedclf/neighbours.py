"""The nearest words of a checkpoint's embedding: ``python -m embedclf.neighbours CKPT WORD ...``.

For each word, the ``k`` vocabulary words whose embedding rows are the most similar by cosine
similarity, printed as ``word: n1 (0.83), n2 (0.80), ...``. Only word rows take part: the
padding row (id 0) and the hashed n-gram rows (``data.ngrams > 1``) are not words. A query is
tokenised as the training text was (lower-cased when the tokeniser lowered), so ``Good`` finds
``good``; a word outside the vocabulary gets a line saying so, and the command fails only when
no word was found.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from embedclf.models.checkpoint import word_rows
from embedclf.util.cli import exit_on_user_error
from embedclf.util.errors import DataError


def nearest(
    words: Sequence[str], matrix: np.ndarray, query: str, k: int
) -> list[tuple[str, float]] | None:
    """The ``k`` words most similar to ``query`` (itself excluded), or None if unknown."""
    index = {word: i for i, word in enumerate(words)}
    row = index.get(query)
    if row is None:
        return None
    norms = np.linalg.norm(matrix, axis=1)
    # a zero row (a word pretrained vectors did not have, frozen) is similar to nothing
    unit = matrix / np.where(norms > 0, norms, 1.0)[:, None]
    similarity = unit @ unit[row]
    similarity[row] = -np.inf
    k = min(k, len(words) - 1)
    top = np.argpartition(-similarity, k - 1)[:k] if k > 0 else np.array([], dtype=int)
    top = top[np.lexsort((top, -similarity[top]))]  # most similar first, ties by rank
    return [(words[i], float(similarity[i])) for i in top]


def _query_form(word: str, lower: bool) -> str:
    return word.lower() if lower else word


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m embedclf.neighbours",
        description="Nearest vocabulary words by cosine similarity of a checkpoint's embedding.",
    )
    parser.add_argument("checkpoint", help="a .ckpt file written by train.py")
    parser.add_argument("words", nargs="+", metavar="WORD")
    parser.add_argument("-k", type=int, default=10, help="neighbours per word (default 10)")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error(f"-k {args.k} must be 1 or more")

    words, matrix, encoder = word_rows(args.checkpoint)
    known = 0
    for word in args.words:
        found = nearest(words, matrix, _query_form(word, encoder.lower), args.k)
        if found is None:
            print(f"{word}: not in the vocabulary ({len(words)} words)")
            continue
        known += 1
        print(f"{word}: " + ", ".join(f"{w} ({s:.2f})" for w, s in found))
    if not known:
        raise DataError(
            f"none of {', '.join(args.words)} is in the vocabulary of {args.checkpoint}"
        )


if __name__ == "__main__":
    main()
