"""The dataset catalogue (data=ag_news, sst2, trec, the Zhang et al. CSVs): every config
downloaded from a loopback mirror, as small generated files in the real layout, verified,
unpacked and read with its own column mapping and class names."""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from conftest import REPO, compose_cfg, train_in_process
from embedclf.util.errors import UserError
from loopback import LoopbackServer, serve_bytes

ZHANG = ["dbpedia", "yelp_polarity", "yelp_full", "amazon_polarity", "amazon_full"]
ZHANG += ["yahoo_answers", "sogou_news", "ag_news"]
CATALOGUE = [*ZHANG, "sst2", "trec"]
ROWS = 12  # per class and split


def text_columns(cfg) -> int:
    return len(cfg.data.text)


def zhang_csv(classes: int, columns: int, split: str) -> bytes:
    """Header-less, every field quoted, classes counted from 1, one column per text part:
    class k's rows carry the words cue<k> (first column) and body<k> (last)."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for i in range(ROWS):
        for k in range(1, classes + 1):
            parts = [f"cue{k} {split} title {i}"] + [f'filler, "quoted" {i}'] * (columns - 2)
            writer.writerow([str(k), *parts, *([f"more body{k} words"] if columns > 1 else [])])
    return out.getvalue().encode()


def tgz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def payloads(name: str, cfg) -> list[bytes]:
    """The bytes of each of the config's downloads, laid out as the real files are."""
    data = cfg.data
    if name == "sst2":

        def tsv(split: str) -> bytes:
            rows = [f"cue{k} {split} sentence {i} .\t{k - 1}" for i in range(ROWS) for k in (1, 2)]
            return ("sentence\tlabel\n" + "\n".join(rows) + "\n").encode()

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            zf.writestr("SST-2/train.tsv", tsv("train"))
            zf.writestr("SST-2/dev.tsv", tsv("dev"))
            zf.writestr("SST-2/test.tsv", "index\tsentence\n0\tno label here .\n")
            zf.writestr("SST-2/original/README.txt", "the treebank")
        return [buffer.getvalue()]
    if name == "trec":

        def lines(split: str) -> bytes:
            fine = {"DESC": ["manner", "def"], "HUM": ["ind", "gr"], "LOC": ["city", "other"]}
            rows = [
                f"{coarse}:{fine[coarse][i % 2]} cue{coarse.lower()} {split} question {i} ?"
                for i in range(ROWS)
                for coarse in fine
            ]
            raw = "\n".join(rows).encode() + b"\n"
            return raw.replace(b"question 3 ?", b"sister\xf0city 3 ?")  # TREC's stray byte

        return [lines("train"), lines("test")]
    classes = len(data.label_names)
    if name == "ag_news":
        return [zhang_csv(classes, 2, "train"), zhang_csv(classes, 2, "test")]
    tree = str(data.train).split("/")[0]
    columns = text_columns(cfg)
    return [
        tgz(
            {
                f"{tree}/": b"",
                f"{tree}/classes.txt": "\n".join(data.label_names).encode(),
                f"{tree}/readme.txt": b"the dataset",
                f"{tree}/train.csv": zhang_csv(classes, columns, "train"),
                f"{tree}/test.csv": zhang_csv(classes, columns, "test"),
            }
        )
    ]


def mirrored(name: str, server: LoopbackServer, *, drops: int = 0) -> list[str]:
    """Overrides pointing the config's downloads at the loopback server, checksums of the
    generated files in the config's own algorithm."""
    cfg = compose_cfg(f"data={name}")
    overrides = []
    for i, (entry, payload) in enumerate(zip(cfg.data.download, payloads(name, cfg), strict=True)):
        route = f"/{name}/{Path(entry.file).name}"
        server.routes[route] = serve_bytes(payload, drops=drops)
        algorithm = "md5" if entry.get("md5") else "sha256"
        digest = hashlib.new(algorithm, payload).hexdigest()
        overrides += [f"data.download.{i}.urls=[{server.url(route)}]"]
        overrides += [f"data.download.{i}.{algorithm}={digest}"]
    return overrides


def ready(name: str, *overrides: str):
    cfg = compose_cfg(f"data={name}", "data.val_samples=0.2", *overrides)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    return cfg, dm


