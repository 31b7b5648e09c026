"""Shared fixtures: a small generated aclImdb-like dataset, isolated data/cache dirs."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import embedclf.runs.rundir  # noqa: F401  (registers ${embedclf.run_id:} for composed configs)
from loopback import LoopbackServer

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_ARCHIVE = SHARED_DATA / "aclImdb_v1.tar.gz"
REAL_GLOVE_50D = SHARED_DATA / "glove.6B.50d.zip"

POSITIVE = ["good", "great", "wonderful", "superb", "loved"]
NEGATIVE = ["bad", "awful", "boring", "terrible", "hated"]
NEUTRAL = ["the", "movie", "film", "plot", "actor", "scene", "story", "and", "a", "it"]


def cues(label: str) -> list[str]:
    """The words that give a review's class away (any other class: words made of its name)."""
    known = {"pos": POSITIVE, "neg": NEGATIVE}
    return known.get(label, [f"{label}ish", f"{label}esque", f"very{label}"])


def review(rng: random.Random, label: str) -> str:
    cue = cues(label)
    words = [rng.choice(NEUTRAL) for _ in range(rng.randint(8, 30))]
    for _ in range(3):
        words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
    return " ".join(words).capitalize() + ". <br /><br />Rated, honestly!"


def write_tree(root: Path, per_class: int = 40, classes=("neg", "pos"), seed: int = 0) -> Path:
    """An aclImdb-like tree: train/<class>, test/<class>, plus an unlabelled train/unsup."""
    rng = random.Random(seed)
    for split in ("train", "test"):
        for label in classes:
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(review(rng, label))
    unsup = root / "train" / "unsup"
    unsup.mkdir()
    (unsup / "0_0.txt").write_text("unlabelled text that must be ignored")
    return root


@pytest.fixture(scope="session")
def tiny_tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("tree") / "aclImdb")


@pytest.fixture(scope="session")
def tiny_archive(tiny_tree: Path, tmp_path_factory) -> Path:
    """``aclImdb_v1.tar.gz`` holding the tiny tree under ``aclImdb/``, in a data dir of its own."""
    path = tmp_path_factory.mktemp("archive") / "aclImdb_v1.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tiny_tree, arcname="aclImdb")
        readme = b"tiny test dataset\n"
        info = tarfile.TarInfo("aclImdb/README")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return path


@pytest.fixture(scope="session")
def seed_checkpoint(tmp_path_factory, tiny_tree) -> Path:
    """A seed_learned checkpoint trained on the tiny tree, its run's metrics.json beside it
    (for tests that only read it: copy it before changing it)."""
    root = tmp_path_factory.mktemp("seed-checkpoint")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDCLF_CACHE_DIR", str(root / "cache"))
        metrics = train_in_process(
            root / "run", "experiment=seed_learned", *SMALL, f"data.root={tiny_tree}"
        )
    return Path(metrics["checkpoint"])


@pytest.fixture
def dirs(tmp_path, monkeypatch) -> dict[str, Path]:
    """Empty data and cache dirs, set as the environment's defaults; HOME too (Keras cache)."""
    out = {name: tmp_path / name for name in ("data", "cache", "home", "run")}
    for path in out.values():
        path.mkdir()
    monkeypatch.setenv("EMBEDCLF_DATA_DIR", str(out["data"]))
    monkeypatch.setenv("EMBEDCLF_CACHE_DIR", str(out["cache"]))
    monkeypatch.setenv("HOME", str(out["home"]))
    return out


# small settings for runs on the generated tree: seconds, not minutes
SMALL = [
    "data.num_words=60",
    "data.maxlen=40",
    "data.batch_size=8",
    "trainer.max_epochs=3",
    "model.optimizer.lr=0.01",
]


def glove_overrides(tree: Path, vectors: Path, *more: str) -> list[str]:
    """seed_glove on a generated tree: 40 training and 20 validation reviews, vectors read
    from the file ``vectors``."""
    return [
        "experiment=seed_glove",
        *SMALL,
        f"data.root={tree}",
        "data.train_samples=40",
        "data.val_samples=20",
        f"vectors.path={vectors}",
        *more,
    ]


