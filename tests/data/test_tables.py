"""data=table and data=fasttext: every format read into the same rows, the splits as given
(or carved), and each bad input refused in one line naming the file and the row, with
nothing cached from a failed read."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from conftest import QUIET, compose_cfg, padded, train_in_process, write_table
from conftest import table_rows as rows
from embedclf.data.file_datamodules import FastTextDataModule, TableDataModule
from embedclf.util.errors import UserError


def ready(dirs, cls=TableDataModule, **settings):
    dm = cls(cache_dir=str(dirs["cache"]), num_words=None, maxlen=40, val_samples=0, **settings)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def refused(dirs, cls=TableDataModule, **settings) -> str:
    """The one-line error a bad input gets, after checking nothing was cached."""
    before = set(Path(dirs["cache"]).rglob("*"))
    with pytest.raises(UserError) as caught:
        ready(dirs, cls, **settings)
    message = str(caught.value)
    assert "\n" not in message
    assert set(Path(dirs["cache"]).rglob("*")) - before <= {
        p for p in Path(dirs["cache"]).rglob("*") if p.is_dir() or p.suffix == ".lock"
    }, "a failed read left a file in the cache"
    return message


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet", ".csv.gz"])
def test_every_format_gives_the_same_rows(suffix, dirs, tmp_path):
    train, test = rows(20), rows(5, seed=1)
    if suffix == ".csv.gz":
        plain = write_table(tmp_path / "train.csv", train)
        path = tmp_path / "train.csv.gz"
        path.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        path = write_table(tmp_path / f"train{suffix}", train)
    reference = ready(
        dirs,
        train=str(write_table(tmp_path / "ref.jsonl", train)),
        test=str(write_table(tmp_path / "test.jsonl", test)),
    )
    dm = ready(dirs, train=str(path), test=str(tmp_path / "test.jsonl"))
    assert dm.featurizer.classes == ["neg", "pos"]
    assert dm.featurizer.vocab == reference.featurizer.vocab
    np.testing.assert_array_equal(padded(dm, "train"), padded(reference, "train"))
    np.testing.assert_array_equal(dm.labels["test"], reference.labels["test"])
    assert dm.sizes() == {"train": 40, "val": 0, "test": 10}


def test_columns_joined_header_names_and_one_based_integer_labels(dirs, tmp_path):
    """AG News's layout: no header, class numbers from 1, title and body apart."""
    lines = ['1,"good title","great film"', '2,"bad title","awful boring"'] * 6
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    dm = ready(
        dirs,
        train=str(path),
        header=["class", "title", "body"],
        text=["title", "body"],
        label="class",
        label_offset=1,
        label_names=["World", "Sports"],
        test_samples=4,
    )
    assert dm.featurizer.classes == ["World", "Sports"]
    assert {"good", "great", "title"} <= set(dm.featurizer.vocab)  # both columns read
    assert dm.sizes()["test"] == 4 and dm.sizes()["train"] == 8
    assert set(dm.labels["train"]) == {0, 1}


def test_given_validation_is_used_as_given_and_the_test_carve_is_fixed(dirs, tmp_path):
    train = str(write_table(tmp_path / "train.jsonl", rows(30)))
    val = str(write_table(tmp_path / "val.jsonl", rows(3, seed=2)))
    dm = TableDataModule(cache_dir=str(dirs["cache"]), train=train, val=val, val_samples=0.5)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.sizes() == {"train": 54, "val": 6, "test": 6}  # 10% of 60 held out for test
    other = TableDataModule(cache_dir=str(dirs["cache"]), train=train, val=val, split_seed=7)
    other.prepare_data()
    other.setup("fit")
    np.testing.assert_array_equal(padded(dm, "test"), padded(other, "test"))  # seed-independent
    np.testing.assert_array_equal(padded(dm, "val"), padded(other, "val"))


