"""Keras Tokenizer / pad_sequences parity on hand-written cases."""

import random
from collections import Counter

import numpy as np
import pytest

from embedclf.text import tokenizer
from embedclf.text.tokenizer import (
    KERAS_FILTERS,
    KerasTokenizer,
    fit_corpus,
    pad_sequences,
    split_corpus,
)


def test_words_lowercase_filters_and_empty_pieces():
    tok = KerasTokenizer()
    text = "Hello, WORLD!! It's  a <br /><br />movie...\tso-so\n(10/10)"
    # Keras keeps apostrophes (not in its filters) and drops every filter character
    assert tok.words(text) == [
        "hello",
        "world",
        "it's",
        "a",
        "br",
        "br",
        "movie",
        "so",
        "so",
        "10",
        "10",
    ]
    assert "'" not in KERAS_FILTERS and "<" in KERAS_FILTERS


def test_word_index_ranks_by_count_with_ties_in_first_appearance_order():
    tok = KerasTokenizer().fit_on_texts(["b a c", "c d b", "e c"])
    # counts: c=3, b=2, a=1, d=1, e=1 -> ties a, d, e in order of first appearance
    assert tok.word_index == {"c": 1, "b": 2, "a": 3, "d": 4, "e": 5}
    assert tok.vocabulary() == ["", "c", "b", "a", "d", "e"]


def keras_reference(train: list[str], others: dict[str, list[str]]):
    """Keras's algorithm as written: count with a Counter, sort stably by count, look up."""
    tok = KerasTokenizer()
    counts = Counter(word for text in train for word in tok.words(text))
    ranked = [w for w, _ in sorted(counts.items(), key=lambda item: item[1], reverse=True)]
    index = {w: i for i, w in enumerate(ranked, start=1)}
    ids = {
        split: [[index[w] for w in tok.words(t) if w in index] for t in texts]
        for split, texts in {"train": train, **others}.items()
    }
    return ["", *ranked], [0, *(counts[w] for w in ranked)], ids


@pytest.mark.parametrize("chunk_bytes", [None, 97])
def test_fit_corpus_matches_keras_counting_ranking_and_lookup(chunk_bytes, monkeypatch):
    """One pass over the training texts gives Keras's vocabulary, counts and ids: many ties,
    words only the test texts have, empty texts, and more texts than one chunk (of texts, and
    of bytes: words first seen in a later chunk rank after those of earlier ones)."""
    if chunk_bytes:
        monkeypatch.setattr(tokenizer, "_CHUNK_BYTES", chunk_bytes)
    rng = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    texts = {
        split: [
            " ".join(
                rng.choice(words[: 250 if split == "train" else 300]).upper() + ","
                for _ in range(rng.randint(0, 12))
            )
            for _ in range(5000)
        ]
        for split in ("train", "test")
    }
    vocab, counts, ids = fit_corpus(texts)
    want_vocab, want_counts, want_ids = keras_reference(texts["train"], {"test": texts["test"]})
    assert vocab == want_vocab and counts.tolist() == want_counts
    for split in ("train", "test"):
        assert [seq.tolist() for seq in ids[split].sequences()] == want_ids[split]
    assert len(ids["test"]) == len(texts["test"])
    assert all(r.flat.dtype == np.int32 and r.offsets.dtype == np.int64 for r in ids.values())


def test_fit_corpus_of_empty_texts_has_only_padding():
    vocab, counts, ids = fit_corpus({"train": [], "test": ["a b"]})
    assert vocab == [""] and counts.tolist() == [0]
    assert len(ids["train"]) == 0 and [s.tolist() for s in ids["test"].sequences()] == [[]]
    vocab, _, ids = fit_corpus({"train": ["", "!!"], "test": [""]})
    assert vocab == [""] and ids["train"].offsets.tolist() == [0, 0, 0]


def test_fitting_twice_counts_both_texts_as_keras_does():
    tok = KerasTokenizer().fit_on_texts(["b a", "a"]).fit_on_texts(["c c b d"])
    # b=2, a=2, c=2, d=1: ties in order of first appearance across both fits
    assert tok.word_index == {"b": 1, "a": 2, "c": 3, "d": 4}
    assert tok.word_counts == {"b": 2, "a": 2, "c": 2, "d": 1}


def test_num_words_keeps_num_words_minus_one_and_drops_unknown_words():
    tok = KerasTokenizer(num_words=3).fit_on_texts(["b a c", "c d b", "e c"])
    assert tok.vocab_size == 3
    assert tok.vocabulary() == ["", "c", "b"]
    # a, d (rank >= 3) and the unseen word z are dropped, not mapped to an OOV id
    assert tok.texts_to_sequences(["a b c d z", "Z, C!"]) == [[2, 1], [1]]


def test_vocab_size_without_limit_counts_padding():
    tok = KerasTokenizer().fit_on_texts(["x y y"])
    assert tok.vocab_size == 3
    assert tok.texts_to_sequences(["y x q"]) == [[1, 2]]


def test_custom_filters_and_case():
    tok = KerasTokenizer(filters="", lower=False).fit_on_texts(["A a, a,"])
    assert tok.word_index == {"a,": 1, "A": 2}


def test_invalid_num_words():
    with pytest.raises(ValueError, match="num_words"):
        KerasTokenizer(num_words=0)


SEQS = [[1, 2, 3, 4, 5], [6, 7], []]


