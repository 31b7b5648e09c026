"""The network: an embedding, pooled or flattened, then a small dense head."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

POOLINGS = ("flatten", "mean")


class EmbeddingClassifier(nn.Module):
    """``Embedding -> Flatten | Mean -> [Dense + ReLU]* -> Dense``, returning logits.

    ``pooling="flatten"`` is the seed's: one weight per position and dimension, so word order
    matters and ``seq_len`` is fixed. ``pooling="mean"`` averages the vectors of the real
    (non-padding, id 0) words: a bag of embeddings, whose size does not grow with ``seq_len``.

    Binary tasks get one logit (sigmoid + binary cross-entropy, as the seed's ``Dense(1,
    sigmoid)``); more classes get one logit each. ``keras_init`` draws weights the way Keras
    does by default (embedding uniform in +-0.05, Glorot-uniform dense weights, zero biases),
    which the seed's figures depend on; otherwise PyTorch's defaults are kept.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        embedding_dim: int,
        seq_len: int,
        num_classes: int = 2,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        keras_init: bool = True,
        embedding_init: np.ndarray | torch.Tensor | None = None,
        freeze_embedding: bool = False,
        pooling: str = "flatten",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        layers: list[nn.Module] = [nn.Flatten()] if pooling == "flatten" else []
        width = seq_len * embedding_dim if pooling == "flatten" else embedding_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, 1 if num_classes == 2 else num_classes))
        self.head = nn.Sequential(*layers)
        if keras_init:
            self._keras_init()
        if embedding_init is not None:
            weights = torch.as_tensor(np.asarray(embedding_init), dtype=torch.float32)
            if weights.shape != self.embedding.weight.shape:
                raise ValueError(
                    f"embedding_init has shape {tuple(weights.shape)}, the "
                    f"embedding {tuple(self.embedding.weight.shape)}"
                )
            with torch.no_grad():
                self.embedding.weight.copy_(weights)
        self.embedding.weight.requires_grad_(not freeze_embedding)

    def _keras_init(self) -> None:
        nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        vectors = self.embedding(ids)
        if self.pooling == "mean":
            mask = (ids != 0).unsqueeze(-1).to(vectors.dtype)
            vectors = (vectors * mask).sum(1) / mask.sum(1).clamp(min=1)
        logits = self.head(vectors)
        return logits.squeeze(-1) if logits.shape[-1] == 1 else logits
