"""What ``data.vocab_from=train_rows`` costs beside Keras's ``train_file``: a data module's
``setup()`` and its first 20 training batches over a synthetic table with a 10% validation
carve, each mode in a fresh process (wall seconds and the growth of peak RSS over ``setup``),
the token store built once beforehand.

    python benchmarks/vocab_from.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from synthetic import Corpus, write

CHILD = """
import resource, sys, time
from embedclf.data.file_datamodules import TableDataModule
train, test, cache, vocab_from = sys.argv[1:]
data = TableDataModule(train=train, test=test, num_words=None, maxlen=400, val_samples=0.1,
                       vocab_from=vocab_from, cache_dir=cache)
data.prepare_data()  # the store is built: this finds it
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
data.setup("fit")
for i, _ in enumerate(data.train_dataloader()):
    if i == 19:
        break
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(time.perf_counter() - started, after - before)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        corpus = Corpus()
        train = write(corpus, where / "train.parquet", args.rows, "parquet")
        test = write(corpus, where / "test.parquet", 25_000, "parquet")
        files = [str(train), str(test), str(where / "cache")]
        # the store: built once, by the first child, outside the measured step
        subprocess.run([sys.executable, "-c", CHILD, *files, "train_file"], check=True)
        print(f"N={args.rows:,} rows, setup() + 20 training batches, a fresh process each:")
        figures = {}
        for mode in ("train_file", "train_rows"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, *files, mode],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            figures[mode] = (float(out[0]), float(out[1]))
            print(f"  {mode}: {figures[mode][0]:.1f} s, peak RSS +{figures[mode][1]:,.0f} MB")
        (rows_s, rows_mb), (file_s, file_mb) = figures["train_rows"], figures["train_file"]
        extra = rows_mb - file_mb
        print(f"  train_rows / train_file: {rows_s / file_s:.2f}x the time, {extra:+,.0f} MB")


if __name__ == "__main__":
    main()
