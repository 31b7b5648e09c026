"""A word tokeniser and sequence padding with the exact semantics of Keras's text utilities.

The seed experiments were written with ``keras.preprocessing.text.Tokenizer`` and
``keras.utils.pad_sequences``; reproducing their numbers needs the same vocabulary and the
same ids, so this mirrors them rule for rule (and replaces torchtext's ``basic_english``
tokeniser and ``vocab``, which the project no longer depends on):

* text is lower-cased, every character of ``filters`` becomes ``split``, and the text is
  split on ``split`` with empty pieces dropped;
* the vocabulary is ranked by count over the fitted texts, ties in order of first
  appearance; id 0 is reserved (padding), so ids run from 1;
* only ids below ``num_words`` are emitted, i.e. the ``num_words - 1`` most frequent words;
  other words are dropped (Keras's default, no out-of-vocabulary token).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


class KerasTokenizer:
    def __init__(
        self,
        num_words: int | None = None,
        filters: str = KERAS_FILTERS,
        lower: bool = True,
        split: str = " ",
    ) -> None:
        if num_words is not None and num_words < 1:
            raise ValueError(f"num_words must be at least 1 or None, got {num_words}")
        self.num_words = num_words
        self.filters = filters
        self.lower = lower
        self.split = split
        self._table = str.maketrans({c: split for c in filters})
        self.word_counts: Counter[str] = Counter()
        self.word_index: dict[str, int] = {}

    def words(self, text: str) -> list[str]:
        """Split one text into words (Keras ``text_to_word_sequence``)."""
        if self.lower:
            text = text.lower()
        return [w for w in text.translate(self._table).split(self.split) if w]

    def fit_on_texts(self, texts: Iterable[str]) -> KerasTokenizer:
        counts = self.word_counts
        for text in texts:
            counts.update(self.words(text))
        # Counter keeps first-appearance order and sorted() is stable, so ties keep it too.
        ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
        self.word_index = {word: i for i, (word, _) in enumerate(ranked, start=1)}
        return self

    @property
    def vocab_size(self) -> int:
        """Rows an embedding needs: ids 0 .. vocab_size - 1 can occur."""
        known = len(self.word_index) + 1
        return known if self.num_words is None else min(self.num_words, known)

    def vocabulary(self) -> list[str]:
        """Words by id, ``""`` at 0 (padding): the rows of an embedding matrix."""
        ranked = sorted(self.word_index, key=self.word_index.__getitem__)
        return ["", *ranked[: self.vocab_size - 1]]

    def texts_to_sequences(self, texts: Iterable[str]) -> list[list[int]]:
        limit = self.vocab_size
        kept = {w: i for w, i in self.word_index.items() if i < limit}
        return [[kept[w] for w in self.words(text) if w in kept] for text in texts]


def pad_sequences(
    sequences: Sequence[Sequence[int]],
    maxlen: int,
    padding: str = "pre",
    truncating: str = "pre",
    value: int = 0,
    dtype: type = np.int64,
) -> np.ndarray:
    """Keras ``pad_sequences`` for a fixed ``maxlen``: an ``(n, maxlen)`` array.

    ``truncating="pre"`` keeps the last ``maxlen`` ids, ``"post"`` the first; ``padding="pre"``
    puts the fill value before the ids, ``"post"`` after.
    """
    if maxlen < 1:
        raise ValueError(f"maxlen must be positive, got {maxlen}")
    for name, mode in (("padding", padding), ("truncating", truncating)):
        if mode not in ("pre", "post"):
            raise ValueError(f"{name} must be 'pre' or 'post', got {mode!r}")
    out = np.full((len(sequences), maxlen), value, dtype=dtype)
    for row, seq in enumerate(sequences):
        kept = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        if not len(kept):
            continue
        if padding == "pre":
            out[row, maxlen - len(kept) :] = kept
        else:
            out[row, : len(kept)] = kept
    return out
