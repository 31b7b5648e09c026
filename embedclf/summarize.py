"""Compare the runs of a sweep: ``python -m embedclf.summarize DIR [--metric test_acc]``.

Writes ``summary.csv``, ``summary_groups.csv``, ``summary.md`` and ``summary.png`` into
``DIR`` (see ``embedclf/runs/summary.py``) and prints the markdown tables. The sweep callback
(``embedclf/runs/sweeps.py``) does the same at the end of every multirun.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from embedclf.runs.summary import SummaryError, summarize


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m embedclf.summarize",
        description="Tables and a plot comparing the runs of a sweep (a multirun directory).",
    )
    parser.add_argument("directory", type=Path, help="a multirun directory (or any holding runs)")
    parser.add_argument(
        "--metric", default="test_acc", help="metrics.json key to plot (default: test_acc)"
    )
    args = parser.parse_args(argv)
    try:
        summary = summarize(args.directory, args.metric)
    except SummaryError as err:
        # argparse's convention: bad command-line input exits with status 2
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary.markdown, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
