"""The token cache built in a child process while train.py loads torch (tokencache.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import (
    REAL_ARCHIVE,
    REPO,
    SMALL,
    run_script,
    table_rows,
    token_stores,
    write_table,
    write_tree,
)
from embedclf.data.datamodule import TextFolderDataModule
from embedclf.data.dataset import FolderDataset
from embedclf.data.storebuild import start_building
from embedclf.data.tokenstore import TokenizedCorpus, cache_path
from embedclf.text.tokenizer import KERAS_FILTERS, KerasTokenizer
from embedclf.util.errors import ConfigError
from embedclf.util.paths import cache_key, file_identity

DATA = {"archive": "aclImdb_v1.tar.gz", "root": None, "lower": True}


def start_in_fresh_process(data: dict, env_dirs: dict[str, Path]) -> dict:
    """``start_building(data)`` where train.py calls it: a process that has not loaded torch."""
    code = (
        "import json, sys\n"
        "from embedclf.data.storebuild import start_building\n"
        "child = start_building(json.loads(sys.argv[1]))\n"
        "if child is not None: child.join()\n"
        "print(json.dumps({'started': child is not None, 'exitcode': child and child.exitcode,"
        " 'torch': 'torch' in sys.modules}))\n"
    )
    data = {**data, "data_dir": str(env_dirs["data"]), "cache_dir": str(env_dirs["cache"])}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(data)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def caches(env_dirs: dict[str, Path]) -> list[Path]:
    return token_stores(env_dirs["cache"])


def test_the_child_builds_the_cache_the_data_module_then_uses(dirs, tiny_archive):
    shutil.copy(tiny_archive, dirs["data"])
    report = start_in_fresh_process(DATA, dirs)
    assert report == {"started": True, "exitcode": 0, "torch": False}
    [built] = caches(dirs)
    mtime = built.stat().st_mtime_ns

    data = TextFolderDataModule(data_dir=str(dirs["data"]), cache_dir=str(dirs["cache"]))
    data.prepare_data()  # finds the child's cache under its own key: nothing rebuilt
    data.setup("fit")
    assert caches(dirs) == [built] and built.stat().st_mtime_ns == mtime

    fresh = dirs["cache"].parent / "fresh"
    TextFolderDataModule(data_dir=str(dirs["data"]), cache_dir=str(fresh)).prepare_data()
    [own] = token_stores(fresh)
    child, parent = TokenizedCorpus.load(built), TokenizedCorpus.load(own)
    assert child.vocab == parent.vocab and np.array_equal(child.counts, parent.counts)
    for split in ("train", "test"):
        assert np.array_equal(child.ids[split].flat, parent.ids[split].flat)
        assert np.array_equal(child.ids[split].offsets, parent.ids[split].offsets)
        assert np.array_equal(child.labels[split], parent.labels[split])

    # the cache is there now: no second child
    assert start_in_fresh_process(DATA, dirs)["started"] is False


def test_the_key_names_the_source_word_rules_and_store_format(dirs, tiny_archive):
    """The store's key is made of what decides its ids, and of its layout's format: a store
    of an earlier layout (format 2, one .npz) is never read as this one."""
    archive = shutil.copy(tiny_archive, dirs["data"])
    settings = {
        "source": file_identity(Path(archive)),
        "filters": KERAS_FILTERS,
        "lower": True,
        "vocab": "fitted",
        "format": 3,
    }
    path = cache_path(Path(archive), filters=KERAS_FILTERS, lower=True, cache_dir=None)
    assert path == dirs["cache"] / "tokens" / cache_key(settings)


def test_the_run_waits_for_the_child_and_reads_what_it_built(dirs, tiny_archive):
    """train.py's order: start the child, load torch and Lightning, then prepare_data (which
    waits on the child's lock, or finds its cache when the child was quicker)."""
    shutil.copy(tiny_archive, dirs["data"])
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level='INFO', stream=sys.stdout, format='%(process)d %(message)s')\n"
        "from embedclf.data.storebuild import start_building\n"
        "child = start_building({'archive': 'aclImdb_v1.tar.gz'})\n"
        "from embedclf.data.datamodule import TextFolderDataModule\n"
        "data = TextFolderDataModule()\n"
        "data.prepare_data(); data.setup('fit')\n"
        "child.join()\n"
        "import os; print('parent', os.getpid(), 'child', child.pid, child.exitcode)\n"
    )
    done = run_script(["-c", code], dirs, script="")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    *_, child, exitcode = lines[-1].split()
    built = [line for line in lines if " tokenised " in line]
    assert exitcode == "0" and len(built) == 1 and built[0].startswith(f"{child} ")
    assert len(caches(dirs)) == 1


