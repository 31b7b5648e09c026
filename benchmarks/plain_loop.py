"""The floor a Lightning run is compared with: seed_learned's training as a plain PyTorch loop.

The same work as ``python train.py experiment=seed_learned`` does while fitting (Chollet 6.1,
listing 6.5-6.7): Embedding(10000, 8) -> Flatten -> Dense(1) with Keras's initialisation,
binary cross-entropy on the logit, RMSprop with Keras's defaults, batch 32, a fresh shuffle
each epoch, 10 epochs, a validation pass (loss and accuracy) after each. Written as a
competent engineer would write it by hand, with no tricks: index the tensors per batch,
``zero_grad`` / ``backward`` / ``step``. Whatever Lightning adds on top of this is overhead.

    python benchmarks/plain_loop.py [--archive PATH] [--epochs 10] [--seed 0] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def build_model(num_words: int, embedding_dim: int, seq_len: int) -> nn.Module:
    """Embedding -> Flatten -> Linear(seq_len * dim, 1), initialised as Keras would."""
    model = nn.Sequential(
        nn.Embedding(num_words, embedding_dim),
        nn.Flatten(),
        nn.Linear(seq_len * embedding_dim, 1),
    )
    nn.init.uniform_(model[0].weight, -0.05, 0.05)  # Keras Embedding: uniform(-0.05, 0.05)
    nn.init.xavier_uniform_(model[2].weight)  # Keras Dense: Glorot uniform, zero bias
    nn.init.zeros_(model[2].bias)
    return model


@torch.no_grad()
def evaluate(
    model: nn.Module, ids: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> tuple[float, float]:
    """Mean BCE loss and accuracy over ``ids`` in batches of ``batch_size``."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(ids), batch_size):
        xb, yb = ids[start : start + batch_size], labels[start : start + batch_size]
        logits = model(xb).squeeze(1)
        loss_sum += F.binary_cross_entropy_with_logits(logits, yb, reduction="sum").item()
        correct += ((logits > 0).float() == yb).sum().item()
    model.train()
    return loss_sum / len(ids), correct / len(ids)


def run(
    train_ids: np.ndarray,
    train_labels: np.ndarray,
    val_ids: np.ndarray,
    val_labels: np.ndarray,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    num_words: int = 10000,
    embedding_dim: int = 8,
) -> dict[str, Any]:
    """Train and validate; ``fit_seconds`` times the epoch loop only (not tensor set-up)."""
    torch.manual_seed(seed)
    x = torch.as_tensor(train_ids, dtype=torch.long)
    y = torch.as_tensor(train_labels, dtype=torch.float32)
    vx = torch.as_tensor(val_ids, dtype=torch.long)
    vy = torch.as_tensor(val_labels, dtype=torch.float32)
    model = build_model(num_words, embedding_dim, x.shape[1])
    # Keras's RMSprop defaults: rho 0.9, epsilon 1e-7 (torch's own are 0.99 and 1e-8).
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []

    started = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            index = order[start : start + batch_size]
            logits = model(x[index]).squeeze(1)
            loss = F.binary_cross_entropy_with_logits(logits, y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        val_loss, val_acc = evaluate(model, vx, vy, batch_size)
        history.append({"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc})
    fit_seconds = time.perf_counter() - started

    return {
        "fit_seconds": fit_seconds,
        "val_acc": history[-1]["val_acc"],
        "val_loss": history[-1]["val_loss"],
        "epochs": epochs,
        "train_samples": len(x),
        "history": history,
    }


def seed_learned_arrays(
    archive: Path | None = None, *, cache_dir: Path | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """seed_learned's ids with the project's tokeniser: 20,000 x 20 train, 5,000 x 20 val."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # peers_data, beside this file
    from peers_data import load_imdb

    from embedclf.text.tokenizer import KerasTokenizer, pad_sequences

    data = load_imdb(archive, cache_dir=cache_dir)
    tokenizer = KerasTokenizer(num_words=10000).fit_on_texts(data.train_texts)
    ids = pad_sequences(
        tokenizer.texts_to_sequences(data.train_texts), 20, padding="pre", truncating="pre"
    )
    order = np.random.default_rng(0).permutation(len(ids))
    train, val = order[:20000], order[20000:]
    labels = data.train_labels
    return ids[train], labels[train], ids[val], labels[val]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=None, help="aclImdb_v1.tar.gz")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        # On a loaded machine torch's default (one thread per core) can spin-wait badly.
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    arrays = seed_learned_arrays(args.archive)
    prepare = time.perf_counter() - started
    result = run(*arrays, epochs=args.epochs, seed=args.seed)
    print(
        f"plain PyTorch loop, seed_learned ({result['train_samples']} x {arrays[0].shape[1]}, "
        f"{args.epochs} epochs, torch {torch.__version__}, {torch.get_num_threads()} threads): "
        f"fit {result['fit_seconds']:.2f} s  val_acc {result['val_acc']:.4f}  "
        f"val_loss {result['val_loss']:.4f}  (data prepared in {prepare:.1f} s)"
    )


if __name__ == "__main__":
    main()