@pytest.mark.parametrize("name", CATALOGUE)
def test_every_catalogue_config_downloads_unpacks_and_maps_its_columns(name, dirs, server):
    overrides = mirrored(name, server, drops=1)
    cfg, dm = ready(name, *overrides)
    data = cfg.data
    expected = list(data.label_names) if data.get("label_names") else ["DESC", "HUM", "LOC"]
    assert dm.featurizer.classes == expected
    sizes = dm.sizes()
    assert sizes["test"] == ROWS * len(expected)
    assert sizes["train"] + sizes["val"] == ROWS * len(expected)
    # each row's class is the one its cue word names: labels and columns mapped as published
    index = dm.featurizer.word_index
    cues = {
        c: index[f"cue{c + 1}" if name != "trec" else f"cue{expected[c].lower()}"]
        for c in range(len(expected))
    }
    words = dm.features("train")
    for row, label in zip(words.sequences(), dm.labels["train"], strict=True):
        assert cues[int(label)] in row
    if name in ZHANG and text_columns(cfg) > 1:
        assert "body1" in index  # the last text column is read and joined, not only the first
    # the downloads are in the data directory, the archives unpacked in the cache only
    for entry in data.download:
        assert (dirs["data"] / entry.file).is_file()
    unpacked = (
        list((dirs["cache"] / "extracted").glob("*"))
        if (dirs["cache"] / "extracted").exists()
        else []
    )
    archives = [e for e in data.download if str(e.file).endswith((".tgz", ".zip"))]
    assert len([p for p in unpacked if p.is_dir()]) == len(archives)
    # a second run finds everything here: no request reaches the mirror
    seen = len(server.requests)
    ready(name, *overrides)
    assert len(server.requests) == seen


def test_a_tree_unpacked_by_hand_in_the_data_dir_is_used_without_a_download(dirs, server):
    cfg = compose_cfg("data=dbpedia")
    with tarfile.open(fileobj=io.BytesIO(payloads("dbpedia", cfg)[0])) as tar:
        tar.extractall(dirs["data"], filter="data")  # dbpedia_csv/{train,test}.csv by hand
    _, dm = ready("dbpedia", "data.download.0.urls=[http://127.0.0.1:9/none]")
    assert dm.featurizer.classes == list(cfg.data.label_names)
    assert server.requests == [] and not (dirs["cache"] / "extracted").exists()


def test_a_wrong_checksum_or_a_hostile_archive_is_one_line_and_leaves_nothing(dirs, server):
    overrides = mirrored("dbpedia", server)
    bad = [o if "sha256" not in o else "data.download.0.sha256=" + "0" * 64 for o in overrides]
    with pytest.raises(UserError) as caught:
        ready("dbpedia", *bad)
    assert "sha256 mismatch" in str(caught.value) and "\n" not in str(caught.value)
    assert not (dirs["data"] / "dbpedia_csv.tgz").exists()

    hostile = tgz({"dbpedia_csv/train.csv": b"1,a,b\n", "../escape.csv": b"1,a,b\n"})
    server.routes["/evil.tgz"] = serve_bytes(hostile)
    with pytest.raises(UserError) as caught:
        ready(
            "dbpedia",
            f"data.download.0.urls=[{server.url('/evil.tgz')}]",
            f"data.download.0.sha256={hashlib.sha256(hostile).hexdigest()}",
        )
    assert "'../escape.csv' has '..'" in str(caught.value)
    assert not (dirs["data"].parent / "escape.csv").exists()
    extracted = dirs["cache"] / "extracted"
    assert not extracted.exists() or not [p for p in extracted.iterdir() if p.is_dir()]


def test_a_split_path_missing_from_the_download_names_it(dirs, server):
    overrides = mirrored("yelp_polarity", server)
    with pytest.raises(UserError) as caught:
        ready("yelp_polarity", *overrides, "data.test=yelp_review_polarity_csv/dev.csv")
    message = str(caught.value)
    assert message.startswith("data.test=yelp_review_polarity_csv/dev.csv is not in the downloaded")
    assert "yelp_review_polarity_csv.tgz" in message


def test_train_py_ngram_on_a_catalogue_dataset(dirs, server, tmp_path):
    """The issue's command, python train.py experiment=ngram data=ag_news, in-process."""
    metrics = train_in_process(
        tmp_path / "run",
        "experiment=ngram",
        "data=ag_news",
        *mirrored("ag_news", server),
        "data.val_samples=8",
        "trainer.max_epochs=2",
    )
    assert metrics["test_acc"] > 0.5  # four classes, each named by its cue words
    assert np.isfinite(metrics["test_loss"])


def test_the_readme_lists_every_catalogue_config():
    readme = (REPO / "README.md").read_text()
    for name in ["imdb", *CATALOGUE]:
        assert f"`data={name}`" in readme, name


def test_a_local_archive_is_checked_once_and_its_tree_outlives_it(dirs, server):
    overrides = mirrored("yelp_polarity", server)
    wrong = dirs["data"] / "yelp_review_polarity_csv.tgz"
    wrong.write_bytes(tgz({"yelp_review_polarity_csv/train.csv": b'"1","x"\n'}))
    with pytest.raises(UserError, match="is not the file the dataset's config names"):
        ready("yelp_polarity", *overrides)
    wrong.unlink()
    ready("yelp_polarity", *overrides)  # downloaded, verified, unpacked
    (dirs["data"] / "yelp_review_polarity_csv.tgz").unlink()
    seen = len(server.requests)
    _, dm = ready("yelp_polarity", *overrides)  # the unpacked tree is enough
    assert len(server.requests) == seen and dm.featurizer.classes == ["negative", "positive"]