def test_no_child_without_the_dataset_on_disk_nor_after_torch_is_loaded(dirs, tiny_archive):
    # nothing on disk: no child, and nothing downloaded (the run itself will fetch it)
    assert start_in_fresh_process(DATA, dirs)["started"] is False
    assert list(dirs["data"].iterdir()) == []
    assert start_in_fresh_process({"archive": None}, dirs)["started"] is False  # odd settings

    # torch loaded (as in this test process): forking now is unsafe, so no child
    shutil.copy(tiny_archive, dirs["data"])
    assert "torch" in sys.modules
    config = {**DATA, "data_dir": str(dirs["data"]), "cache_dir": str(dirs["cache"])}
    assert start_building(config) is None
    assert caches(dirs) == []


@pytest.mark.parametrize("damage", ["truncated", "not gzip"])
def test_a_child_that_fails_leaves_the_error_to_the_run(damage, dirs, tiny_archive):
    raw = tiny_archive.read_bytes()
    bad = raw[: len(raw) // 2] if damage == "truncated" else b"not an archive at all" * 100
    (dirs["data"] / "aclImdb_v1.tar.gz").write_bytes(bad)
    report = start_in_fresh_process(DATA, dirs)
    assert report["started"] is True and report["exitcode"] == 1
    assert caches(dirs) == []

    result = run_script([*SMALL, f"hydra.run.dir={dirs['run']}/cli"], dirs)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "aclImdb_v1.tar.gz" in errors[0] and "corrupt" in errors[0]
    assert "Traceback" not in result.stderr
    assert caches(dirs) == []


@pytest.mark.slow
@pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason=f"{REAL_ARCHIVE} not present")
def test_a_child_terminated_mid_build_leaves_nothing_behind(dirs):
    """What a parent that stops early (a config error) does to its daemonic child: SIGTERM
    unwinds the build as an error does (exit code 1, not -15), so the atomic write of a
    cache in progress removes its staging file, and no cache is taken for a good one."""
    (dirs["data"] / REAL_ARCHIVE.name).symlink_to(REAL_ARCHIVE)
    code = (
        "import sys, time\n"
        "from embedclf.data.storebuild import start_building\n"
        "child = start_building({'archive': 'aclImdb_v1.tar.gz'})\n"
        "time.sleep(3)\n"  # mid-build: still reading the archive
        "child.terminate(); child.join()\n"
        "print(child.exitcode)\n"
    )
    done = run_script(["-c", code], dirs, script="")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "1"  # unwound by SIGTERM, not killed by it (-15)
    left = [p.name for p in (dirs["cache"] / "tokens").iterdir() if not p.name.endswith(".lock")]
    assert left == []


# -- the store's layout ------------------------------------------------------------------
def test_the_store_holds_the_keras_tokenizers_ids_flat_and_maps_them(dirs, tmp_path):
    root = write_tree(tmp_path / "d", per_class=30)
    data = TextFolderDataModule(root=str(root), num_words=None, val_samples=0)
    data.prepare_data()
    data.setup("fit")
    texts, _ = FolderDataset(root).read()
    keras = KerasTokenizer().fit_on_texts(texts.texts["train"])
    store = data.corpus
    assert store.vocab == keras.vocabulary()
    for split in ("train", "test"):
        ragged = store.ids[split]
        assert isinstance(ragged.flat, np.memmap) and ragged.flat.dtype == np.int32
        assert ragged.offsets.dtype == np.int64 and len(ragged.offsets) == len(ragged) + 1
        got = [seq.tolist() for seq in ragged.sequences()]
        assert got == keras.texts_to_sequences(texts.texts[split])
        np.testing.assert_array_equal(store.labels[split], texts.labels[split])
    [path] = token_stores(dirs["cache"])
    assert sorted(p.name for p in path.iterdir()) == [
        "counts.npy",
        "meta.json",
        *(f"{s}.{a}.npy" for s in ("test", "train") for a in ("ids", "labels", "offsets")),
    ]


