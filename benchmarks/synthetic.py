"""A seeded synthetic corpus for the scale benchmark: N labelled documents as CSV or Parquet.

    python benchmarks/synthetic.py --rows 250000 --format parquet --out DIR [--classes 2]

What it is like, so that reading, tokenising and training cost what real reviews cost:
- a Zipfian vocabulary (exponent 1.05) of ``--vocab`` words (500,000 by default), each word
  a few lowercase letters;
- review-like lengths: log-normal, mean about 100 words, a long tail (a few over 1,000);
- 2 or 5 classes with a learnable but noisy signal: each class has its own cue words (drawn
  from the middle of the vocabulary, a few per hundred words) and its own ordered bigrams of
  common words (``a b`` for one class, ``b a`` for another: only word order tells them
  apart), and 10% of the labels are then replaced by a random class, so no model reaches 1.0;
- optionally ``--unlabelled`` more documents without labels (a ``text`` column only), for
  pretraining.

Files hold a ``text`` and a ``label`` column (class names ``c0``, ``c1``, ...). Documents are
made and written 50,000 at a time, so memory stays flat whatever N is.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

CHUNK = 50_000
ZIPF = 1.05
MEAN_WORDS = 100
CUES_PER_CLASS = 400
BIGRAMS_PER_CLASS = 60
CUE_RATE = 0.03  # share of a document's words replaced by its class's cue words
BIGRAM_RATE = 0.015  # share of positions where a class bigram is written
LABEL_NOISE = 0.10


def word_list(size: int) -> list[str]:
    """``size`` distinct lowercase words, shortest for the most frequent ranks."""
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    words = []
    for rank in range(size):
        n, chars = rank, []
        while True:
            chars.append(letters[n % 26])
            n = n // 26 - 1
            if n < 0:
                break
        words.append("".join(chars))
    return words


class Corpus:
    """The generator's fixed parts (vocabulary, frequencies, class cues), from one seed."""

    def __init__(self, *, vocab: int = 500_000, classes: int = 2, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.classes = classes
        self.words = word_list(vocab)
        weights = 1.0 / np.arange(1, vocab + 1) ** ZIPF
        self.cdf = np.cumsum(weights / weights.sum())
        middle = np.arange(200, min(vocab, 50_000))
        self.cues = [self.rng.choice(middle, CUES_PER_CLASS, replace=False) for _ in range(classes)]
        # classes 2k and 2k + 1 write the same pairs of common words, in opposite orders
        common = [
            self.rng.choice(np.arange(30, 600), (BIGRAMS_PER_CLASS, 2))
            for _ in range((classes + 1) // 2)
        ]
        self.bigrams = [common[c // 2][:, :: 1 - 2 * (c % 2)] for c in range(classes)]

    def chunk(self, n: int, labelled: bool = True) -> tuple[list[str], np.ndarray]:
        rng = self.rng
        lengths = np.maximum(1, rng.lognormal(np.log(MEAN_WORDS) - 0.32, 0.8, n).astype(np.int64))
        labels = rng.integers(0, self.classes, n)
        total = int(lengths.sum())
        ids = np.searchsorted(self.cdf, rng.random(total)).clip(max=len(self.words) - 1)
        doc = np.repeat(np.arange(n), lengths)
        cue = rng.random(total) < CUE_RATE
        cue_of = np.stack(self.cues)[labels[doc[cue]], rng.integers(0, CUES_PER_CLASS, cue.sum())]
        ids[cue] = cue_of
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        inside = np.arange(total) + 1 < np.repeat(starts + lengths, lengths)  # a next word
        pair = (rng.random(total) < BIGRAM_RATE) & inside
        which = rng.integers(0, BIGRAMS_PER_CLASS, pair.sum())
        chosen = np.stack(self.bigrams)[labels[doc[pair]], which]
        where = np.flatnonzero(pair)
        ids[where], ids[where + 1] = chosen[:, 0], chosen[:, 1]
        noisy = rng.random(n) < LABEL_NOISE
        labels[noisy] = rng.integers(0, self.classes, noisy.sum())
        words = self.words
        texts = [" ".join(map(words.__getitem__, part)) for part in np.split(ids, starts[1:])]
        return texts, labels if labelled else np.zeros(0, np.int64)

    def tables(self, rows: int, labelled: bool = True) -> Iterator[pa.Table]:
        for start in range(0, rows, CHUNK):
            texts, labels = self.chunk(min(CHUNK, rows - start), labelled)
            columns = {"text": pa.array(texts, pa.string())}
            if labelled:
                columns["label"] = pa.array([f"c{v}" for v in labels.tolist()], pa.string())
            yield pa.table(columns)


def write(corpus: Corpus, path: Path, rows: int, fmt: str, labelled: bool = True) -> Path:
    """Write ``rows`` documents to ``path`` as ``fmt`` (csv or parquet), a chunk at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for table in corpus.tables(rows, labelled):
            if writer is None:
                writer = (
                    pq.ParquetWriter(path, table.schema)
                    if fmt == "parquet"
                    else pa_csv.CSVWriter(path, table.schema)
                )
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--test-rows", type=int, default=25_000)
    parser.add_argument("--unlabelled", type=int, default=0)
    parser.add_argument("--classes", type=int, default=2, choices=(2, 5))
    parser.add_argument("--vocab", type=int, default=500_000)
    parser.add_argument("--format", default="parquet", choices=("csv", "parquet"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    corpus = Corpus(vocab=args.vocab, classes=args.classes, seed=args.seed)
    suffix = args.format
    print(write(corpus, args.out / f"train.{suffix}", args.rows, args.format))
    print(write(corpus, args.out / f"test.{suffix}", args.test_rows, args.format))
    if args.unlabelled:
        print(write(corpus, args.out / f"unlabelled.{suffix}", args.unlabelled, args.format, False))


if __name__ == "__main__":
    main()
