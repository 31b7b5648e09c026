"""Measure the figures of the README's results table on the real data in ../shared/data.

    python benchmarks/run.py [--data-dir DIR] [--only learned,glove,beyond,vectors]

Runs train.py as a user would (a fresh process per run) with data and caches in a temporary
directory, so the first run pays for extraction and tokenising and the second is warm.
Prints one table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def train(args: list[str], env: dict[str, str], run_dir: Path) -> tuple[float, list[dict]]:
    """Run train.py; return wall seconds and the metrics.json of each job."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    found = sorted(run_dir.rglob("metrics.json"), key=lambda p: str(p))
    return wall, [json.loads(p.read_text()) for p in found]


def bench_learned(env: dict[str, str], tmp: Path) -> None:
    for label in ("cold (extract + tokenise)", "warm (cached ids)"):
        run = tmp / f"learned-{label[:4]}"
        wall, [m] = train(["experiment=seed_learned", "seed=0", f"hydra.run.dir={run}"], env, run)
        print(
            f"seed_learned seed=0 {label:27s} wall {wall:6.1f} s  fit {m['fit_seconds']:5.1f} s"
            f"  prepare {m['prepare_seconds']:5.2f} s  val_acc {m['val_acc']:.4f}"
            f"  test_acc {m['test_acc']:.4f}"
        )
    print(
        "  Keras seed code, same machine: whole run ~24 s, training 14.9 s, val 0.759, test 0.762"
    )


def bench_glove(env: dict[str, str], tmp: Path) -> None:
    for experiment, choice in (
        ("seed_glove", "vectors=glove_6b_50d"),
        ("seed_scratch", "model.embedding_dim=50"),
    ):
        sweep = tmp / experiment
        wall, runs = train(
            ["-m", f"experiment={experiment}", choice, "seed=0,1,2", f"hydra.sweep.dir={sweep}"],
            env,
            sweep,
        )
        tests = [r["test_acc"] for r in runs]
        vals = [r["val_acc"] for r in runs]
        print(
            f"{experiment:12s} {choice:24s} seeds 0,1,2  test "
            f"{' / '.join(f'{t:.3f}' for t in tests)}  mean {statistics.mean(tests):.3f}  "
            f"val mean {statistics.mean(vals):.3f}  ({wall:.0f} s for 3 runs)"
        )
    print(
        "  Keras seed code, same machine: GloVe-50d test 0.557 / 0.584 / 0.569, "
        "scratch 0.529 / 0.523 / 0.516"
    )


def bench_beyond(env: dict[str, str], tmp: Path) -> None:
    """The experiments that go past the seed, with its data and budget."""
    run = tmp / "bag_learned"
    wall, [m] = train(["experiment=bag_learned", "seed=0", f"hydra.run.dir={run}"], env, run)
    print(
        f"bag_learned  seed=0                           val_acc {m['val_acc']:.4f}  "
        f"test_acc {m['test_acc']:.4f}  fit {m['fit_seconds']:.1f} s  wall {wall:.1f} s"
    )
    sweep = tmp / "bag_glove"
    wall, runs = train(
        [
            "-m",
            "experiment=bag_glove",
            "vectors=glove_6b_50d",
            "seed=0,1,2",
            f"hydra.sweep.dir={sweep}",
        ],
        env,
        sweep,
    )
    tests = [r["test_acc"] for r in runs]
    print(
        f"bag_glove    vectors=glove_6b_50d     seeds 0,1,2  test "
        f"{' / '.join(f'{t:.3f}' for t in tests)}  mean {statistics.mean(tests):.3f}  "
        f"({wall:.0f} s for 3 runs)"
    )


def bench_vectors(tmp: Path) -> None:
    code = (
        "import time, sys; from pathlib import Path; t = time.perf_counter();"
        "from embedclf.vectors import load_vectors;"
        "v = load_vectors(Path(sys.argv[1]), member='glove.6B.50d.txt',"
        "                 cache_dir=Path(sys.argv[2]));"
        "print(f'{time.perf_counter() - t:.3f} {len(v.words)} {v.dim}')"
    )
    cache = tmp / "vectors-cache"
    for label in ("first load (zip -> binary cache)", "cached load (fresh process)"):
        out = subprocess.run(
            [sys.executable, "-c", code, str(SHARED / "glove.6B.50d.zip"), str(cache)],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        )
        seconds, words, dim = out.stdout.split()
        print(f"glove.6B.50d {label:34s} {float(seconds):6.3f} s  ({words} words x {dim})")
    print("  plain-Python parse of the text file (seed code): ~2.3 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED)
    parser.add_argument("--only", default="learned,glove,beyond,vectors")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="embedclf-bench-") as name:
        tmp = Path(name)
        env = dict(
            os.environ, EMBEDCLF_DATA_DIR=str(args.data_dir), EMBEDCLF_CACHE_DIR=str(tmp / "cache")
        )
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, data {args.data_dir}")
        if "learned" in parts:
            bench_learned(env, tmp)
        if "glove" in parts:
            bench_glove(env, tmp)
        if "beyond" in parts:
            bench_beyond(env, tmp)
        if "vectors" in parts:
            bench_vectors(tmp)


if __name__ == "__main__":
    main()
