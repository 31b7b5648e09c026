"""The accuracy targets on the real aclImdb archive (slow): the fastText-class n-gram model on
the standard protocol, and the 200-label models with GloVe and with in-domain word2vec."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REAL_ARCHIVE, REAL_GLOVE_50D, train_in_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason=f"{REAL_ARCHIVE} not present"),
]


@pytest.fixture(scope="module")
def real_dirs(tmp_path_factory) -> Iterator[Path]:
    """One data dir holding links to the real files and one cache for the whole module, so
    the archive is read and tokenised once."""
    root = tmp_path_factory.mktemp("real")
    data = root / "data"
    data.mkdir()
    (data / REAL_ARCHIVE.name).symlink_to(REAL_ARCHIVE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDCLF_DATA_DIR", str(data))
        patch.setenv("EMBEDCLF_CACHE_DIR", str(root / "cache"))
        patch.setenv("HOME", str(root))
        yield root


def test_ngram_beats_tfidf_logistic_regression_on_the_standard_protocol(real_dirs):
    metrics = train_in_process(real_dirs / "ngram", "experiment=ngram", "seed=0")
    assert metrics["train_samples"] == 25000 and metrics["test_samples"] == 25000
    assert metrics["val_acc"] is None  # trained on all 25,000 (data.val_samples=0)
    assert metrics["test_acc"] >= 0.905, metrics  # TF-IDF uni+bigrams + LR: 0.9075 here


def mean_test_acc(root: Path, *overrides: str) -> float:
    runs = [train_in_process(root / f"seed{s}", *overrides, f"seed={s}") for s in (0, 1, 2)]
    assert all(r["train_samples"] == 200 and r["val_samples"] == 10000 for r in runs)
    return statistics.mean(r["test_acc"] for r in runs)


@pytest.mark.skipif(not REAL_GLOVE_50D.exists(), reason=f"{REAL_GLOVE_50D} not present")
def test_few_glove_beats_mean_glove_logistic_regression(real_dirs):
    mean = mean_test_acc(
        real_dirs / "few_glove",
        "experiment=few_glove",
        "vectors=glove_6b_50d",
        f"vectors.path={REAL_GLOVE_50D}",
    )
    assert mean >= 0.72, mean  # mean GloVe-50d + logistic regression: 0.716 here


def test_few_indomain_beats_word2vec_mean_logistic_regression(real_dirs):
    pytest.importorskip("gensim", reason="no pretrain extra: make install-pretrain")
    mean = mean_test_acc(real_dirs / "few_indomain", "experiment=few_indomain")
    # target 0.80: make bench measured 0.8029 and 0.8069 in two runs here. gensim's two worker
    # threads change the vectors' last digits from run to run, so the test leaves 0.005 for that
    assert mean >= 0.795, mean  # gensim CBOW + mean vectors + logistic regression: 0.785 here
