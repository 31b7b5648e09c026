"""Features made per batch from a word window equal those of whole rows (featurizer.batch)."""

from __future__ import annotations

import numpy as np
import pytest

from embedclf.text.featurizer import TextFeaturizer
from embedclf.text.ngrams import hashed_ngrams
from embedclf.text.ragged import Ragged, concatenate


def random_rows(rng: np.random.Generator, n: int, words: int, longest: int) -> Ragged:
    lengths = rng.integers(0, longest, size=n)
    flat = rng.integers(1, words, size=int(lengths.sum())).astype(np.int32)
    return Ragged(flat, np.concatenate([[0], np.cumsum(lengths)]))


def featurizer(words: int, **settings) -> TextFeaturizer:
    vocab = ["", *(f"w{i}" for i in range(1, words))]
    return TextFeaturizer(vocab=vocab, classes=["a", "b"], filters="", lower=True, **settings)


@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("ngrams", [1, 2, 3])
def test_batch_features_equal_the_whole_rows_features_cut_to_maxlen(truncating, ngrams):
    rng = np.random.default_rng(ngrams)
    rows = random_rows(rng, 300, 60, 40)
    f = featurizer(30, maxlen=11, ngrams=ngrams, buckets=97, truncating=truncating)
    # what training padded before: every word of the vocabulary, all n-grams, then cut
    whole = f.pad(f.features(rows.keep(rows.flat < 30)))
    np.testing.assert_array_equal(f.pad(f.batch(rows)), whole)
    # and a row at a time, from a window of words, as batches make them
    each = [f.batch(rows.rows(np.array([i]))) for i in range(len(rows))]
    np.testing.assert_array_equal(f.pad(concatenate(each)), whole)
    cut = f.batch(rows)
    assert cut.lengths().max() <= 11 and not np.any(cut.flat == 0)


def test_the_window_keeps_exactly_the_words_features_come_from():
    f = featurizer(50, maxlen=4, ngrams=2, buckets=10)
    rows = Ragged(np.arange(1, 11, dtype=np.int32), np.array([0, 10]))
    assert f.word_window == 5
    # pre: the last 5 words; the first of them only starts the first kept bigram
    assert f.window(rows).flat.tolist() == [6, 7, 8, 9, 10]
    assert featurizer(50, maxlen=4).window(rows).flat.tolist() == [7, 8, 9, 10]


def test_truncate_and_rows_of_ragged():
    rows = Ragged(np.array([1, 2, 3, 4, 5, 6], np.int32), np.array([0, 4, 4, 6]))
    assert [r.tolist() for r in rows.truncate(2, "pre").sequences()] == [[3, 4], [], [5, 6]]
    assert [r.tolist() for r in rows.truncate(2, "post").sequences()] == [[1, 2], [], [5, 6]]
    assert [r.tolist() for r in rows.rows(np.array([2, 0])).sequences()] == [[5, 6], [1, 2, 3, 4]]
    assert [r.tolist() for r in rows.slice(1, 3).sequences()] == [[], [5, 6]]


def test_one_word_of_features_needs_the_word_before_it():
    """maxlen=1 with bigrams: the last feature is the bigram ending at the last word, which
    only the word before it can make (the window keeps ngrams - 1 more words)."""
    f = featurizer(50, maxlen=1, ngrams=2, buckets=10)
    rows = Ragged(np.array([3, 4, 5], np.int32), np.array([0, 3]))
    whole = f.features(rows).truncate(1, "pre")
    assert f.batch(rows).flat.tolist() == whole.flat.tolist() and whole.flat[0] >= 50


def fasttext_ngrams(row: list[int], ngrams: int, buckets: int, offset: int) -> list[int]:
    """fastText's word n-gram hashing (``Dictionary::addWordNgrams``), written out plainly:
    ``h = h * 116049371 + id`` over the n-gram's ids (mod 2**64), then ``offset + h % buckets``;
    each word followed by the n-grams that end at it, shortest first."""
    out = []
    for p, word in enumerate(row):
        out.append(word)
        for order in range(2, ngrams + 1):
            if p - order + 1 < 0:
                break
            h = 0
            for i in row[p - order + 1 : p + 1]:
                h = (h * 116049371 + i) % 2**64
            out.append(offset + h % buckets)
    return out


@pytest.mark.parametrize("buckets", [2**21, 1_000_003])  # a mask, and a division
@pytest.mark.parametrize("ngrams", [2, 3, 4])
def test_hashed_ngrams_are_fasttexts(ngrams, buckets):
    rng = np.random.default_rng(ngrams)
    rows = random_rows(rng, 40, 2**31 - 1, 9)  # ids large enough that the hash wraps 2**64
    rows = concatenate([rows, Ragged(np.zeros(0, np.int32), np.zeros(1, np.int64))])
    f = featurizer(3, maxlen=100, ngrams=ngrams, buckets=buckets)
    got = f.features(rows)
    assert len(got) == len(rows)
    for i, row in enumerate(rows.sequences()):
        assert got.sequences()[i].tolist() == fasttext_ngrams(row.tolist(), ngrams, buckets, 3)


def test_rows_and_truncation_copy_the_right_spans():
    rows = Ragged(np.arange(10, dtype=np.int32), np.array([0, 3, 3, 7, 10]))
    picked = rows.rows(np.array([3, 0, 1, 1]))
    assert [r.tolist() for r in picked.sequences()] == [[7, 8, 9], [0, 1, 2], [], []]
    assert picked.rows(np.array([0])).flat.tolist() == [7, 8, 9]
    assert picked.flat.dtype == np.int32
    assert [r.tolist() for r in rows.truncate(2, "pre").sequences()] == [[1, 2], [], [5, 6], [8, 9]]
    assert [r.tolist() for r in rows.truncate(2, "post").sequences()] == [
        [0, 1],
        [],
        [3, 4],
        [7, 8],
    ]


@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize(("ngrams", "buckets"), [(2, 64), (3, 97), (1, 64), (2, 0)])
def test_rows_cut_as_they_are_hashed_equal_rows_hashed_then_cut(ngrams, buckets, truncating):
    rng = np.random.default_rng(ngrams + buckets)
    rows = random_rows(rng, 200, 1000, 30)  # some empty, some one word long
    whole = hashed_ngrams(rows, ngrams, buckets, 1000)
    for maxlen in (1, 2, 3, 7, 29, 100):
        cut = hashed_ngrams(rows, ngrams, buckets, 1000, maxlen, truncating)
        expected = whole.truncate(maxlen, truncating)
        assert cut.offsets.tolist() == expected.offsets.tolist(), maxlen
        assert cut.flat.tolist() == expected.flat.tolist(), maxlen