def test_a_build_killed_midway_leaves_no_store_and_the_next_one_builds(dirs, tmp_path):
    """SIGKILL after the first array is written (no handler can run): the staging directory
    is left behind, never the store; the next build removes it and writes a good store."""
    root = write_tree(tmp_path / "d", per_class=10)
    code = (
        "import os, signal, sys\n"
        "import embedclf.data.tokenstore as store\n"
        "from embedclf.data.datamodule import TextFolderDataModule\n"
        "real = store.write_synced\n"
        "def dying(path, write):\n"
        "    real(path, write)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "store.write_synced = dying\n"
        "TextFolderDataModule(root=sys.argv[1]).prepare_data()\n"
    )
    done = run_script(["-c", code, str(root)], dirs, script="")
    assert done.returncode == -9
    tokens = dirs["cache"] / "tokens"
    assert token_stores(dirs["cache"]) == []
    [staging] = [p for p in tokens.iterdir() if p.name.startswith(".")]
    assert staging.is_dir() and any(p.suffix == ".npy" for p in staging.iterdir())

    data = TextFolderDataModule(root=str(root))
    data.prepare_data()
    data.setup("fit")
    assert not staging.exists() and len(token_stores(dirs["cache"])) == 1
    assert data.sizes()["train"] + data.sizes()["val"] == 20


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_streamed_build_by_a_pool_of_workers_gives_the_keras_ids(
    dirs, tmp_path, fmt, monkeypatch
):
    """Tables with a test file stream a block at a time; blocks of 7 texts make many blocks,
    so the pool splits them and the first-seen order must be merged across blocks."""
    import embedclf.data.storebuild as storebuild
    from embedclf.data.file_datamodules import TableDataModule

    monkeypatch.setattr(storebuild, "BLOCK_TEXTS", 7)
    pools = []
    real_pool = storebuild.multiprocessing.get_context("fork").Pool

    class Counted:
        def Pool(self, n):
            pools.append(n)
            return real_pool(n)

    monkeypatch.setattr(storebuild.multiprocessing, "get_context", lambda kind: Counted())
    monkeypatch.setattr(storebuild, "_workers", lambda: 2)
    train, test = table_rows(40, seed=1), table_rows(15, seed=2)
    write_table(tmp_path / f"train.{fmt}", train)
    write_table(tmp_path / f"test.{fmt}", test)
    data = TableDataModule(
        train=str(tmp_path / f"train.{fmt}"), test=str(tmp_path / f"test.{fmt}"), val_samples=0
    )
    data.prepare_data()
    data.setup("fit")
    assert pools == [2]  # the pool did the splitting
    keras = KerasTokenizer().fit_on_texts([r["text"] for r in train])
    store = data.corpus
    assert store.vocab == keras.vocabulary() and store.classes == ["neg", "pos"]
    for split, rows in (("train", train), ("test", test)):
        got = [seq.tolist() for seq in store.ids[split].sequences()]
        assert got == keras.texts_to_sequences([r["text"] for r in rows])
        assert store.labels[split].tolist() == [store.classes.index(r["label"]) for r in rows]
    counts = dict(keras.word_counts)
    assert store.counts.tolist() == [0, *(counts[w] for w in store.vocab[1:])]


