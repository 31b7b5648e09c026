"""The seed's own code: Chollet's Keras listings 6.5-6.16, in Keras 3 on the torch backend.

The README compares embedclf with what the book's code gives on the same data and machine.
This is that code, changed only where Keras 3 or the benchmark requires it:

* the texts come from ``peers_data`` (the archive the project reads), not ``os.listdir``;
* listing 6.5-6.7 used ``imdb.load_data``'s pre-tokenised ids; here, as in the project, the
  ``Tokenizer(num_words=10000)`` is fitted on the 25,000 training texts and 5,000 of them,
  after a seeded shuffle, are held out for validation;
* Keras 3 has no ``input_length``: the input shape is given by ``keras.Input``;
* Keras 3 keeps ``Tokenizer`` only in ``keras.src.legacy.preprocessing.text`` (3.15.1 here);
  ``keras.preprocessing.text`` is tried first for older Keras.

Keras is optional (``make install-keras``): it is imported inside the functions, with
``KERAS_BACKEND=torch`` set first, so this module imports without it.

    python benchmarks/keras_seed.py [--archive PATH] [--seed 0] [--experiment learned]
    python benchmarks/keras_seed.py --experiment glove [--glove glove.6B.50d.zip]
    python benchmarks/keras_seed.py --experiment scratch --embedding-dim 50
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

INSTALL_HINT = "the seed's Keras code needs Keras 3 (torch backend): run `make install-keras`"


def _keras() -> tuple[ModuleType, Any, Any, str]:
    """Import Keras on the torch backend; return it, Tokenizer, pad_sequences, where from."""
    os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from None
    if keras.backend.backend() != "torch":
        raise RuntimeError(
            f"Keras was already imported with the {keras.backend.backend()!r} backend; "
            "run this in a fresh process (KERAS_BACKEND=torch)"
        )
    try:
        from keras.preprocessing.text import Tokenizer  # Keras 2, tf.keras

        where = "keras.preprocessing.text"
    except ImportError:
        from keras.src.legacy.preprocessing.text import Tokenizer  # Keras 3

        where = "keras.src.legacy.preprocessing.text"
    from keras.utils import pad_sequences

    return keras, Tokenizer, pad_sequences, where


def _tokenized(
    Tokenizer: Any, pad_sequences: Any, train_texts, test_texts, max_words: int, maxlen: int
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Listing 6.8's tokenising: the Tokenizer fitted on the training texts, both padded."""
    tokenizer = Tokenizer(num_words=max_words)
    tokenizer.fit_on_texts(train_texts)
    data = pad_sequences(tokenizer.texts_to_sequences(train_texts), maxlen=maxlen)
    x_test = pad_sequences(tokenizer.texts_to_sequences(test_texts), maxlen=maxlen)
    return tokenizer, data, x_test


def _fit_and_score(
    model: Any,
    data: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    x_test: np.ndarray,
    test_labels: np.ndarray,
    epochs: int,
    batch_size: int,
) -> dict[str, Any]:
    """The book's compile/fit/evaluate on rows ``train`` and ``val`` of ``data``, timed."""
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])
    fit_started = time.perf_counter()
    history = model.fit(
        data[train],
        labels[train],
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(data[val], labels[val]),
        verbose=0,
    )
    fitted = time.perf_counter()
    y_test = np.asarray(test_labels, dtype="float32")
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=batch_size, verbose=0)
    return {
        "val_acc": float(history.history["val_acc"][-1]),
        "val_loss": float(history.history["val_loss"][-1]),
        "test_acc": float(test_acc),
        "test_loss": float(test_loss),
        "fit_seconds": fitted - fit_started,
        "evaluate_seconds": time.perf_counter() - fitted,
    }


