"""The data module on generated aclImdb-like data: finding, extracting, caching, splitting."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import write_tree
from embedclf.datamodule import TextFolderDataModule
from embedclf.sources import DataError


def make(**kwargs) -> TextFolderDataModule:
    args = dict(num_words=50, maxlen=12, val_samples=0.25, batch_size=8, split_seed=0)
    args.update(kwargs)
    return TextFolderDataModule(**args)


def ready(dm: TextFolderDataModule) -> TextFolderDataModule:
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_archive_in_data_dir_is_extracted_into_the_cache_not_the_data_dir(dirs, tiny_archive):
    shutil.copy(tiny_archive, dirs["data"])
    dm = ready(make())
    assert sorted(p.name for p in dirs["data"].iterdir()) == ["aclImdb_v1.tar.gz"]
    extracted = list((dirs["cache"] / "datasets").glob("aclImdb_v1-*/aclImdb/train/pos/*.txt"))
    assert len(extracted) == 40
    assert not list((dirs["cache"] / "datasets").glob("*/aclImdb/train/unsup"))
    assert dm.corpus.classes == ["neg", "pos"]  # unsup/ is not a class
    assert dm.sizes() == {"train": 60, "val": 20, "test": 80}
    assert dm.num_classes == 2 and dm.vocab_size <= 50


def test_batches_are_padded_ids_and_labels(dirs, tiny_tree):
    dm = ready(make(root=str(tiny_tree), maxlen=40, padding="pre"))
    ids, labels = next(iter(dm.train_dataloader()))
    assert ids.shape == (8, 40) and labels.shape == (8,)
    assert set(labels.tolist()) <= {0, 1}
    # reviews here are shorter than 40 words: pre-padding puts the zeros first
    assert (ids[:, 0] == 0).all() and (ids[:, -1] != 0).all()


def test_token_ids_follow_the_keras_vocabulary(dirs, tmp_path):
    root = tmp_path / "d"
    for split in ("train", "test"):
        for label, text in (("neg", "b a c"), ("pos", "c d b. E, c")):
            (root / split / label).mkdir(parents=True)
            (root / split / label / "1.txt").write_text(text)
    dm = ready(make(root=str(root), num_words=4, maxlen=5, val_samples=0))
    assert dm.corpus.vocab == ["", "c", "b", "a"]
    assert dm.corpus.counts == [0, 3, 2, 1]
    np.testing.assert_array_equal(dm.data["test"].ids.numpy(), [[0, 0, 2, 3, 1], [0, 0, 1, 2, 1]])


def test_second_run_loads_cached_ids_without_reading_texts(dirs, tiny_tree, tmp_path):
    root = shutil.copytree(tiny_tree, tmp_path / "copy")
    first = ready(make(root=str(root)))
    cached = list((dirs["cache"] / "tokens").glob("*.npz"))
    assert len(cached) == 1
    # rewrite every text behind the cache's back (same size and mtime): a run that
    # re-tokenised would see other words
    for path in root.glob("*/*/*.txt"):
        stat = path.stat()
        path.write_text("x" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = ready(make(root=str(root)))
    np.testing.assert_array_equal(first.data["train"].ids, second.data["train"].ids)
    # any setting that changes the ids gets a cache entry of its own
    ready(make(root=str(root), num_words=20))
    assert len(list((dirs["cache"] / "tokens").glob("*.npz"))) == 2


def test_cache_notices_a_changed_dataset(dirs, tmp_path):
    root = write_tree(tmp_path / "d", per_class=5)
    ready(make(root=str(root), val_samples=0))
    (root / "train" / "pos" / "99_9.txt").write_text("a new review")
    dm = ready(make(root=str(root), val_samples=0))
    assert dm.sizes()["train"] == 11


def test_split_is_seeded_and_sizes_are_exact(dirs, tiny_tree):
    a = ready(make(root=str(tiny_tree), train_samples=10, val_samples=30, split_seed=1))
    b = ready(make(root=str(tiny_tree), train_samples=10, val_samples=30, split_seed=1))
    c = ready(make(root=str(tiny_tree), train_samples=10, val_samples=30, split_seed=2))
    assert a.sizes() == {"train": 10, "val": 30, "test": 80}
    np.testing.assert_array_equal(a.data["train"].ids, b.data["train"].ids)
    assert not np.array_equal(a.data["train"].ids, c.data["train"].ids)
    # the validation reviews never overlap the training ones
    train_rows = {tuple(r) for r in a.data["train"].ids.tolist()}
    assert not train_rows & {tuple(r) for r in a.data["val"].ids.tolist()}


def test_too_many_samples_is_a_clear_error(dirs, tiny_tree):
    dm = make(root=str(tiny_tree), train_samples=70, val_samples=20)
    dm.prepare_data()
    with pytest.raises(DataError, match=r"data.train_samples=70.*training set has 80"):
        dm.setup("fit")


def test_three_classes_from_folder_names(dirs, tmp_path):
    root = write_tree(tmp_path / "d", per_class=6, classes=("a", "b", "c"))
    dm = ready(make(root=str(root), val_samples=3))
    assert dm.corpus.classes == ["a", "b", "c"] and dm.num_classes == 3
    assert set(dm.data["test"].labels.tolist()) == {0, 1, 2}


def test_not_a_dataset_folder(dirs, tmp_path):
    with pytest.raises(DataError, match=r"data.root=.* is not a dataset folder"):
        make(root=str(tmp_path)).prepare_data()


def test_non_utf8_review_names_the_file(dirs, tmp_path):
    root = write_tree(tmp_path / "d", per_class=2)
    bad = root / "train" / "neg" / "bad.txt"
    bad.write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match=r"bad\.txt is not UTF-8"):
        make(root=str(root)).prepare_data()


def test_extracted_tree_in_keras_cache_is_used(dirs, tiny_tree):
    keras = Path(dirs["home"]) / ".keras" / "datasets"
    keras.mkdir(parents=True)
    shutil.copytree(tiny_tree, keras / "aclImdb")
    dm = ready(make())
    assert dm.sizes()["test"] == 80
    assert not (dirs["cache"] / "datasets").exists()  # nothing to extract