# what an in-process test run never needs: drawing, projector, progress bar, model summary
QUIET = [
    "plot_curves=false",
    "projector_words=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def compose_cfg(*overrides: str, output_dir: Path | str | None = None, config: str = "train"):
    """The real config composed as ``train.py`` composes it, outputs under ``output_dir``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    extra = [f"paths.output_dir={output_dir}"] if output_dir is not None else []
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose(config, overrides=[*overrides, *extra], return_hydra_config=True)


def train_in_process(run_dir: Path, *overrides: str, quiet: bool = True) -> dict:
    """``python train.py OVERRIDES`` without the subprocess: compose, then ``train(cfg)``.

    The data and cache dirs come from the environment (the ``dirs`` fixture)."""
    from embedclf.training.run import train

    cfg = compose_cfg(*(QUIET if quiet else []), *overrides, output_dir=run_dir)
    return train(cfg)


def run_script(
    args: list[str],
    env_dirs: dict[str, Path] | None = None,
    script: str = "train.py",
    timeout: int = 600,
) -> subprocess.CompletedProcess:
    """Run a project entry point as a user would, from the repository root."""
    env = dict(os.environ)
    if env_dirs:
        env.update(
            EMBEDCLF_DATA_DIR=str(env_dirs["data"]),
            EMBEDCLF_CACHE_DIR=str(env_dirs["cache"]),
            HOME=str(env_dirs["home"]),
        )
    command = [sys.executable, *script.split(), *args]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """An HTTP server on 127.0.0.1 serving ``server.routes``, stopped after the test."""
    httpd = LoopbackServer()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def net_spec(
    rows: int,
    seq_len: int = 6,
    classes: int = 2,
    *,
    dim: int = 4,
    kind: str = "flatten",
    hidden: tuple[int, ...] = (),
    dropout: float = 0.0,
    freeze: bool = False,
    standardize: bool = False,
    init: str = "keras",
    **encoder: object,
) -> dict:
    """A plain ``net`` spec (embedclf/models/classifier.py) with a test's few settings."""
    return {
        "rows": rows,
        "seq_len": seq_len,
        "classes": classes,
        "embedding": {"dim": dim, "freeze": freeze, "sparse": False},
        "encoder": {"kind": kind, **encoder},
        "head": {"hidden": list(hidden), "dropout": dropout, "standardize": standardize},
        "init": init,
    }


def table_rows(n: int, seed: int = 0, classes=("neg", "pos")) -> list[dict]:
    rng = random.Random(seed)
    return [{"text": review(rng, c), "label": c} for c in classes for _ in range(n)]


def write_table(path: Path, records: list[dict], fmt: str | None = None) -> Path:
    """``records`` as the format ``path``'s suffix names (csv, tsv, jsonl, parquet)."""
    fmt = fmt or path.suffix.lstrip(".")
    if fmt in ("csv", "tsv"):
        import csv

        with open(path, "w", newline="") as file:
            writer = csv.DictWriter(
                file, fieldnames=list(records[0]), delimiter="\t" if fmt == "tsv" else ","
            )
            writer.writeheader()
            writer.writerows(records)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    return path


def padded(dm, split: str):
    """A small split's rows padded to ``maxlen`` (``(n, maxlen)``), as flatten sees them."""
    return dm.featurizer.pad(dm.features(split))


def flat_rows(rows: list[list[int]], padding: str = "pre"):
    """``rows`` of ids as a flat batch (:class:`embedclf.data.batches.Tokens`)."""
    # imported here, as the other heavy imports of this file: collecting tests loads no torch
    import torch

    from embedclf.data.batches import Tokens

    lengths = torch.tensor([len(r) for r in rows])
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    flat = torch.tensor([i for r in rows for i in r], dtype=torch.int64)
    return Tokens(flat, offsets, padding)


def token_stores(cache: Path) -> list[Path]:
    """The token stores under a cache directory (finished ones: no staging siblings)."""
    return sorted(
        p for p in (cache / "tokens").glob("*") if p.is_dir() and not p.name.startswith(".")
    )
