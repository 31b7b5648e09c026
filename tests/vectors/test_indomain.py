"""In-domain word2vec vectors: trained on unlabelled + training reviews only, cached, loaded
through the project's vectors path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import write_tree
from embedclf.vectors.cache import load_vectors
from embedclf.vectors.indomain import pretrained_vectors

pytest.importorskip("gensim", reason="no pretrain extra: make install-pretrain")

SETTINGS = {"vector_size": 12, "window": 3, "min_count": 1, "epochs": 2, "workers": 1, "seed": 0}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = write_tree(tmp_path / "aclImdb", per_class=10)
    (root / "train" / "unsup" / "1_0.txt").write_text("Zebrafish swim; zebrafish glow.")
    (root / "test" / "pos" / "99_9.txt").write_text("Quokka appears only in a test review")
    return root


def test_vectors_come_from_unlabelled_and_training_reviews_never_test(tree, tmp_path):
    path = pretrained_vectors(
        source=tree,
        filters='!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n',
        lower=True,
        settings=SETTINGS,
        cache_dir=tmp_path / "cache",
    )
    vectors = load_vectors(path, cache_dir=tmp_path / "vcache")
    words = set(vectors.words)
    assert "zebrafish" in words  # unlabelled review, lower-cased, punctuation removed
    assert "great" in words and "movie" in words  # training reviews
    assert "quokka" not in words  # test reviews are never read
    assert vectors.dim == 12 and np.isfinite(vectors.matrix).all()
    header = path.read_text().splitlines()[0]
    assert header == f"{len(vectors.words)} 12"


def test_second_call_reuses_the_cache_and_settings_key_it(tree, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    kwargs = dict(source=tree, filters="", lower=True, cache_dir=cache)
    first = pretrained_vectors(settings=SETTINGS, **kwargs)
    import gensim.models

    def refuse(*args, **kwargs):
        raise AssertionError("trained again instead of reusing the cache")

    monkeypatch.setattr(gensim.models, "Word2Vec", refuse)
    assert pretrained_vectors(settings=dict(SETTINGS), **kwargs) == first
    for changed in ({"epochs": 3}, {"workers": 2}):  # several threads give other vectors
        with pytest.raises(AssertionError, match="trained again"):
            pretrained_vectors(settings={**SETTINGS, **changed}, **kwargs)


def test_a_run_with_indomain_vectors_trains_on_them(tree, tmp_path, dirs):
    from conftest import train_in_process

    metrics = train_in_process(
        tmp_path / "run",
        "experiment=seed_glove",
        "vectors=indomain",
        f"data.root={tree}",
        "data.train_samples=12",
        "data.val_samples=4",
        "data.maxlen=30",
        "vectors.pretrain.min_count=1",
        "vectors.pretrain.vector_size=6",
        "vectors.pretrain.epochs=1",
        "trainer.max_epochs=1",
    )
    assert metrics["vectors_coverage"] > 0.9  # the vectors were trained on these very words
    assert list((dirs["cache"] / "pretrained").glob("word2vec-*.vec"))


def test_vectors_from_a_table_source_use_its_training_rows_only(tmp_path):
    from conftest import table_rows, write_table
    from embedclf.data.file_datamodules import TableDataModule

    train = write_table(tmp_path / "train.csv", table_rows(10))
    test = write_table(tmp_path / "test.csv", [{"text": "a quokka here", "label": "pos"}] * 2)
    source = TableDataModule(train=str(train), test=str(test)).source()
    path = pretrained_vectors(
        source=source, filters="", lower=True, settings=SETTINGS, cache_dir=tmp_path / "cache"
    )
    words = set(load_vectors(path, cache_dir=tmp_path / "vcache").words)
    assert "great" in words and "quokka" not in words


def test_a_tables_unlabelled_rows_are_pretrained_on_and_key_the_vectors(tmp_path):
    from conftest import table_rows, write_table
    from embedclf.data.file_datamodules import TableDataModule

    train = write_table(tmp_path / "train.csv", table_rows(10))
    test = write_table(tmp_path / "test.csv", [{"text": "a quokka here", "label": "pos"}] * 2)
    extra = write_table(tmp_path / "more.parquet", [{"text": "zebrafish swim, zebrafish glow"}])
    plain = TableDataModule(train=str(train), test=str(test)).source()
    source = TableDataModule(train=str(train), test=str(test), unlabelled=str(extra)).source()
    assert source.identity() != plain.identity()  # other texts: other vectors
    path = pretrained_vectors(
        source=source, filters=",", lower=True, settings=SETTINGS, cache_dir=tmp_path / "cache"
    )
    words = set(load_vectors(path, cache_dir=tmp_path / "vcache").words)
    assert "zebrafish" in words and "great" in words and "quokka" not in words
    # training reads no unlabelled row
    texts, unlabelled = source.read(unlabelled=False)
    assert unlabelled == [] and texts.texts == plain.read()[0].texts
