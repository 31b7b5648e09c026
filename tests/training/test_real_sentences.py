"""The sentence datasets as users keep them (slow): SST-2 as GLUE's TSV and TREC-6 as JSON
lines, read through data=table and trained with the n-gram model."""

from __future__ import annotations

import pytest

from conftest import SHARED_DATA, train_in_process

SST2, TREC = SHARED_DATA / "sst2", SHARED_DATA / "trec"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SST2 / "train.tsv").exists(), reason=f"{SST2} not present"),
]


def test_ngram_on_sst2_tsv(dirs):
    metrics = train_in_process(
        dirs["run"],
        "experiment=ngram",
        "data=table",
        f"data.train={SST2 / 'train.tsv'}",
        f"data.val={SST2 / 'dev.tsv'}",
        f"data.test={SST2 / 'test.tsv'}",
        "data.text=sentence",
    )
    assert (metrics["train_samples"], metrics["val_samples"]) == (6920, 872)
    assert metrics["test_samples"] == 1821
    assert metrics["test_acc"] >= 0.80, metrics  # TF-IDF + LR 0.818, NBSVM 0.816 here


def test_ngram_on_trec_jsonl(dirs):
    metrics = train_in_process(
        dirs["run"],
        "experiment=ngram",
        "data=table",
        f"data.train={TREC / 'train.jsonl'}",
        f"data.test={TREC / 'test.jsonl'}",
    )
    assert metrics["train_samples"] == 5452 and metrics["test_samples"] == 500
    assert metrics["test_acc"] >= 0.88, metrics  # TF-IDF + LR 0.902, NBSVM 0.888 here
