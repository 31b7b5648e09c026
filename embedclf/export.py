"""Export a checkpoint: ``python -m embedclf.export CKPT OUT [--format word2vec|onnx]``.

``word2vec`` (the default) writes the learned word vectors as word2vec text: a header ``N D``,
then ``word v1 ... vD`` for each vocabulary word in id order (the padding row and hashed
n-gram rows are not words and are left out). Values are written with 9 significant digits,
enough to give back every float32 exactly, so ``vectors.path=OUT.vec`` in a training run reads
the very same vectors. The file is written atomically.

``onnx`` writes the whole classifier for ``embedclf.runtime`` (numpy and onnxruntime, no
torch) into the directory OUT: ``model.onnx`` (``models/onnx.py``) and ``encoder.json``, the
checkpoint's text encoder as plain JSON (vocabulary, tokeniser, n-grams, padding, classes).
The directory is filled beside OUT and renamed into place. TorchScript is not offered: it is
deprecated in PyTorch 2, and ONNX runs every encoder kind without torch.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from embedclf.models.checkpoint import (
    featurizer_of,
    load_checkpoint,
    module_from_checkpoint,
    word_rows,
)
from embedclf.models.onnx import export_onnx as write_graph
from embedclf.models.onnx import touched_rows
from embedclf.models.packed_words import packed
from embedclf.models.recipe import FEATURIZER_KEY
from embedclf.runtime import ENCODER_FILE, MODEL_FILE, ONNX_FORMAT
from embedclf.training.checkpoints import write_checkpoint
from embedclf.util.cli import exit_on_user_error
from embedclf.util.errors import DataError
from embedclf.util.fileio import atomic_directory, write_synced
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


def export_onnx(
    checkpoint_path: str | Path, out: str | Path, force: bool = False, prune: bool = False
) -> float:
    """Write ``OUT/model.onnx`` and ``OUT/encoder.json``; returns the largest difference in a
    probability between the checkpoint and onnxruntime on the export's own check.

    ``prune``: only the embedding rows training updated are kept (every other id reads a zero
    row); the probabilities then differ where a text holds such ids, as fastText's
    ``quantize`` differs: the pruned graph is checked against itself in torch."""

    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise DataError(f"{out} exists and is not a directory; --format onnx writes a folder")
        held = {p.name for p in out.iterdir()}
        if held - {MODEL_FILE, ENCODER_FILE}:
            shown = ", ".join(sorted(held - {MODEL_FILE, ENCODER_FILE})[:5])
            raise DataError(
                f"{out} holds other files than an export ({shown}); give a new or empty folder"
            )
        if held and not force:
            raise DataError(f"{out} holds an export; give a new folder, or --force to replace it")
    checkpoint = load_checkpoint(checkpoint_path)
    where = f"checkpoint={checkpoint_path}"
    featurizer = featurizer_of(checkpoint, where)
    module = module_from_checkpoint(checkpoint, where)
    encoder = {
        "format": ONNX_FORMAT,
        "encoder_kind": module.hparams.net["encoder"]["kind"],
        "featurizer": featurizer.state_dict(),
    }
    # built beside OUT and renamed into place: a failed export leaves OUT as it was
    fresh = out.with_name(f".{out.name}.{secrets.token_hex(4)}.new")
    weight = module.net.embedding.weight
    keep = touched_rows(checkpoint, weight.shape[0]) if prune else None
    try:
        import onnx  # noqa: F401  (torch's exporter writes through it)
        import onnxruntime  # noqa: F401  (the export checks itself with it)
    except ImportError:
        raise DataError(
            "export --format onnx needs onnx and onnxruntime: make install-serve"
        ) from None
    with atomic_directory(fresh) as tmp:
        difference = write_graph(
            module.net, module.binary, featurizer.maxlen, tmp / MODEL_FILE, keep
        )
        # ASCII escapes: a word may hold a lone surrogate, which UTF-8 cannot encode
        text = json.dumps(encoder)
        write_synced(tmp / ENCODER_FILE, lambda file: file.write(text.encode()))
    if out.exists():
        shutil.rmtree(out)
    fresh.rename(out)
    return difference


INFERENCE_KEYS = ("state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch")


def export_checkpoint(checkpoint_path: str | Path, out: str | Path, force: bool = False) -> int:
    """Write an inference checkpoint: the weights, the network spec and the text encoder,
    without the optimiser's state, loops and callbacks (half or less of an Adagrad or Adam
    run's file). predict, evaluate and serve read it as they read the original; resuming
    training from it is not possible. Returns its size in bytes."""

    out = Path(out)
    check_output(checkpoint_path, out, force)
    checkpoint = load_checkpoint(checkpoint_path)
    slim = {key: checkpoint[key] for key in INFERENCE_KEYS if key in checkpoint}
    # checked before it is packed: a malformed one is refused in one line
    slim[FEATURIZER_KEY] = packed(
        featurizer_of(checkpoint, f"checkpoint={checkpoint_path}").state_dict()
    )
    try:
        write_checkpoint(slim, out)
    except OSError as err:
        raise DataError(f"cannot write {out}: {err.strerror}; choose a writable path") from None
    return out.stat().st_size


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m embedclf.export",
        description="Export a checkpoint: its word embedding as word2vec text (OUT.vec), or "
        "the whole classifier as ONNX for embedclf.runtime (a folder OUT).",
    )
    parser.add_argument("checkpoint", help="a .ckpt file written by train.py")
    parser.add_argument("out", metavar="OUT", help="the file (word2vec) or folder (onnx) to write")
    parser.add_argument(
        "--format",
        choices=("word2vec", "onnx", "checkpoint"),
        default="word2vec",
        help="word2vec: the word vectors (OUT.vec); onnx: the classifier for embedclf.runtime "
        "(a folder OUT); checkpoint: an inference checkpoint without optimiser state (OUT.ckpt)",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="onnx: keep only the embedding rows training updated (n-gram buckets mostly)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace an existing checkpoint or export folder"
    )
    args = parser.parse_args(argv)
    if args.prune and args.format != "onnx":
        parser.error("--prune applies to --format onnx")
    size = Path(args.checkpoint).stat().st_size if Path(args.checkpoint).is_file() else 0
    if args.format == "onnx":
        difference = export_onnx(args.checkpoint, args.out, args.force, args.prune)
        model = Path(args.out) / MODEL_FILE
        print(
            f"wrote {model} ({model.stat().st_size / 1e6:.1f} MB; the checkpoint "
            f"{size / 1e6:.1f} MB) and {ENCODER_FILE}; onnxruntime gives the "
            f"{'pruned ' if args.prune else ''}model's probabilities to {difference:.1g}"
        )
        return
    if args.format == "checkpoint":
        written = export_checkpoint(args.checkpoint, args.out, args.force)
        print(f"wrote {args.out}: {written / 1e6:.1f} MB (the checkpoint {size / 1e6:.1f} MB)")
        return
    count, dim = export_vectors(args.checkpoint, args.out, args.force)
    print(f"wrote {count} word vectors of {dim} dimensions to {args.out}")


if __name__ == "__main__":
    main()
