"""The data module on generated aclImdb-like data: finding, reading, caching, splitting, batches."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import padded, token_stores, write_tree
from embedclf.data.batches import Batch, Tokens
from embedclf.data.datamodule import TextFolderDataModule
from embedclf.util.errors import DataError, UserError


def make(**kwargs) -> TextFolderDataModule:
    args = dict(num_words=50, maxlen=12, val_samples=0.25, batch_size=8, split_seed=0)
    args.update(kwargs)
    return TextFolderDataModule(**args)


def ready(dm: TextFolderDataModule) -> TextFolderDataModule:
    dm.prepare_data()
    dm.setup("fit")
    return dm


def token_caches(dirs) -> list[Path]:
    return token_stores(dirs["cache"])


def test_archive_in_data_dir_is_read_as_a_stream_nothing_extracted(dirs, tiny_archive):
    shutil.copy(tiny_archive, dirs["data"])
    dm = ready(make())
    assert sorted(p.name for p in dirs["data"].iterdir()) == ["aclImdb_v1.tar.gz"]
    # the cache holds the token ids and their lock, no extracted text
    assert not list(dirs["cache"].rglob("*.txt"))
    assert len(token_caches(dirs)) == 1
    assert dm.corpus.classes == ["neg", "pos"]  # unsup/ is not a class
    assert dm.sizes() == {"train": 60, "val": 20, "test": 80}
    assert dm.num_classes == 2 and dm.vocab_size <= 50


def test_batches_hold_flat_features_of_chunks_of_rows(dirs, tiny_tree):
    dm = ready(make(root=str(tiny_tree), maxlen=40, padding="pre", steps_per_call=3))
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, Batch) and batch.step_size == 8 and len(batch) == 24
    assert isinstance(batch.tokens, Tokens) and len(batch.tokens) == 24
    # the rows as the store holds them, nothing padded: offsets delimit each row's features
    lengths = batch.tokens.lengths()
    assert batch.tokens.flat.shape == (int(lengths.sum()),) and (batch.tokens.flat > 0).all()
    assert int(lengths.max()) <= 40 and int(lengths.min()) < 40
    # flatten's view of them: padded to maxlen, zeros first (pre-padding)
    ids = batch.tokens.padded(40)
    assert ids.shape == (24, 40) and (ids[:, 0] == 0).all() and (ids[:, -1] != 0).all()
    rows = {tuple(r) for r in padded(dm, "train").tolist()}
    assert {tuple(r) for r in ids.tolist()} <= rows
    on_device = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert isinstance(on_device, Batch) and on_device.step_size == 8
    # an epoch visits every training row once; evaluation chunks are in order
    seen = [tuple(r) for b in dm.train_dataloader() for r in b.tokens.padded(40).tolist()]
    assert sorted(seen) == sorted(tuple(r) for r in padded(dm, "train").tolist())
    val = torch.cat([b.tokens.padded(40) for b in dm.val_dataloader()])
    np.testing.assert_array_equal(val.numpy(), padded(dm, "val"))
    assert next(iter(dm.val_dataloader())).step_size == 20


def test_token_ids_follow_the_keras_vocabulary(dirs, tmp_path):
    root = tmp_path / "d"
    for split in ("train", "test"):
        for label, text in (("neg", "b a c"), ("pos", "c d b. E, c")):
            (root / split / label).mkdir(parents=True)
            (root / split / label / "1.txt").write_text(text)
    dm = ready(make(root=str(root), num_words=4, maxlen=5, val_samples=0))
    assert dm.corpus.vocab[:4] == ["", "c", "b", "a"]
    assert dm.corpus.counts[:4].tolist() == [0, 3, 2, 1]
    assert dm.featurizer.vocab == ["", "c", "b", "a"]  # num_words=4 keeps 3 words
    expected = {(0, 0, 2, 3, 1): 0, (0, 0, 1, 2, 1): 1}
    got = {tuple(r): int(y) for r, y in zip(padded(dm, "test"), dm.labels["test"], strict=True)}
    assert got == expected
    np.testing.assert_array_equal(dm.featurizer.encode(["b a c"]), [[0, 0, 2, 3, 1]])


def test_second_run_loads_cached_ids_without_reading_texts(dirs, tiny_tree, tmp_path):
    root = shutil.copytree(tiny_tree, tmp_path / "copy")
    first = ready(make(root=str(root)))
    assert len(token_caches(dirs)) == 1
    # rewrite every text behind the cache's back (same size and mtime): a run that
    # re-tokenised would see other words
    for path in root.glob("*/*/*.txt"):
        stat = path.stat()
        path.write_text("x" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = ready(make(root=str(root)))
    np.testing.assert_array_equal(padded(first, "train"), padded(second, "train"))
    # num_words is applied at setup: sweeping it reuses the same cache entry
    ready(make(root=str(root), num_words=20))
    assert len(token_caches(dirs)) == 1
    # the tokeniser's settings are part of the key
    ready(make(root=str(root), lower=False))
    assert len(token_caches(dirs)) == 2


def test_cache_notices_a_changed_dataset(dirs, tmp_path):
    root = write_tree(tmp_path / "d", per_class=5)
    ready(make(root=str(root), val_samples=0))
    (root / "train" / "pos" / "99_9.txt").write_text("a new review")
    dm = ready(make(root=str(root), val_samples=0))
    assert dm.sizes()["train"] == 11


@pytest.mark.parametrize(
    "damage", ["truncated ids", "zero-length offsets", "flipped byte", "no meta", "a file"]
)
def test_damaged_token_cache_is_named_and_rebuilt(dirs, tiny_tree, caplog, damage):
    good = ready(make(root=str(tiny_tree)))
    [cache] = token_caches(dirs)
    ids = cache / "train.ids.npy"
    if damage == "truncated ids":
        ids.write_bytes(ids.read_bytes()[: ids.stat().st_size // 2])
    elif damage == "zero-length offsets":
        (cache / "test.offsets.npy").write_bytes(b"")
    elif damage == "flipped byte":
        data = bytearray(ids.read_bytes())
        data[-5] ^= 0x01  # an id, still in range: only the checksum can tell
        ids.write_bytes(bytes(data))
    elif damage == "no meta":
        (cache / "meta.json").unlink()
    else:
        shutil.rmtree(cache)
        cache.write_bytes(b"not a directory")

    with caplog.at_level(logging.WARNING):
        again = ready(make(root=str(tiny_tree)))

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(str(cache) in m and "damaged" in m and "rebuilding" in m for m in warnings)
    np.testing.assert_array_equal(padded(again, "train"), padded(good, "train"))
    assert token_caches(dirs) == [cache] and (cache / "meta.json").stat().st_size > 0
    # the rebuilt cache is read as it is by the next run
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ready(make(root=str(tiny_tree)))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_token_cache_has_normal_permissions(dirs, tiny_tree):
    old = os.umask(0o022)
    try:
        ready(make(root=str(tiny_tree)))
    finally:
        os.umask(old)
    [cache] = token_caches(dirs)
    assert cache.stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in cache.iterdir()} == {0o644}


def test_split_is_seeded_and_sizes_are_exact(dirs, tiny_tree):
    a = ready(make(root=str(tiny_tree), train_samples=10, val_samples=30, split_seed=1))
    b = ready(make(root=str(tiny_tree), train_samples=10, val_samples=30, split_seed=1))
    c = ready(make(root=str(tiny_tree), train_samples=10, val_samples=30, split_seed=2))
    assert a.sizes() == {"train": 10, "val": 30, "test": 80}
    np.testing.assert_array_equal(padded(a, "train"), padded(b, "train"))
    assert not np.array_equal(padded(a, "train"), padded(c, "train"))
    # the validation reviews never overlap the training ones
    train_rows = {tuple(r) for r in padded(a, "train").tolist()}
    assert not train_rows & {tuple(r) for r in padded(a, "val").tolist()}


def test_test_split_is_stored_shuffled_with_its_labels(dirs, tiny_tree):
    dm = ready(make(root=str(tiny_tree)))
    labels = dm.labels["test"]
    assert sorted(np.bincount(labels)) == [40, 40]
    assert set(labels[:8].tolist()) == {0, 1}  # a limited run's first batch holds both classes


def test_too_many_samples_is_a_clear_error(dirs, tiny_tree):
    dm = make(root=str(tiny_tree), train_samples=70, val_samples=20)
    dm.prepare_data()
    with pytest.raises(UserError, match=r"data.train_samples=70.*training set has 80"):
        dm.setup("fit")


def test_three_classes_from_folder_names(dirs, tmp_path):
    root = write_tree(tmp_path / "d", per_class=6, classes=("a", "b", "c"))
    dm = ready(make(root=str(root), val_samples=3))
    assert dm.corpus.classes == ["a", "b", "c"] and dm.num_classes == 3
    assert set(dm.labels["test"].tolist()) == {0, 1, 2}


def test_a_class_in_train_only_is_logged(dirs, tmp_path, caplog):
    root = write_tree(tmp_path / "d", per_class=4, classes=("neg", "pos"))
    extra = root / "train" / "meh"
    extra.mkdir()
    (extra / "0.txt").write_text("so so")
    with caplog.at_level(logging.WARNING):
        dm = ready(make(root=str(root), val_samples=0))
    assert dm.corpus.classes == ["neg", "pos"]
    assert any("train/meh" in r.getMessage() for r in caplog.records)
    assert not any("unsup" in r.getMessage() for r in caplog.records)  # unsup is expected


def test_not_a_dataset_folder(dirs, tmp_path):
    with pytest.raises(DataError, match=r"data.root=.* is not a dataset folder"):
        make(root=str(tmp_path)).prepare_data()


def test_non_utf8_review_names_the_file(dirs, tmp_path):
    root = write_tree(tmp_path / "d", per_class=2)
    bad = root / "train" / "neg" / "bad.txt"
    bad.write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match=r"bad\.txt is not UTF-8"):
        make(root=str(root)).prepare_data()


@pytest.mark.parametrize("kind", ["folder", "dangling link"])
def test_a_txt_that_is_not_a_file_names_it(dirs, tmp_path, kind):
    root = write_tree(tmp_path / "d", per_class=2)
    odd = root / "train" / "pos" / "x.txt"
    if kind == "folder":
        odd.mkdir()
    else:
        odd.symlink_to(tmp_path / "nowhere.txt")
    with pytest.raises(DataError, match=r"pos/x\.txt is (not a file|a broken link)"):
        make(root=str(root)).prepare_data()


def test_extracted_tree_in_keras_cache_is_used(dirs, tiny_tree):
    keras = Path(dirs["home"]) / ".keras" / "datasets"
    keras.mkdir(parents=True)
    shutil.copytree(tiny_tree, keras / "aclImdb")
    dm = ready(make())
    assert dm.sizes()["test"] == 80
    assert not list(dirs["cache"].rglob("*.txt"))  # read in place, nothing copied


def test_a_checkpoints_featurizer_decides_the_ids_and_another_is_refused(dirs, tiny_tree):
    dm = ready(make(root=str(tiny_tree)))
    fresh = make(root=str(tiny_tree), num_words=10)  # the checkpoint's vocabulary wins
    fresh.use_featurizer(dm.featurizer)
    ready(fresh)
    assert fresh.featurizer == dm.featurizer
    np.testing.assert_array_equal(padded(fresh, "test"), padded(dm, "test"))
    # Lightning saves nothing under the data module's class name: the featurizer travels
    # under the module's fixed checkpoint key instead
    assert dm.state_dict() == {}
    other = ready(make(root=str(tiny_tree), maxlen=7))
    with pytest.raises(DataError, match="another vocabulary, padding"):
        other.use_featurizer(dm.featurizer)


def test_links_out_of_the_dataset_are_refused_unless_followed(dirs, tmp_path, tiny_tree):
    import shutil

    root = tmp_path / "tree"
    shutil.copytree(tiny_tree, root)
    outside = tmp_path / "secret.txt"
    outside.write_text("root bash nologin")
    (root / "train" / "pos" / "zz_link.txt").symlink_to(outside)
    with pytest.raises(DataError, match=r"links out of the dataset .* data\.follow_links=true"):
        ready(make(root=str(root)))
    followed = ready(make(root=str(root), follow_links=True))
    assert "nologin" in followed.featurizer.vocab


def test_length_buckets_give_batches_of_similar_length_and_every_row_once():
    from embedclf.data.datamodule import LengthBucketSampler

    lengths = np.random.default_rng(0).integers(1, 500, size=2000)
    sampler = LengthBucketSampler(lengths, chunk=64, batch=16)
    torch.manual_seed(0)
    chunks = list(sampler)
    order = torch.cat(chunks)
    assert sorted(order.tolist()) == list(range(2000)) and len(chunks) == len(sampler)
    spread = [int(np.ptp(lengths[b.numpy()])) for b in order.split(16)]
    assert np.median(spread) < 20  # random batches of 16 spread over about 400
    torch.manual_seed(0)
    assert torch.equal(torch.cat(list(sampler)), order)  # the run's seed decides the order
    assert not torch.equal(torch.cat(list(sampler)), order)  # and each epoch is another


def test_length_buckets_cut_the_padding_of_order_aware_batches(dirs, tiny_tree):
    def padding(dm) -> int:
        torch.manual_seed(0)
        total = 0
        for batch in dm.train_dataloader():
            for tokens, _ in batch.parts():
                total += int((tokens.padded() == 0).sum())
        return total

    plain = ready(make(root=str(tiny_tree), maxlen=60, batch_size=4, steps_per_call=2))
    bucketed = ready(
        make(root=str(tiny_tree), maxlen=60, batch_size=4, steps_per_call=2, length_buckets=True)
    )
    assert padding(bucketed) < padding(plain) / 2


@pytest.mark.parametrize("name", ["length_buckets", "val_groups", "features_on_device"])
def test_switches_must_be_booleans(name):
    with pytest.raises(UserError, match=rf"^data\.{name} must be true or false, got 'maybe'$"):
        make(**{name: "maybe"})


def _epoch(dm) -> list[tuple[tuple[int, ...], int]]:
    torch.manual_seed(0)  # the shuffle draws from torch's generator
    return [
        (tuple(row), int(label))
        for batch in dm.train_dataloader()
        for row, label in zip(batch.tokens.padded(60).tolist(), batch.labels.tolist(), strict=True)
    ]


def test_training_features_are_computed_once_when_they_fit(dirs, tiny_tree, monkeypatch):
    from embedclf.text.featurizer import TextFeaturizer

    settings = dict(root=str(tiny_tree), maxlen=60, ngrams=2, buckets=64, steps_per_call=2)
    plain = ready(make(**settings, feature_cache_mb=0))
    cached = ready(make(**settings))
    featurized = []
    real_batch = TextFeaturizer.batch
    monkeypatch.setattr(
        TextFeaturizer,
        "batch",
        lambda self, ids: featurized.append(len(ids)) or real_batch(self, ids),
    )
    first = _epoch(cached)
    assert featurized == [60]  # every training row once, in one block
    assert _epoch(cached) == first and featurized == [60]  # the next epoch computes nothing
    stats = [b.tokens.flat.tolist() for b in cached.training_batches(size=16)]
    assert featurized == [60]
    featurized.clear()
    assert _epoch(plain) == first  # the same batches, each computed from the words
    assert featurized == [16, 16, 16, 12]
    assert stats == [b.tokens.flat.tolist() for b in plain.training_batches(size=16)]


def test_training_features_over_the_budget_are_computed_per_batch(dirs, tiny_tree):
    dm = ready(make(root=str(tiny_tree), maxlen=60, feature_cache_mb=1e-4))  # 104 bytes
    assert _epoch(dm) and dm._features == {"train": None}


def test_feature_cache_bound_counts_no_ngrams_without_buckets(dirs, tiny_tree):
    """ngrams=2 with buckets=0 hashes no n-grams: the budget is one feature a word, so a
    budget of exactly the words' size caches them (a bound of two a word would not)."""
    settings = dict(root=str(tiny_tree), maxlen=60, ngrams=2, buckets=0)
    plain = ready(make(**settings, feature_cache_mb=0))
    stored, rows = plain.rows["train"]
    size = np.minimum(np.diff(plain.words[stored].offsets)[rows], 60).sum() * 4
    dm = ready(make(**settings, feature_cache_mb=size / 2**20))
    assert _epoch(dm) == _epoch(plain) and dm._features["train"] is not None