def run_learned(
    train_texts: list[str],
    train_labels: np.ndarray,
    test_texts: list[str],
    test_labels: np.ndarray,
    *,
    seed: int = 0,
    max_words: int = 10000,
    maxlen: int = 20,
    embedding_dim: int = 8,
    validation_samples: int = 5000,
    epochs: int = 10,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Listings 6.5-6.7: an embedding learned with the task on the last 20 words."""
    started = time.perf_counter()
    keras, Tokenizer, pad_sequences, where = _keras()
    from keras import layers

    imported = time.perf_counter()
    _, data, x_test = _tokenized(
        Tokenizer, pad_sequences, train_texts, test_texts, max_words, maxlen
    )
    tokenized = time.perf_counter()

    labels = np.asarray(train_labels, dtype="float32")
    order = np.random.default_rng(seed).permutation(len(data))
    train, val = order[: len(data) - validation_samples], order[len(data) - validation_samples :]

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(maxlen,), dtype="int32"),
            layers.Embedding(max_words, embedding_dim),
            layers.Flatten(),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    scores = _fit_and_score(
        model, data, labels, train, val, x_test, test_labels, epochs, batch_size
    )
    return {
        **scores,
        "import_seconds": imported - started,
        "tokenize_seconds": tokenized - imported,
        "run_seconds": time.perf_counter() - started,
        "keras": keras.__version__,
        "tokenizer": where,
    }


def parse_glove(path: Path, member: str | None = None) -> dict[str, np.ndarray]:
    """Listing 6.10: read GloVe text line by line in plain Python (from a .zip member too)."""
    embeddings_index: dict[str, np.ndarray] = {}

    def read(lines: Any) -> None:
        for line in lines:
            values = line.split()
            embeddings_index[values[0]] = np.asarray(values[1:], dtype="float32")

    path = Path(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            name = member or next(n for n in z.namelist() if n.endswith(".txt"))
            with z.open(name) as f:
                read(line.decode("utf-8") for line in f)
    else:
        with path.open(encoding="utf-8") as f:
            read(f)
    return embeddings_index


def run_glove(
    train_texts: list[str],
    train_labels: np.ndarray,
    test_texts: list[str],
    test_labels: np.ndarray,
    *,
    glove_path: Path | None,
    glove_member: str | None = None,
    embedding_dim: int | None = None,
    seed: int = 0,
    max_words: int = 10000,
    maxlen: int = 100,
    training_samples: int = 200,
    validation_samples: int = 10000,
    epochs: int = 10,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Listings 6.8-6.15 (frozen GloVe, 200 reviews); ``glove_path=None``: 6.16, no GloVe.

    The shuffle is ``np.random.default_rng(seed).permutation`` (the book's unseeded
    ``np.random.shuffle``, seeded as the project seeds its split). Without GloVe
    ``embedding_dim`` defaults to the book's 100.
    """
    started = time.perf_counter()
    keras, Tokenizer, pad_sequences, where = _keras()
    from keras import layers

    imported = time.perf_counter()
    tokenizer, data, x_test = _tokenized(
        Tokenizer, pad_sequences, train_texts, test_texts, max_words, maxlen
    )
    tokenized = time.perf_counter()

    labels = np.asarray(train_labels, dtype="float32")
    indices = np.random.default_rng(seed).permutation(len(data))
    train = indices[:training_samples]
    val = indices[training_samples : training_samples + validation_samples]

    embedding_matrix = None
    if glove_path is not None:
        embeddings_index = parse_glove(glove_path, glove_member)
        dim = len(next(iter(embeddings_index.values())))
        if embedding_dim not in (None, dim):
            raise ValueError(f"{glove_path} holds {dim}-d vectors, embedding_dim={embedding_dim}")
        embedding_dim = dim
        embedding_matrix = np.zeros((max_words, embedding_dim), dtype="float32")
        for word, i in tokenizer.word_index.items():
            if i < max_words:
                vector = embeddings_index.get(word)
                if vector is not None:
                    embedding_matrix[i] = vector  # words not found stay all zeros
    embedding_dim = embedding_dim or 100
    vectors_loaded = time.perf_counter()

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(maxlen,), dtype="int32"),
            layers.Embedding(max_words, embedding_dim),
            layers.Flatten(),
            layers.Dense(32, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    if embedding_matrix is not None:
        model.layers[0].set_weights([embedding_matrix])
        model.layers[0].trainable = False
    scores = _fit_and_score(
        model, data, labels, train, val, x_test, test_labels, epochs, batch_size
    )
    return {
        **scores,
        "embedding_dim": embedding_dim,
        "pretrained": embedding_matrix is not None,
        "import_seconds": imported - started,
        "tokenize_seconds": tokenized - imported,
        "vectors_seconds": vectors_loaded - tokenized,
        "run_seconds": time.perf_counter() - started,
        "keras": keras.__version__,
        "tokenizer": where,
    }


LISTINGS = {"learned": "listing 6.5-6.7", "glove": "listings 6.8-6.15", "scratch": "listing 6.16"}


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=None, help="aclImdb_v1.tar.gz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--experiment", choices=sorted(LISTINGS), default="learned")
    parser.add_argument("--glove", type=Path, default=None, help="GloVe .txt or .zip (glove)")
    parser.add_argument("--embedding-dim", type=int, default=None, help="scratch: default 100")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peers_data import SHARED_DATA, load_imdb

    data = load_imdb(args.archive)
    loaded = time.perf_counter()
    texts = (data.train_texts, data.train_labels, data.test_texts, data.test_labels)
    if args.experiment == "learned":
        r = run_learned(*texts, seed=args.seed)
    else:
        glove = args.glove or SHARED_DATA / "glove.6B.50d.zip"
        chosen = glove if args.experiment == "glove" else None
        r = run_glove(*texts, glove_path=chosen, embedding_dim=args.embedding_dim, seed=args.seed)
    whole = time.perf_counter() - started
    print(
        f"Keras {r['keras']} (torch backend, Tokenizer from {r['tokenizer']}), "
        f"{LISTINGS[args.experiment]}, seed {args.seed}: val_acc {r['val_acc']:.4f}  "
        f"test_acc {r['test_acc']:.4f}\n"
        f"  reading the archive {loaded - started:.1f} s  import {r['import_seconds']:.1f} s  "
        f"tokenisation {r['tokenize_seconds']:.1f} s  training (fit) {r['fit_seconds']:.1f} s  "
        f"test evaluation {r['evaluate_seconds']:.1f} s  whole run {whole:.1f} s"
    )


if __name__ == "__main__":
    main()
