"""``make bench ONLY=scale``: every stage of a run at growing N, and the fastText race.

    python benchmarks/scale.py [--sizes 25000,250000,1000000,3600000] [--race N] [--out DIR]
    python benchmarks/scale.py --sizes "" --race 0    # the fastText race on IMDB alone

On the seeded synthetic corpus of ``benchmarks/synthetic.py`` (Parquet, and CSV for reading),
read through ``data=table`` as a user would (a fresh process per stage), at each N:

- read + tokenise: ``python -m embedclf.prepare`` into an empty cache (Parquet, then CSV);
- one epoch of ``experiment=ngram`` and of ``experiment=bag_learned`` (``fit_seconds``);
- ``python -m embedclf.predict`` on 100,000 documents (ngram's checkpoint);
- ``python -m embedclf.pretrain`` (word2vec, 1 epoch, 50-d) on N/10 unlabelled documents
  and the training rows.

Each stage prints wall seconds, seconds per 1,000 documents and the peak RSS of its process
(``os.wait4``'s ``ru_maxrss``), then the targets: seconds per 1,000 documents at the largest
N within 1.25x of the figure at 250k; peak RSS of ngram (tokenising, then training) at 3.6M
under 4 GB; peak RSS at 1M under 2x that at 250k. ``scale.png`` plots seconds and RSS against
N (log-log). Then the fastText race (``make install-bench``), on the 1M set and on IMDB:
experiment=ngram (3 epochs) against fastText ``train_supervised`` with the same features
(words + bigrams, 2^21 buckets, dim 10, lr 0.5, 3 epochs, 2 threads).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import Corpus, write  # noqa: E402

SIZES = (25_000, 250_000, 1_000_000, 3_600_000)
PREDICT_ROWS = 100_000
TEST_ROWS = 25_000
# experiment=ngram's Adagrad rate on the synthetic set, chosen on validation as a user would
# (train.py experiment=ngram data=table ... data.val_samples=0.1 model.optimizer.lr=..., on
# the 1M set: val 0.8065 at 0.5, 0.8969 at 0.1, 0.8986 at 0.05, 0.8984 at 0.02); the 0.5 chosen
# on IMDB memorises the synthetic set's 10% random labels. fastText keeps lr 0.5 (its val on
# the same carve: see the README).
SYNTHETIC_LR = 0.05
QUIET = ["trainer.enable_progress_bar=false", "plot_curves=false", "projector_words=0"]
STAGES = (
    "read + tokenise (parquet)",
    "read + tokenise (csv)",
    "ngram, 1 epoch",
    "bag_learned, 1 epoch",
    "predict 100k",
    "pretrain (word2vec)",
)


def line(text: str = "") -> None:
    print(text, flush=True)


# A process that only imports what train.py imports, as train.py does: the race's floor
STACK_ONLY = (
    "from embedclf.util.startup import quick_imports\n"
    "with quick_imports():\n"
    "    import embedclf.training.run\n"
)

# Runs the command and writes its peak RSS (KB) to a file. A small process of its own: a
# child started from the benchmark itself would report the benchmark's own memory as well
# (Linux keeps the high-water mark of the memory a vfork()ed child shared before exec).
RSS_WRAPPER = (
    "import os, resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "open(sys.argv[1], 'w').write(str(usage))\n"
    "sys.exit(code)\n"
)


def measured(command: list[str], env: dict[str, str], stdout: Any = None) -> tuple[float, float]:
    """Run ``command``; its wall seconds and peak RSS in MB (its own ``ru_maxrss``)."""
    with tempfile.NamedTemporaryFile(prefix="rss-", delete=False) as note:
        rss_file = Path(note.name)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, str(rss_file), *command],
        cwd=REPO,
        env=env,
        stdout=stdout or subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wall = time.perf_counter() - started
    if done.returncode:
        tail = done.stderr.decode(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")
    rss = int(rss_file.read_text() or 0) / 1024
    rss_file.unlink()
    return wall, rss


def data_args(files: dict[str, Path]) -> list[str]:
    return ["data=table", f"data.train={files['train']}", f"data.test={files['test']}"]


def metrics_of(run: Path) -> dict[str, Any]:
    return json.loads((run / "metrics.json").read_text())


def stages_at(n: int, tmp: Path, corpus: Corpus, env: dict[str, str]) -> dict[str, dict]:
    """Every stage at ``n`` documents: {stage: {seconds, rss, ...}}."""
    where = tmp / f"n{n}"
    started = time.perf_counter()
    files = {
        fmt: {
            "train": write(corpus, where / f"train.{fmt}", n, fmt),
            "test": write(corpus, where / f"test.{fmt}", TEST_ROWS, fmt),
        }
        for fmt in ("parquet", "csv")
    }
    unlabelled = write(corpus, where / "unlabelled.parquet", max(n // 10, 1000), "parquet", False)
    line(f"  N={n:,}: corpus written in {time.perf_counter() - started:.0f} s")
    out: dict[str, dict] = {}
    cache = {fmt: where / f"cache-{fmt}" for fmt in files}
    for fmt in ("parquet", "csv"):
        run_env = {**env, "EMBEDCLF_CACHE_DIR": str(cache[fmt])}
        command = [sys.executable, "-m", "embedclf.prepare", "experiment=ngram"]
        wall, rss = measured([*command, *data_args(files[fmt])], run_env)
        out[f"read + tokenise ({fmt})"] = {"seconds": wall, "rss": rss}
    run_env = {**env, "EMBEDCLF_CACHE_DIR": str(cache["parquet"])}
    for experiment in ("ngram", "bag_learned"):
        run = where / experiment
        command = [
            sys.executable,
            "train.py",
            f"experiment={experiment}",
            *data_args(files["parquet"]),
            "trainer.max_epochs=1",
            f"hydra.run.dir={run}",
            *QUIET,
        ]
        wall, rss = measured(command, run_env)
        m = metrics_of(run)
        out[f"{experiment}, 1 epoch"] = {
            "seconds": m["fit_seconds"],
            "wall": wall,
            "rss": rss,
            "test_acc": m["test_acc"],
        }
    ckpt = metrics_of(where / "ngram")["checkpoint"]
    predict = write(corpus, where / "predict.parquet", PREDICT_ROWS, "parquet", False)
    with open(where / "predictions.jsonl", "wb") as sink:
        command = [sys.executable, "-m", "embedclf.predict", ckpt, "--table", str(predict)]
        wall, rss = measured(command, env, stdout=sink)
    out["predict 100k"] = {"seconds": wall, "rss": rss, "docs": PREDICT_ROWS}
    command = [
        sys.executable,
        "-m",
        "embedclf.pretrain",
        *data_args(files["parquet"]),
        f"data.unlabelled={unlabelled}",
        "vectors.pretrain.epochs=1",
        "vectors.pretrain.vector_size=50",
    ]
    wall, rss = measured(command, run_env)
    out["pretrain (word2vec)"] = {"seconds": wall, "rss": rss, "docs": n + max(n // 10, 1000)}
    for stage, figures in out.items():
        docs = figures.get("docs", n)
        figures["per_1k"] = figures["seconds"] / docs * 1000
        extra = f", test_acc {figures['test_acc']:.4f}" if "test_acc" in figures else ""
        line(
            f"    {stage:28s} {figures['seconds']:8.1f} s  {figures['per_1k']:7.3f} s/1k docs  "
            f"peak RSS {figures['rss']:7,.0f} MB{extra}"
        )
    return out


def report(results: dict[int, dict[str, dict]]) -> None:
    sizes = sorted(results)
    line("== scale: seconds per 1,000 documents (peak RSS, MB)")
    line("  " + f"{'stage':28s}" + "".join(f"{f'N={n:,}':>24s}" for n in sizes))
    for stage in STAGES:
        cells = [
            f"{results[n][stage]['per_1k']:9.3f} ({results[n][stage]['rss']:6,.0f})" for n in sizes
        ]
        line("  " + f"{stage:28s}" + "".join(f"{c:>24s}" for c in cells))
    base = 250_000 if 250_000 in results else sizes[0]
    top = sizes[-1]
    if top != base:
        for stage in STAGES:
            value = results[top][stage]["per_1k"] / results[base][stage]["per_1k"]
            verdict = "met" if value <= 1.25 else "NOT met"
            line(
                f"  linear, {stage}: s/1k at N={top:,} / at N={base:,} = {value:.2f} "
                f"(<= 1.25 {verdict})"
            )
    ngram_rss = max(
        results[top]["read + tokenise (parquet)"]["rss"], results[top]["ngram, 1 epoch"]["rss"]
    )
    line(
        f"  ngram peak RSS at N={top:,}, tokenising then training (the larger of the two "
        f"processes): {ngram_rss:,.0f} MB (<= 4,096 {'met' if ngram_rss <= 4096 else 'NOT met'}"
        f"{'' if top >= 3_600_000 else '; the target is for N=3.6M'})"
    )
    if 1_000_000 in results and 250_000 in results:
        for stage in STAGES:
            value = results[1_000_000][stage]["rss"] / results[250_000][stage]["rss"]
            verdict = "met" if value <= 2 else "NOT met"
            line(f"  RSS at 1M / at 250k, {stage}: {value:.2f} (<= 2 {verdict})")


def plot(results: dict[int, dict[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for stage in STAGES:
        left.plot(sizes, [results[n][stage]["seconds"] for n in sizes], marker="o", label=stage)
        right.plot(sizes, [results[n][stage]["rss"] for n in sizes], marker="o", label=stage)
    for axis, what in ((left, "seconds"), (right, "peak RSS (MB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("documents (N)")
        axis.set_ylabel(what)
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    fig.suptitle("embedclf at scale: synthetic corpus through data=table (2-core CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    line(f"  plot: {path}")


def race(tmp: Path, corpus: Corpus, env: dict[str, str], n: int, archive: Path | None) -> None:
    """experiment=ngram (3 epochs) against fastText with the same features, same run."""
    try:
        import baselines
    except ImportError as err:
        line(f"  fastText race: skipped ({err})")
        return
    where = tmp / f"n{n}"
    sets: list[tuple[str, list[str], Path]] = []
    if (where / "train.parquet").exists():  # its store is built: the stages' cache
        files = {"train": where / "train.parquet", "test": where / "test.parquet"}
        args = [*data_args(files), f"model.optimizer.lr={SYNTHETIC_LR}"]
        sets.append((f"synthetic N={n:,}", args, where / "cache-parquet"))
    if archive is not None and archive.exists():
        sets.append(("IMDB 25k/25k", [], tmp / "imdb-cache"))
    else:
        line(f"  fastText race on IMDB: skipped (no archive at {archive}; give --archive)")
    for name, args, cache in sets:
        line(f"== fastText race: {name}")
        run_env = {**env, "EMBEDCLF_CACHE_DIR": str(cache)}

        def ngram(run: Path, args: list[str] = args, run_env: dict = run_env):
            command = [sys.executable, "train.py", "experiment=ngram", *args, *QUIET]
            return measured([*command, f"hydra.run.dir={run}"], run_env)

        if not cache.exists():
            ngram(tmp / f"race-cold-{len(args)}")  # builds the store: not timed
        warm = tmp / f"race-warm-{len(args)}"
        wall, rss = ngram(warm)
        m = metrics_of(warm)
        texts = _texts_of(args, archive)
        ft = baselines.fasttext_as_ngram(*texts)
        from embedclf.predict import DEFAULT_BATCH_SIZE, Predictor, batched

        predictor = Predictor(m["checkpoint"])  # loaded first, as fastText's model is
        started = time.perf_counter()
        for _ in predictor.probabilities_of(batched(texts[2], DEFAULT_BATCH_SIZE)):
            pass
        ours_predict = time.perf_counter() - started
        line(
            f"  embedclf ngram: fit {m['fit_seconds']:.1f} s, whole warm command {wall:.1f} s, "
            f"test_acc {m['test_acc']:.4f}, peak RSS {rss:,.0f} MB"
        )
        line(
            f"  {ft['name']}: train_supervised {ft['fit_seconds']:.1f} s, predict "
            f"{ft['predict_seconds']:.1f} s, test_acc {ft['test_acc']:.4f}"
        )
        # what the whole command cannot go under: a process that only imports the stack
        # train.py imports (torch, Lightning, Hydra), as train.py does, and exits
        stack = min(measured([sys.executable, "-c", STACK_ONLY], run_env)[0] for _ in range(3))
        peer = ft["fit_seconds"] + ft["predict_seconds"]
        line(
            f"  the stack's import and exit alone (best of 3): {stack:.1f} s, "
            f"{stack / peer:.2f}x fastText's train + predict; with the fit: "
            f"{(stack + m['fit_seconds']) / peer:.2f}x; the rest of the command "
            f"(data, NB weights, model, scoring, files): {wall - stack - m['fit_seconds']:.1f} s"
        )
        throughput = ft["predict_seconds"] / ours_predict  # same texts: a ratio of rates
        verdicts = (
            ("fit, ngram / fastText", m["fit_seconds"] / ft["fit_seconds"], "<=", 1.0),
            (
                "whole warm command / fastText train + predict",
                wall / peer,
                "<=",
                1.5,
            ),
            (f"predict throughput, ours / fastText's ({ours_predict:.1f} s)", throughput, ">=", 1),
            ("test accuracy, ngram - fastText", m["test_acc"] - ft["test_acc"], ">=", 0.0),
        )
        for what, value, op, target in verdicts:
            met = value <= target if op == "<=" else value >= target
            line(f"  {what}: {value:.3f} ({op} {target:g} {'met' if met else 'NOT met'})")


def _texts_of(args: list[str], archive: Path | None):
    import numpy as np
    import pyarrow.parquet as pq

    if not args:
        from peers_data import load_imdb

        data = load_imdb(archive)
        return data.train_texts, data.train_labels, data.test_texts, data.test_labels
    paths = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if a.startswith("data.")}
    out = []
    for split in ("data.train", "data.test"):
        table = pq.read_table(paths[split])
        labels = np.array([int(v[1:]) for v in table.column("label").to_pylist()])
        out += [table.column("text").to_pylist(), labels]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument(
        "--race", type=int, default=1_000_000, help="the synthetic N to race at (0: no race)"
    )
    parser.add_argument(
        "--archive", type=Path, default=REPO.parent / "shared/data/aclImdb_v1.tar.gz"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    env = dict(os.environ, PYTHONWARNINGS="ignore", EMBEDCLF_DATA_DIR=str(args.archive.parent))
    line(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="embedclf-scale-") as name:
        tmp = Path(name)
        corpus = Corpus(seed=0)
        results = {}
        for n in sizes:
            results[n] = stages_at(n, tmp, corpus, env)
        if sizes:
            report(results)
        if len(results) > 1:  # a line per stage; one size would replace the plot with points
            args.out.mkdir(parents=True, exist_ok=True)
            plot(results, args.out / "scale.png")
        if args.race or not sizes:  # no sizes: IMDB's race alone
            n = args.race if args.race in sizes or not sizes else sizes[-1]
            race(tmp, corpus, env, n, args.archive)


if __name__ == "__main__":
    main()
