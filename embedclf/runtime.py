"""Classify text without torch: ``python -m embedclf.runtime MODEL_DIR [FILE ...]``.

MODEL_DIR is what ``python -m embedclf.export CKPT MODEL_DIR --format onnx`` writes:
``model.onnx`` and ``encoder.json``. Texts are read one per line from each FILE, or from stdin,
and one JSON object is printed per text, the same as ``embedclf.predict`` prints::

    {"label": "pos", "probs": {"neg": 0.12, "pos": 0.88}}

This module imports numpy, onnxruntime and the project's tokenizer (``embedclf.text``) only,
never torch, Lightning or Hydra, so it starts in a fraction of a second. ``make
install-runtime`` adds onnxruntime; the package's own dependencies (torch among them) are
still installed with it, but never imported here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from embedclf.text.featurizer import TextFeaturizer
from embedclf.text.inputs import MAX_TEXT_BYTES, line_texts
from embedclf.util.cli import exit_on_user_error
from embedclf.util.errors import CheckpointError, DataError

ENCODER_FILE, MODEL_FILE = "encoder.json", "model.onnx"  # as embedclf.export writes them
ONNX_FORMAT = 1
BATCH_SIZE = 256


class Runtime:
    """An exported classifier: its text encoder and ONNX graph, ready to classify texts."""

    def __init__(self, model_dir: str | Path) -> None:
        try:
            import onnxruntime  # here, so that --help answers without it
        except ImportError:
            raise DataError("the runtime needs onnxruntime: make install-runtime") from None

        folder = Path(model_dir)
        encoder_file, model_file = folder / ENCODER_FILE, folder / MODEL_FILE
        if not (encoder_file.is_file() and model_file.is_file()):
            raise DataError(
                f"{folder} holds no exported model ({MODEL_FILE} and {ENCODER_FILE}); write one "
                "with python -m embedclf.export CKPT DIR --format onnx"
            )
        try:
            encoder = json.loads(encoder_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{encoder_file} is not readable JSON ({err})") from None
        if not isinstance(encoder, dict) or encoder.get("format") != ONNX_FORMAT:
            raise CheckpointError(f"{encoder_file} is not an export this version reads")
        self.featurizer = TextFeaturizer.from_state_dict(
            encoder.get("featurizer"), str(encoder_file)
        )
        self.classes = list(self.featurizer.classes)
        self.kind = str(encoder.get("encoder_kind"))
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's
        try:
            self.session = onnxruntime.InferenceSession(
                str(model_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own, unexported error types
            reason = " ".join(str(err).split())[:160]
            raise CheckpointError(f"{model_file} is not a readable ONNX model ({reason})") from None

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), classes)`` probabilities, float32, as the checkpoint gives them."""
        ids = self.featurizer.encode(list(texts)).astype(np.int64)
        return self.session.run(None, {"ids": ids})[0]

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """``{"label": class, "probs": {class: p}}`` for each text, in order."""
        if not texts:
            return []
        probs = self.probabilities(texts)
        best = probs.argmax(-1).tolist()  # ties go to the first class, as predict's do
        return [
            {"label": self.classes[i], "probs": dict(zip(self.classes, row, strict=True))}
            for i, row in zip(best, probs.tolist(), strict=True)
        ]


def main(argv: Sequence[str] | None = None) -> None:
    try:
        run(argv)
    except BrokenPipeError:  # the reader stopped early (| head): as for any Unix filter
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


@exit_on_user_error
def run(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m embedclf.runtime",
        description="Classify texts with an exported model (no torch); one JSON line per text.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a folder written by export")
    parser.add_argument("files", nargs="*", metavar="FILE", help="texts, one per line (stdin)")
    parser.add_argument("--max-bytes", type=int, default=MAX_TEXT_BYTES, metavar="N")
    args = parser.parse_args(argv)
    runtime = Runtime(args.model_dir)
    texts = (text for _, text in line_texts(args.files, args.max_bytes))
    count = 0
    while batch := list(islice(texts, BATCH_SIZE)):
        for result in runtime.predict(batch):
            print(json.dumps(result))
        count += len(batch)
    if not count:
        raise DataError(f"no text to classify in {', '.join(args.files) or 'stdin'}")


if __name__ == "__main__":
    main()