@pytest.mark.parametrize("bad", [-1, "lots", True])
def test_feature_cache_mb_must_be_a_size(bad):
    with pytest.raises(UserError, match=r"^data\.feature_cache_mb must be a size in MB"):
        make(feature_cache_mb=bad)


def test_a_folder_streams_into_the_store_as_its_archive_reads_whole(
    dirs, tiny_tree, tiny_archive, tmp_path, monkeypatch
):
    from embedclf.data import dataset
    from embedclf.data.tokenstore import TokenizedCorpus

    shutil.copy(tiny_archive, dirs["data"])
    whole = ready(make())  # the archive, read whole in one pass
    blocks = []
    real = dataset.stream_folder

    def counted(*args, **kwargs):
        for block in real(*args, **kwargs):
            blocks.append((block[0], len(block[1])))
            yield block

    def never(self, **_):
        raise AssertionError("read whole")

    monkeypatch.setattr(dataset, "BLOCK_FILES", 7)
    monkeypatch.setattr(dataset, "stream_folder", counted)
    monkeypatch.setattr(dataset.FolderDataset, "read", never)
    streamed = ready(make(root=str(tiny_tree)))
    # 80 training files in blocks of 7 (train first), then the 80 test files
    assert blocks == ([("train", 7)] * 11 + [("train", 3)]) + ([("test", 7)] * 11 + [("test", 3)])
    ours, theirs = (TokenizedCorpus.load(dm._tokens_path(dm.source())) for dm in (streamed, whole))
    assert ours.vocab == theirs.vocab and ours.classes == theirs.classes
    for split in ("train", "test"):
        assert np.array_equal(ours.ids[split].flat, theirs.ids[split].flat)
        assert np.array_equal(ours.ids[split].offsets, theirs.ids[split].offsets)
        assert np.array_equal(ours.labels[split], theirs.labels[split])
