"""Export a checkpoint's learned word vectors: ``python -m embedclf.export CKPT OUT.vec``.

Writes word2vec text format: a header ``N D``, then ``word v1 ... vD`` for each vocabulary
word in id order (the padding row and hashed n-gram rows are not words and are left out).
Values are written with 9 significant digits, enough to give back every float32 exactly, so
``embedclf.vectors.cache.load_vectors`` (and ``vectors.path=OUT.vec`` in a
training run) reads the very same vectors. The file is written atomically.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from embedclf.models.checkpoint import word_rows
from embedclf.util.cli import exit_on_user_error
from embedclf.util.errors import DataError
from embedclf.vectors.textformat import write_word2vec


def check_output(checkpoint_path: str | Path, out: Path, force: bool = False) -> None:
    """Refuse an output the write-then-rename would destroy or misuse: the checkpoint itself,
    any other checkpoint (unless ``force``), or anything that is not a regular file."""
    if not out.exists():
        return
    if not out.is_file():
        raise DataError(
            f"{out} exists and is not a regular file (a device, FIFO or folder); "
            "give the path of a file to write"
        )
    if out.resolve() == Path(checkpoint_path).resolve():
        raise DataError(f"{out} is the checkpoint being exported; give another output file")
    if not force and zipfile.is_zipfile(out):
        raise DataError(
            f"{out} exists and holds a checkpoint (or another zip archive); give another output "
            "file, or --force to replace it"
        )


def export_vectors(
    checkpoint_path: str | Path, out: str | Path, force: bool = False
) -> tuple[int, int]:
    """Write the checkpoint's word rows to ``out``; returns (words written, dimension)."""
    check_output(checkpoint_path, Path(out), force)
    words, matrix, _ = word_rows(str(checkpoint_path))
    try:
        written = write_word2vec(Path(out), words, matrix)
    except OSError as err:
        raise DataError(f"cannot write {out}: {err.strerror}; choose a writable path") from None
    if written < len(words):
        print(
            f"warning: {len(words) - written} words hold a space or line break and are left out",
            file=sys.stderr,
        )
    return written, int(matrix.shape[1])


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m embedclf.export",
        description="Write a checkpoint's word embedding as word2vec text (OUT.vec).",
    )
    parser.add_argument("checkpoint", help="a .ckpt file written by train.py")
    parser.add_argument("out", metavar="OUT.vec", help="the file to write")
    parser.add_argument("--force", action="store_true", help="replace an existing checkpoint")
    args = parser.parse_args(argv)
    count, dim = export_vectors(args.checkpoint, args.out, args.force)
    print(f"wrote {count} word vectors of {dim} dimensions to {args.out}")


if __name__ == "__main__":
    main()
