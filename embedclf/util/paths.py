"""Where data comes from and where derived files go.

Two directories, never the same: the *data* directory holds what users download or supply
(archives, vector files) and may be read-only; the *cache* directory holds everything the
project derives from them (extracted trees, token ids, binary vectors) and can be deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

DATA_DIR_ENV = "EMBEDCLF_DATA_DIR"
CACHE_DIR_ENV = "EMBEDCLF_CACHE_DIR"
KERAS_DATASETS = Path("~/.keras/datasets")


def data_dir(configured: str | os.PathLike | None = None) -> Path:
    """The configured directory, else ``$EMBEDCLF_DATA_DIR``, else ``~/.cache/embedclf/data``."""
    chosen = configured or os.environ.get(DATA_DIR_ENV) or "~/.cache/embedclf/data"
    return Path(chosen).expanduser()


def cache_dir(configured: str | os.PathLike | None = None) -> Path:
    """The configured directory, else ``$EMBEDCLF_CACHE_DIR``, else ``~/.cache/embedclf/cache``."""
    chosen = configured or os.environ.get(CACHE_DIR_ENV) or "~/.cache/embedclf/cache"
    return Path(chosen).expanduser()


def search_dirs(configured_data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for files a user already has, in order."""
    return [data_dir(configured_data_dir), KERAS_DATASETS.expanduser()]


def file_identity(path: Path) -> dict[str, object]:
    """What identifies a file's contents cheaply: its resolved path, size and mtime."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cache_key(settings: object, length: int = 16) -> str:
    """A short stable hex digest of JSON-serialisable settings."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


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
