"""data=hf on what Hugging Face datasets loads offline: a saved dataset (ClassLabel names
become the classes) and the csv builder over local files."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import QUIET, train_in_process, write_table
from conftest import table_rows as rows
from embedclf.data.hf_datamodule import HFDataModule
from embedclf.data.storebuild import build_store
from embedclf.data.tokenstore import TokenizedCorpus
from embedclf.util.errors import UserError

datasets = pytest.importorskip("datasets", reason="no hf extra: make install-hf")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def saved(tmp_path, train_labels=None):
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    train, test = rows(20), rows(5, seed=1)

    def split(records, labels=None):
        values = labels or [int(r["label"] == "pos") for r in records]
        return datasets.Dataset.from_dict(
            {"sentence": [r["text"] for r in records], "label": values}, features=features
        )

    folder = tmp_path / "saved"
    datasets.DatasetDict(train=split(train, train_labels), test=split(test)).save_to_disk(folder)
    return folder


def ready(dirs, **settings) -> HFDataModule:
    dm = HFDataModule(cache_dir=str(dirs["cache"]), num_words=None, val_samples=0, **settings)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_saved_dataset_class_label_names_are_the_classes(dirs, tmp_path):
    dm = ready(dirs, load_from_disk=str(saved(tmp_path)), text="sentence")
    assert dm.featurizer.classes == ["neg", "pos"]
    assert dm.sizes() == {"train": 40, "val": 0, "test": 10}
    assert {"great", "awful"} <= set(dm.featurizer.vocab)


def test_csv_builder_with_local_files_trains_through_the_config(dirs, tmp_path):
    train = write_table(tmp_path / "train.csv", rows(30))
    test = write_table(tmp_path / "test.csv", rows(8, seed=3))
    metrics = train_in_process(
        tmp_path / "run",
        "experiment=ngram",
        "data=hf",
        "data.path=csv",
        f"+data.data_files.train={train}",
        f"+data.data_files.test={test}",
        "data.buckets=1024",
        *QUIET,
    )
    assert metrics["train_samples"] == 60 and metrics["test_samples"] == 16
    assert metrics["test_acc"] > 0.8


def test_bad_hf_settings_are_one_line(dirs, tmp_path):
    folder = saved(tmp_path)
    cases = {
        "no such column": ({"load_from_disk": str(folder)}, "no column 'text'; it has 'sentence'"),
        "no such split": (
            {"load_from_disk": str(folder), "text": "sentence", "splits": {"train": "dev"}},
            "no split 'dev' (data.splits.train); it has train, test",
        ),
        "nothing to load": ({}, "needs data.path"),
        "not a saved dataset": ({"load_from_disk": str(tmp_path)}, "datasets cannot load"),
    }
    for name, (settings, expected) in cases.items():
        with pytest.raises(UserError) as caught:
            ready(dirs, **settings)
        assert expected in str(caught.value) and "\n" not in str(caught.value), name


def test_a_dataset_with_a_test_split_is_streamed_into_the_store(dirs, tmp_path, monkeypatch):
    from embedclf.data.readers import hf

    folder = saved(tmp_path)
    whole = ready(dirs, load_from_disk=str(folder), text="sentence")
    blocks = []
    real_stream = hf.HFDataset.stream

    def counted(self):
        for block in real_stream(self):
            blocks.append((block[0], len(block[1])))
            yield block

    def never(self, **_):
        raise AssertionError("read whole")

    monkeypatch.setattr(hf, "BLOCK_ROWS", 7)
    monkeypatch.setattr(hf.HFDataset, "stream", counted)
    monkeypatch.setattr(hf.HFDataset, "read", never)
    dirs["cache"] = tmp_path / "other-cache"
    streamed = ready(dirs, load_from_disk=str(folder), text="sentence")
    # 40 training rows in blocks of 7, then 10 test rows: train first, never a whole split
    assert blocks == [("train", 7)] * 5 + [("train", 5), ("test", 7), ("test", 3)]
    assert streamed.featurizer.vocab == whole.featurizer.vocab
    assert streamed.featurizer.classes == ["neg", "pos"]
    ours, theirs = (TokenizedCorpus.load(dm._tokens_path(dm.source())) for dm in (streamed, whole))
    for split in ("train", "test"):
        assert np.array_equal(ours.ids[split].flat, theirs.ids[split].flat)
        assert np.array_equal(ours.ids[split].offsets, theirs.ids[split].offsets)
        assert np.array_equal(ours.labels[split], theirs.labels[split])


def test_a_streamed_block_names_its_row(dirs, tmp_path, monkeypatch):
    from embedclf.data.readers import hf

    monkeypatch.setattr(hf, "BLOCK_ROWS", 7)
    labels = [0, 1] * 20
    labels[15] = -1  # the 16th row: in the third block
    with pytest.raises(UserError, match=r"split train: row 16 has no label$"):
        ready(dirs, load_from_disk=str(saved(tmp_path, labels)), text="sentence")


def test_a_streamed_build_loads_the_dataset_once(dirs, tmp_path, monkeypatch):
    """identity (the store's key), row_counts, stream and classes_of share one load."""
    from embedclf.data.readers import hf

    folder = saved(tmp_path)
    loads = []
    real_load = hf.HFDataset._load
    monkeypatch.setattr(hf.HFDataset, "_load", lambda self: loads.append(1) or real_load(self))
    source = ready(dirs, load_from_disk=str(folder), text="sentence").source()
    loads.clear()
    build_store(source, tmp_path / "store", filters="", lower=True)
    assert source.identity() and loads == [1]
