"""The labelled (and optionally unlabelled) aclImdb reviews for the benchmark's peers.

The peers (plain PyTorch loop, the seed's Keras code, fastText, scikit-learn baselines) must
see exactly the texts the project sees, but must not depend on the project's data pipeline,
which is what they are compared with. So this reads the archive on its own, straight from
the gzip tar stream (nothing is extracted): classes ``neg`` = 0, ``pos`` = 1; within a class
the files in name order, as ``embedclf.data.datamodule.read_split`` orders them.

Nothing is cached in the repository; a caller may pass a directory (a temporary one) where the
parsed texts are pickled, so several peers in one benchmark pay for reading the archive once.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ARCHIVE_NAME = "aclImdb_v1.tar.gz"
CLASSES = ("neg", "pos")
SPLITS = ("train", "test")


@dataclass
class Imdb:
    """The reviews as lists of texts and int64 label arrays (neg 0, pos 1)."""

    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    unsup_texts: list[str] | None = None


def default_archive() -> Path:
    """``$EMBEDCLF_DATA_DIR/aclImdb_v1.tar.gz`` when it exists, else ``../shared/data``'s."""
    env = os.environ.get("EMBEDCLF_DATA_DIR")
    if env and (Path(env) / ARCHIVE_NAME).is_file():
        return Path(env) / ARCHIVE_NAME
    return SHARED_DATA / ARCHIVE_NAME


def _read_archive(path: Path, unsup: bool) -> Imdb:
    """One pass over the tar stream, keeping ``<split>/<class>/*.txt`` members."""
    found: dict[tuple[str, str], list[tuple[str, str]]] = {
        (s, c): [] for s in SPLITS for c in CLASSES
    }
    if unsup:
        found["train", "unsup"] = []
    with tarfile.open(path, mode="r|gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or not parts[-1].endswith(".txt"):
                continue
            key = (parts[-3], parts[-2])
            if key not in found:
                continue
            handle = tar.extractfile(member)
            assert handle is not None  # a regular file always has a payload
            found[key].append((parts[-1], handle.read().decode("utf-8")))

    def texts_labels(split: str) -> tuple[list[str], np.ndarray]:
        texts: list[str] = []
        labels: list[int] = []
        for label, name in enumerate(CLASSES):
            rows = sorted(found[split, name])
            texts += [text for _, text in rows]
            labels += [label] * len(rows)
        return texts, np.asarray(labels, dtype=np.int64)

    train_texts, train_labels = texts_labels("train")
    test_texts, test_labels = texts_labels("test")
    if not train_texts or not test_texts:
        raise ValueError(f"{path} holds no <train|test>/<neg|pos>/*.txt reviews")
    unsup_texts = [text for _, text in sorted(found["train", "unsup"])] if unsup else None
    return Imdb(train_texts, train_labels, test_texts, test_labels, unsup_texts)


def load_imdb(
    archive: Path | None = None, *, unsup: bool = False, cache_dir: Path | None = None
) -> Imdb:
    """Read the reviews from ``archive`` (default: :func:`default_archive`).

    ``unsup`` also reads the 50,000 unlabelled training reviews. With ``cache_dir`` the result
    is pickled there (keyed by the archive's path, size and mtime) and reused by later calls.
    """
    path = Path(archive) if archive is not None else default_archive()
    if not path.is_file():
        raise FileNotFoundError(f"no aclImdb archive at {path}")
    if cache_dir is None:
        return _read_archive(path, unsup)
    stat = path.stat()
    identity = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{unsup}"
    cache = Path(cache_dir) / f"imdb-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.pkl"
    if cache.is_file():
        with cache.open("rb") as f:
            return pickle.load(f)
    data = _read_archive(path, unsup)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(cache)
    return data


def load_sentences(name: str, data_dir: Path = SHARED_DATA) -> Imdb:
    """SST-2 (GLUE's TSV: sentence, label; train + dev for training, as the project's
    ``data.val`` does not train) or TREC-6 (JSON lines: text, label), read with the stdlib
    on their own; labels numbered in sorted order, as the project numbers them."""
    import csv
    import json

    if name == "sst2":
        splits = {}
        for split in ("train", "test"):
            with open(data_dir / "sst2" / f"{split}.tsv", newline="") as file:
                rows = list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
            splits[split] = ([r["sentence"] for r in rows], [r["label"] for r in rows])
    else:
        splits = {}
        for split in ("train", "test"):
            lines = (data_dir / "trec" / f"{split}.jsonl").read_text().splitlines()
            records = [json.loads(line) for line in lines if line.strip()]
            splits[split] = ([r["text"] for r in records], [r["label"] for r in records])
    classes = sorted(set(splits["train"][1]))
    index = {c: i for i, c in enumerate(classes)}
    (train_texts, train_labels), (test_texts, test_labels) = splits["train"], splits["test"]
    return Imdb(
        train_texts,
        np.array([index[y] for y in train_labels], np.int64),
        test_texts,
        np.array([index[y] for y in test_labels], np.int64),
    )