def test_fasttext_lines(dirs, tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("".join(f"__label__{r['label']} {r['text']}\n" for r in rows(10)))
    dm = ready(dirs, FastTextDataModule, train=str(path), test_samples=4)
    assert dm.featurizer.classes == ["neg", "pos"] and dm.sizes()["train"] == 16
    bad = tmp_path / "bad.txt"
    bad.write_text("__label__pos good film\n__label__pos __label__neg mixed feelings\n")
    message = refused(dirs, FastTextDataModule, train=str(bad))
    assert f"{bad}: line 2 has 2 labels" in message


def test_bad_inputs_are_one_line_naming_the_file_and_row(dirs, tmp_path):
    good = write_table(tmp_path / "good.jsonl", rows(5))
    cases: dict[str, tuple[dict, str]] = {}

    path = write_table(tmp_path / "cols.csv", [{"sentence": "good film", "y": "pos"}] * 4)
    cases["missing column"] = ({"train": path}, "no column 'text', 'label'; it has 'sentence', 'y'")
    path = write_table(tmp_path / "empty_text.csv", [*rows(2), {"text": "", "label": "pos"}])
    cases["empty text"] = ({"train": path}, "row 5 has an empty text")
    path = write_table(tmp_path / "unseen.jsonl", [{"text": "good", "label": "meh"}])
    cases["label absent from train"] = (
        {"train": good, "test": path},
        "label 'meh' does not occur in the training rows",
    )
    raw_files = {  # name: (file, its bytes, what the error says)
        "null label": (
            "null.jsonl",
            b'{"text": "good film", "label": "pos"}\n{"text": "bad", "label": null}\n',
            "row 2 has no label",
        ),
        "undecodable": (
            "latin.csv",
            b"text,label\ncaf\xe9 good,pos\nbad,neg\n",
            "set data.encoding",
        ),
        "wrong field count": (
            "fields.csv",
            b"text,label\ngood film,pos\nbad,film,neg\n",
            "line 3 has 3 fields where the header has 2",
        ),
        "empty file": ("empty.csv", b"", "is empty"),
        "not parquet": ("fake.parquet", b"text,label\n", "is not a Parquet file"),
        "JSON line not an object": (
            "list.jsonl",
            b'{"text": "good", "label": "pos"}\n["bad", "neg"]\n',
            "line 2 is a JSON list, not an object",
        ),
        "text holds lists": (
            "lists.jsonl",
            b'{"text": ["a", "b"], "label": "pos"}\n',
            "holds list<item: string>",
        ),
    }
    for name, (file, content, expected) in raw_files.items():
        (tmp_path / file).write_bytes(content)
        cases[name] = ({"train": tmp_path / file}, expected)
    cases["glob matches nothing"] = ({"train": tmp_path / "nowhere" / "*.csv"}, "matches no file")
    numbers = [{"text": i, "label": "pos"} for i in range(4)]
    path = write_table(tmp_path / "numbers.parquet", numbers)
    cases["text holds numbers"] = ({"train": path}, "data.text column 'text' holds int64")
    path = write_table(tmp_path / "one.jsonl", [{"text": "good film", "label": "pos"}] * 3)
    cases["one class"] = ({"train": path, "test": good}, "the training rows hold one class (pos)")
    for name, (files, expected) in cases.items():
        message = refused(dirs, **{k: str(v) for k, v in files.items()})
        assert expected in message, (name, message)
        shown = str(files.get("test", files["train"])) if "absent" in name else str(files["train"])
        assert shown in message, (name, message)


def test_a_command_line_data_source_wins_over_the_experiments(dirs, tmp_path):
    train = write_table(tmp_path / "train.csv", rows(30))
    test = write_table(tmp_path / "test.csv", rows(8, seed=3))
    cfg = compose_cfg("experiment=ngram", "data=table", output_dir=tmp_path)
    assert cfg.data._target_.endswith("TableDataModule") and cfg.data.ngrams == 2
    metrics = train_in_process(
        tmp_path / "run",
        "experiment=ngram",
        "data=table",
        f"data.train={train}",
        f"data.test={test}",
        "data.buckets=1024",
        *QUIET,
    )
    assert metrics["train_samples"] == 60 and metrics["test_samples"] == 16
    assert metrics["test_acc"] > 0.8  # the cue words are learnable


def test_parquet_row_counts_are_known_before_reading_for_the_progress_bar(tmp_path):
    train = write_table(tmp_path / "train.parquet", rows(20))
    test = write_table(tmp_path / "test.csv", rows(5))
    source = TableDataModule(train=str(train), test=str(test)).source()
    assert source.row_counts() == {"train": 40}  # CSV rows are known only once read
