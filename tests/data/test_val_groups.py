"""data.val_groups: validation carved as whole groups of training rows (aclImdb's films)."""

from __future__ import annotations

import random
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import cues
from embedclf.data.datamodule import TextFolderDataModule
from embedclf.util.errors import ConfigError, DataError

PER_CLASS = 24  # file names 0..23: "10_..." sorts before "2_...", as in aclImdb


def film_tree(root: Path, urls: bool = True) -> Path:
    """An aclImdb-like tree whose training reviews each name their film (``movie<k>id``) and
    whose ``train/urls_<class>.txt`` give each file's film by its leading number."""
    rng = random.Random(0)
    for split in ("train", "test"):
        for label in ("neg", "pos"):
            folder = root / split / label
            folder.mkdir(parents=True)
            films = [f"movie{rng.randrange(9)}id" for _ in range(PER_CLASS)]
            for i, film in enumerate(films):
                words = [film, *cues(label)[:3], "plot", "story"]
                (folder / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(" ".join(words))
            if urls and split == "train":
                lines = [f"http://www.imdb.com/title/{film}/usercomments\n" for film in films]
                (root / split / f"urls_{label}.txt").write_text("".join(lines))
    return root


def films_of(dm: TextFolderDataModule, split: str) -> list[set[str]]:
    """The film word of each row of ``split``, read back from its features."""
    vocab = dm.featurizer.vocab
    rows = dm.features(split)
    return [
        {vocab[i] for i in rows.flat[a:b] if vocab[i].startswith("movie")}
        for a, b in zip(rows.offsets[:-1], rows.offsets[1:], strict=True)
    ]


def carve(root: Path, **kwargs) -> TextFolderDataModule:
    """The data module over a tree, or over an archive (``aclImdb_v1.tar.gz``) in a data dir."""
    args = dict(num_words=None, maxlen=20, val_samples=0.25, batch_size=8, val_groups=True)
    where = dict(data_dir=str(root.parent)) if root.is_file() else dict(root=str(root))
    dm = TextFolderDataModule(**where, **{**args, **kwargs})
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def films(tmp_path_factory) -> Path:
    return film_tree(tmp_path_factory.mktemp("films") / "aclImdb")


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "archive"])
def test_no_film_has_reviews_in_training_and_validation(dirs, films, tmp_path, packed):
    root = films
    if packed:
        root = tmp_path / "aclImdb_v1.tar.gz"
        with tarfile.open(root, "w:gz") as tar:
            tar.add(films, arcname="aclImdb")
    for seed in (0, 1, 2):
        dm = carve(root, split_seed=seed)
        train, val = films_of(dm, "train"), films_of(dm, "val")
        assert all(len(f) == 1 for f in train + val)  # each row read back with its own film
        assert not set().union(*train) & set().union(*val)
        # whole films up to the first that reaches 12 rows of 48: 12 or more, never all
        assert 12 <= len(val) < 48 and len(train) + len(val) == 48


def test_the_carve_is_seeded(dirs, films):
    held = [sorted(carve(films, split_seed=s).rows["val"][1].tolist()) for s in (0, 0, 3)]
    assert held[0] == held[1] and held[0] != held[2]
    # val_seed fixes the carve whatever split_seed
    fixed = [sorted(carve(films, split_seed=s, val_seed=5).rows["val"][1].tolist()) for s in (0, 3)]
    assert fixed[0] == fixed[1]


def test_rows_one_by_one_share_films_without_it(dirs, films):
    dm = carve(films, val_groups=False)
    assert set().union(*films_of(dm, "train")) & set().union(*films_of(dm, "val"))


def test_a_tree_without_urls_files_is_a_setting_error(dirs, tmp_path):
    root = film_tree(tmp_path / "aclImdb", urls=False)
    with pytest.raises(ConfigError, match=r"data.val_groups=true needs .*urls_<class>.txt"):
        carve(root)


@pytest.mark.parametrize("name", ["extra.txt", "²_7.txt"], ids=["no-number", "not-ascii"])
def test_a_file_the_urls_cannot_number_is_named(dirs, tmp_path, name):
    root = film_tree(tmp_path / "aclImdb")
    (root / "train" / "pos" / name).write_text("good film")
    with pytest.raises(DataError, match=rf"train/pos/{name}: data.val_groups=true"):
        carve(root)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"val_samples": 47}, r"holds out 48 rows of whole groups, leaving 0 for training"),
        ({"train_samples": 35, "val_samples": 13}, r"holds out 15 rows .*leaving 33 .*lower"),
    ],
    ids=["nothing-left", "train-samples"],
)
def test_a_carve_that_leaves_too_few_training_rows_says_so(dirs, films, settings, message):
    with pytest.raises(ConfigError, match=message):
        carve(films, **settings)


def test_val_groups_must_be_a_boolean():
    with pytest.raises(ConfigError, match=r"data\.val_groups must be true or false"):
        TextFolderDataModule(val_groups="film")


def test_the_real_archive_gives_each_review_its_film():
    from conftest import REAL_ARCHIVE

    if not REAL_ARCHIVE.exists():
        pytest.skip("../shared/data/aclImdb_v1.tar.gz is absent")
    from embedclf.data.readers.folder import training_groups

    groups = training_groups(REAL_ARCHIVE, ["neg", "pos"])
    # 25,000 reviews of 3,456 films; 0_3.txt (neg) and 0_9.txt (pos) are line 0 of their files
    assert len(groups) == 25_000 and len(np.unique(groups)) == 3456
    assert groups[0] == "http://www.imdb.com/title/tt0064354/usercomments"
    assert groups[12_500] == "http://www.imdb.com/title/tt0453418/usercomments"