@pytest.mark.parametrize("block", [7, 20_000])
def test_unseen_words_kept_follow_the_training_vocabulary_in_first_seen_order(
    dirs, tmp_path, block, monkeypatch
):
    """data.unseen_words=keep: training's ids are Keras's as they were, and each word of the
    validation and test texts that training never saw gets the next id (first seen first,
    across blocks and splits, count 0) instead of being dropped; the store has its own key."""
    import embedclf.data.storebuild as storebuild
    from embedclf.data.file_datamodules import TableDataModule

    monkeypatch.setattr(storebuild, "BLOCK_TEXTS", block)
    train, val, test = table_rows(30, seed=1), table_rows(12, seed=3), table_rows(15, seed=2)
    val[0]["text"] = "zzfirst unseen words zzsecond"
    test[-1]["text"] = "zzsecond zzthird"
    for name, rows in (("train", train), ("val", val), ("test", test)):
        write_table(tmp_path / f"{name}.csv", rows)
    files = {s: str(tmp_path / f"{s}.csv") for s in ("train", "val", "test")}
    kept = TableDataModule(**files, num_words=None, unseen_words="keep")
    dropped = TableDataModule(**files, num_words=None)
    for data in (kept, dropped):
        data.prepare_data()
        data.setup("fit")
    assert kept._tokens_path(kept.source()) != dropped._tokens_path(dropped.source())
    keras = KerasTokenizer().fit_on_texts([r["text"] for r in train])
    n = len(keras.vocabulary())
    store = kept.corpus
    assert store.vocab[:n] == keras.vocabulary() == dropped.corpus.vocab
    order = [w for r in val + test for w in keras.words(r["text"])]
    unseen = list(dict.fromkeys(w for w in order if w not in keras.word_index))
    assert "zzfirst" in unseen and unseen.index("zzsecond") < unseen.index("zzthird")
    assert store.vocab[n:] == unseen and store.counts[n:].tolist() == [0] * len(unseen)
    index = {w: i for i, w in enumerate(store.vocab) if i}
    for split, rows in (("train", train), ("val", val), ("test", test)):
        got = [seq.tolist() for seq in store.ids[split].sequences()]
        assert got == [[index[w] for w in keras.words(r["text"])] for r in rows]
    assert kept.featurizer.vocab == store.vocab  # predict looks those words up too
    with pytest.raises(ConfigError, match=r"data\.unseen_words must be drop or keep"):
        TableDataModule(**files, unseen_words="yes")


@pytest.mark.parametrize(
    ("unseen_words", "chunk"), [("drop", 1 << 16), ("keep", 1 << 16), ("drop", 7)]
)
def test_vocab_from_train_rows_leaves_the_validation_carve_unseen(
    dirs, tmp_path, unseen_words, chunk, monkeypatch
):
    """data.vocab_from=train_rows: the vocabulary is counted over the rows training uses, so
    the carve's words training never saw are dropped (or kept after the training words) as
    test's are; every row still reads its own words, in chunks of rows as in one."""
    import embedclf.data.tokenstore as tokenstore
    from embedclf.data.file_datamodules import TableDataModule

    monkeypatch.setattr(tokenstore, "RANK_CHUNK_ROWS", chunk)

    train, test = table_rows(40, seed=4), table_rows(15, seed=5)
    for i, row in enumerate(train):
        row["text"] += f" zzonly{i}"  # a word of one training row each
    test[0]["text"] += " zztestonly"
    for name, rows in (("train", train), ("test", test)):
        write_table(tmp_path / f"{name}.csv", rows)
    files = {s: str(tmp_path / f"{s}.csv") for s in ("train", "test")}
    settings = dict(**files, num_words=None, val_samples=10, unseen_words=unseen_words)
    data = TableDataModule(**settings, vocab_from="train_rows")
    whole = TableDataModule(**settings)  # Keras: the carve's words are in the vocabulary
    for module in (data, whole):
        module.prepare_data()
        module.setup("fit")
    keras = KerasTokenizer()
    texts = {
        split: [keras.words(r["text"]) for r in rows]
        for split, rows in (("train", train), ("test", test))
    }
    _, train_rows = data.rows["train"]
    _, val_rows = data.rows["val"]
    assert len(val_rows) == 10 and (val_rows == whole.rows["val"][1]).all()
    counts: dict[str, int] = {}
    for row in train_rows:
        for word in texts["train"][row]:
            counts[word] = counts.get(word, 0) + 1
    vocab, store = data.featurizer.vocab, data.corpus
    n = len(counts)
    assert set(vocab[1 : n + 1]) == set(counts)
    assert store.counts[1 : n + 1].tolist() == [counts[w] for w in vocab[1 : n + 1]]
    assert store.counts[1 : n + 1].tolist() == sorted(store.counts[1 : n + 1], reverse=True)
    carve_only = {f"zzonly{row}" for row in val_rows}
    assert carve_only <= set(whole.featurizer.vocab) and not carve_only & set(vocab[: n + 1])
    unseen = set(vocab[n + 1 :])
    if unseen_words == "keep":
        assert carve_only | {"zztestonly"} <= unseen and not unseen & set(counts)
        assert not store.counts[n + 1 :].any()
    else:
        assert len(vocab) == n + 1
    for split, stored, rows in (("train", "train", train_rows), ("val", "train", val_rows)):
        got = [[vocab[i] for i in seq] for seq in data.words[stored].rows(rows).sequences()]
        want = [[w for w in texts[stored][row] if w in vocab] for row in rows]
        assert got == want and any(
            len(a) < len(texts[stored][r]) for a, r in zip(want, rows, strict=True)
        ) == (split == "val" and unseen_words == "drop")
    got_test = [[vocab[i] for i in seq] for seq in data.corpus.ids["test"].sequences()]
    assert got_test == [[w for w in words if w in vocab] for words in texts["test"]]
    with pytest.raises(ConfigError, match=r"data\.vocab_from must be one of train_file"):
        TableDataModule(**files, vocab_from="val")


