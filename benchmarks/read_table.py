"""Reading a table of N short labelled rows: embedclf's reader against the stdlib csv module and
pyarrow's own reader, each in a fresh process (wall seconds and peak RSS).

    python benchmarks/read_table.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [f"w{i}" for i in range(5000)]

READERS = {
    "embedclf table_blocks": (
        "from pathlib import Path\n"
        "from embedclf.data.readers.table import Columns, table_blocks\n"
        "columns = Columns(text=('text',), label='label')\n"
        "texts, labels = [], []\n"
        "for block_texts, block_labels in table_blocks(Path(PATH), 'csv', columns):\n"
        "    texts += block_texts\n"
        "    labels += block_labels\n"
        "assert len(texts) == ROWS\n"
    ),
    "stdlib csv": (
        "import csv\n"
        "with open(PATH, newline='') as f:\n"
        "    rows = [(r['text'], r['label']) for r in csv.DictReader(f)]\n"
        "assert len(rows) == ROWS\n"
    ),
    "pyarrow.csv.read_csv": (
        "import pyarrow.csv as c\nt = c.read_csv(PATH)\nassert t.num_rows == ROWS\n"
    ),
}


def write_rows(path: Path, rows: int) -> None:
    rng = random.Random(0)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        for _ in range(rows):
            text = " ".join(rng.choices(WORDS, k=rng.randint(5, 20)))
            writer.writerow([text, rng.choice(("pos", "neg"))])


def measure(code: str, path: Path, rows: int) -> tuple[float, float]:
    """Wall seconds (imports excluded) and peak RSS in MB of ``code`` in a fresh Python."""
    script = (
        "import time, resource, sys\n"
        + "import pyarrow.csv, csv\nfrom embedclf.data.readers import table\n"
        + f"PATH, ROWS = {str(path)!r}, {rows}\n"
        + "start = time.perf_counter()\n"
        + code
        + "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        + "print(time.perf_counter() - start, peak)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    seconds, peak_kb = out.stdout.split()[-2:]
    return float(seconds), int(peak_kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.csv"
        started = time.perf_counter()
        write_rows(path, args.rows)
        size = path.stat().st_size / 1e6
        print(
            f"{args.rows:,} rows, {size:.0f} MB, written in {time.perf_counter() - started:.1f} s"
        )
        for name, code in READERS.items():
            seconds, peak = measure(code, path, args.rows)
            print(f"  {name:22s} {seconds:6.2f} s   peak RSS {peak:5.0f} MB (imports included)")


if __name__ == "__main__":
    main()