def test_pad_pre_truncate_pre_keeps_the_last_ids():
    out = pad_sequences(SEQS, maxlen=3)
    np.testing.assert_array_equal(out, [[3, 4, 5], [0, 6, 7], [0, 0, 0]])


def test_pad_post_truncate_post_keeps_the_first_ids():
    out = pad_sequences(SEQS, maxlen=3, padding="post", truncating="post")
    np.testing.assert_array_equal(out, [[1, 2, 3], [6, 7, 0], [0, 0, 0]])


def test_pad_mixed_modes_and_value():
    out = pad_sequences(SEQS, maxlen=4, padding="post", truncating="pre", value=9)
    np.testing.assert_array_equal(out, [[2, 3, 4, 5], [6, 7, 9, 9], [9, 9, 9, 9]])
    out = pad_sequences(SEQS, maxlen=4, padding="pre", truncating="post")
    np.testing.assert_array_equal(out, [[1, 2, 3, 4], [0, 0, 6, 7], [0, 0, 0, 0]])


@pytest.mark.parametrize(
    "kwargs",
    [{"maxlen": 0}, {"maxlen": 2, "padding": "middle"}, {"maxlen": 2, "truncating": "both"}],
)
def test_pad_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        pad_sequences(SEQS, **kwargs)


NON_ASCII_TEXTS = [
    "Amélie (2001) — «magnifique»!!  Ça marche,très bien.",
    "日本語の映画、すごい!\tnaïve café-au-lait",
    "emoji 🎬🍿, ÉCOLE\nİstanbul ß ǅ",
    "lone \udce9 surrogate, kept",
    "",
    "plain ascii, only.",
    "Amélie again: ça, and the CAFÉ-au-lait of İstanbul",
]


@pytest.mark.parametrize("chunk_bytes", [None, 1, 60])
@pytest.mark.parametrize("filters", [KERAS_FILTERS, KERAS_FILTERS + "«»—"])
def test_fit_corpus_ids_equal_keras_on_non_ascii_text(filters, chunk_bytes, monkeypatch):
    """The byte path (numpy splits the UTF-8 bytes, Arrow counts and looks the words up) gives
    Keras's vocabulary and ids on accented, CJK, emoji, case-changing and lone-surrogate text,
    a chunk at a time or all at once; non-ASCII filters take the per-word path."""
    if chunk_bytes:
        monkeypatch.setattr(tokenizer, "_CHUNK_BYTES", chunk_bytes)
    train, test = NON_ASCII_TEXTS[:5], NON_ASCII_TEXTS[3:]
    vocab, counts, ids = fit_corpus({"train": train, "test": test}, filters)
    tok = KerasTokenizer(filters=filters).fit_on_texts(train)
    assert vocab == tok.vocabulary()
    assert counts.tolist() == [0, *(tok.word_counts[w] for w in vocab[1:])]
    for split, texts in (("train", train), ("test", test)):
        want = [[tok.word_index[w] for w in tok.words(t) if w in tok.word_index] for t in texts]
        assert [seq.tolist() for seq in ids[split].sequences()] == want
    assert "lone" in vocab and "\udce9" in vocab and "istanbul" not in vocab  # İ lowers to i̇


@pytest.mark.parametrize("filters", [KERAS_FILTERS, KERAS_FILTERS + "«»—"])
def test_corpus_words_equal_the_per_text_words_on_non_ascii_text(filters):
    """split_corpus replaces ASCII filters in the texts' UTF-8 bytes (and non-ASCII ones with
    str.translate): the words are those of KerasTokenizer.words, text by text."""
    texts = NON_ASCII_TEXTS[:6]
    tok = KerasTokenizer(filters=filters)
    [docs] = list(split_corpus(texts, filters))
    assert docs == [tok.words(text) for text in texts]
    if filters == KERAS_FILTERS:
        assert docs[0] == ["amélie", "2001", "—", "«magnifique»", "ça", "marche", "très", "bien"]
    else:
        assert docs[0] == ["amélie", "2001", "magnifique", "ça", "marche", "très", "bien"]


@pytest.mark.parametrize("vocab_words", [3, 10_000])
def test_both_lookups_give_each_words_id_and_zero_for_unknown_words(vocab_words):
    """Arrow's hash table (a small vocabulary beside the chunk), the dict over the chunk's
    distinct words (a large one) and a kept lookup's WordTable give the same ids, lone
    surrogates and unknown words too; ids() gives the per-word path's ids either way."""
    texts = [*NON_ASCII_TEXTS, "the the the film film unknownword", "the film"]
    tok = KerasTokenizer().fit_on_texts(NON_ASCII_TEXTS[:4])
    index = dict(list(tok.word_index.items())[:4])
    index.update((f"filler{i}", len(index) + 1) for i in range(vocab_words))
    lookup = tokenizer.WordLookup(index)
    [(words, counts)] = list(tokenizer.word_chunks(texts))
    by_table, by_dict = lookup.ids_by_hash_table(words), lookup.ids_by_dict(words)
    by_word_table = lookup.ids_by_word_table(words)
    want = [index.get(w, 0) for t in texts for w in tok.words(t)]
    assert by_table.tolist() == by_dict.tolist() == by_word_table.tolist() == want and 0 in want
    assert counts.tolist() == [len(tok.words(t)) for t in texts]
    for kept in (lookup, tokenizer.WordLookup(index, keep_table=True)):
        got = kept.ids(texts)
        assert [s.tolist() for s in got.sequences()] == [
            [index[w] for w in tok.words(t) if w in index] for t in texts
        ]