def test_ranked_over_reads_the_stored_ids_through_the_new_ranking_without_copying_them():
    from embedclf.text.ragged import Ragged

    # stored ids 1..4 = a, b, c, d; training rows 0 and 1 hold c (3 times), a, d; row 2 (a
    # carve) holds b only, and test holds b and d
    train = Ragged(np.array([3, 1, 3, 3, 4, 2, 2], np.int32), np.array([0, 3, 5, 7]))
    test = Ragged(np.array([2, 4, 4], np.int32), np.array([0, 3]))
    corpus = TokenizedCorpus(
        ["neg", "pos"],
        ["", "a", "b", "c", "d"],
        np.array([0, 1, 2, 3, 1]),
        {"train": train, "test": test},
        {"train": np.array([0, 1, 0]), "test": np.array([1])},
    )
    for keep_unseen, want_vocab in ((False, ["", "c", "a", "d"]), (True, ["", "c", "a", "d", "b"])):
        ranked = corpus.ranked_over(np.array([0, 1]), keep_unseen=keep_unseen)
        assert ranked.vocab == want_vocab and ranked.counts.tolist()[:4] == [0, 3, 1, 1]
        index = {w: i for i, w in enumerate(want_vocab)}
        words = [["c", "a", "c"], ["c", "d"], ["b", "b"]]
        want = [[index[w] for w in row if w in index] for row in words]
        assert [
            r.tolist() for r in ranked.ids["train"].rows(np.array([0, 1, 2])).sequences()
        ] == want
        assert [r.tolist() for r in ranked.ids["train"].slice(1, 3).sequences()] == want[1:]
        got_test = ranked.ids["test"].sequences()[0].tolist()
        assert got_test == [index[w] for w in ("b", "d", "d") if w in index]
        assert ranked.ids["train"].stored is train  # the stored ids, not a copy
        again = ranked.ranked_over(np.array([0, 1]), keep_unseen=keep_unseen)  # from the store
        assert again.ids["train"].stored is train and again.vocab == ranked.vocab
        assert [r.tolist() for r in again.ids["train"].slice(0, 3).sequences()] == want


def test_a_child_that_fails_on_the_disk_gives_its_error_and_nothing_is_tokenised_twice(
    dirs, tiny_archive
):
    """A full disk under the cache: the early child's one-line error is the run's, and the
    run does not read and tokenise everything a second time to reach it."""
    shutil.copy(tiny_archive, dirs["data"])
    code = (
        "import sys\n"
        "import embedclf.data.storebuild as storebuild\n"
        "from embedclf.util.errors import DataError, DiskError\n"
        "builds = []\n"
        "def full(dataset, path, **settings):\n"
        "    builds.append(path)\n"
        "    raise DiskError(f'cannot write {path}: no space left (0 MB free)')\n"
        "storebuild.build_store = full\n"
        "child = storebuild.start_building({'archive': 'aclImdb_v1.tar.gz'})\n"
        "from embedclf.data.datamodule import TextFolderDataModule\n"
        "try:\n"
        "    TextFolderDataModule().prepare_data()\n"
        "except DataError as err:\n"
        "    print('error:', err)\n"
        "print('child', child.exitcode, 'builds here', len(builds))\n"
    )
    done = run_script(["-c", code], dirs, script="")
    assert done.returncode == 0, done.stderr
    *_, error, report = done.stdout.strip().splitlines()
    assert error.startswith("error: cannot write") and "no space left" in error
    assert report == "child 1 builds here 0"
    assert token_stores(dirs["cache"]) == []
