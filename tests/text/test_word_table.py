import numpy as np
import pyarrow as pa
import pytest

from embedclf.text.word_table import WordTable


def _words(items: list[bytes]) -> pa.LargeBinaryArray:
    return pa.array(items, pa.large_binary())


def test_every_known_word_is_found_at_its_position_and_others_are_not():
    rng = np.random.default_rng(0)
    known = {
        bytes(rng.integers(97, 100, size=rng.integers(1, 9)).astype(np.uint8)) for _ in range(3000)
    }
    known = sorted(known | {b"", "é".encode(), b"the"})  # the empty word, a multi-byte one
    table = WordTable(_words(known))  # over 3 letters: many are prefixes of others
    queries = [*known[::-1], b"th", b"thee", b"t", b"e", b"zzz", b"the"]
    got = table.positions(_words(queries)).tolist()
    place = {word: i for i, word in enumerate(known)}
    assert got == [place.get(word, -1) for word in queries]
    assert got[-6:-1] == [-1] * 5 and got[-1] == place[b"the"]  # prefixes and extensions: -1


def test_arrays_sliced_out_of_larger_ones_are_read_from_their_own_offset():
    everything = _words([b"skip", b"me", b"good", b"bad", b"film"])
    table = WordTable(everything.slice(2, 3))  # good, bad, film
    queries = _words([b"x", b"film", b"good", b"me", b"bad"]).slice(1, 4)
    assert table.positions(queries).tolist() == [2, 0, -1, 1]


def test_an_empty_vocabulary_and_an_empty_chunk():
    assert WordTable(_words([])).positions(_words([b"a", b""])).tolist() == [-1, -1]
    assert WordTable(_words([b"a"])).positions(_words([])).tolist() == []


def test_a_prefix_of_a_known_word_met_on_the_probe_is_not_taken_for_it():
    # every 4-letter word over 4 letters known (256 words, half the slots full); their 1- to
    # 3-letter prefixes asked for: probes pass words that begin with the word asked for
    letters = [b"a", b"b", b"c", b"d"]
    grams = [letters]
    for _ in range(3):
        grams.append([a + b for a in grams[-1] for b in letters])
    table = WordTable(_words(grams[3]))
    shorter = grams[0] + grams[1] + grams[2]
    assert (table.positions(_words(shorter)) == -1).all()
    assert table.positions(_words(grams[3])).tolist() == list(range(256))


def test_arrays_of_other_types_or_with_nulls_are_refused():
    table = WordTable(_words([b"a", b"bc"]))
    with pytest.raises(TypeError, match="large_binary"):
        table.positions(pa.array([b"a", b"bc", b"d"], pa.binary()))  # 32-bit offsets
    with pytest.raises(ValueError, match="nulls"):
        table.positions(_words([b"a", None]))
