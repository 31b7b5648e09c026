"""The network: ``embedding -> encoder -> [standardise] -> head``, built from one plain spec.

The spec (``net``, saved in every checkpoint's hyperparameters) is plain types only, so a
checkpoint loads with ``torch.load(weights_only=True)`` and rebuilds the same network::

    rows: 10000          # embedding rows: words (+ hashed n-gram buckets); set from the data
    seq_len: 20          # the data's maxlen (flatten's input width); set from the data
    classes: 2           # set from the data
    embedding: {dim: 8, freeze: false, sparse: false, channels: 1, word_dropout: 0.0}
    encoder: {kind: flatten}          # + the kind's own settings (models/encoders/)
    head: {hidden: [], dropout: 0.0, standardize: false, max_norm: null}
    init: keras          # keras | fasttext | torch

Binary tasks get one logit (sigmoid + binary cross-entropy, as the seed's ``Dense(1,
sigmoid)``); more classes get one logit each. ``init: keras`` draws weights the way Keras does
by default (embedding uniform in +-0.05, Glorot-uniform dense weights, zero biases), which the
seed's figures depend on, and the encoder's layers as Keras's ``Conv1D``, ``LSTM`` and ``GRU``
(the book's 6.2 LSTM: orthogonal recurrent weights, the forget gate's bias at 1); ``fasttext``
starts the embedding uniform in +-1/dim and the head at zero, as fastText does; ``torch`` keeps
PyTorch's defaults. ``head.standardize`` keeps a per-dimension mean and standard deviation of
the encoded vectors (set from the training rows by ``models/weighting.py``), so a linear head
on few examples sees features on one scale. ``head.max_norm`` is Kim (2014)'s constraint: after
each update, each output's weight vector is scaled back to that L2 norm whenever it grew past
it (:meth:`EmbeddingClassifier.constrain`). ``embedding.channels: 2`` is Kim's multichannel
embedding (``models/multichannel.py``): a frozen and a tuned copy of the pretrained vectors,
side by side, under any encoder that looks words up one at a time (not the weighted bags, which
sum one table's rows). ``embedding.word_dropout`` leaves each word (and hashed n-gram) of a
training row out with that probability (Iyyer et al. 2015's word dropout), a fresh draw each
optimiser update (:meth:`EmbeddingClassifier.drop_words`, called by the training step only);
scoring and prediction see every word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from embedclf.data.batches import PAD_ID, Tokens
from embedclf.models.encoders import encoder_class
from embedclf.models.multichannel import TwoChannels

INITS = ("keras", "fasttext", "torch")


class EmbeddingClassifier(nn.Module):
    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__()
        emb, head, settings = spec["embedding"], spec["head"], dict(spec["encoder"])
        rows, dim = int(spec["rows"]), int(emb["dim"])
        if spec.get("init", "keras") not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {spec.get('init')!r}")
        kind = encoder_class(settings)
        settings.pop("kind")
        sparse = bool(emb.get("sparse", False))
        channels = int(emb.get("channels", 1))
        self.word_dropout = float(emb.get("word_dropout", 0.0))
        if not 0.0 <= self.word_dropout < 1.0:
            raise ValueError(f"embedding word_dropout must be in [0, 1), got {self.word_dropout}")
        if channels not in (1, 2) or (channels == 2 and kind.bag):
            raise ValueError(
                f"embedding channels must be 1 or 2 (2: not under {kind.kind}, which sums one "
                f"table's rows), got {channels}"
            )
        # construction order (embedding, encoder, head) fixes the draws from torch's generator
        self.embedding: nn.Embedding | nn.EmbeddingBag | TwoChannels
        if channels == 2:
            self.embedding = TwoChannels(rows, dim, sparse=sparse)
        elif kind.bag:
            self.embedding = nn.EmbeddingBag(
                rows, dim, mode="sum", sparse=sparse, padding_idx=PAD_ID
            )
        else:
            self.embedding = nn.Embedding(rows, dim, sparse=sparse)
        width_in = dim * channels
        self.encoder = kind(dim=width_in, seq_len=int(spec["seq_len"]), rows=rows, **settings)
        width = self.encoder.out_dim
        self.standardize = bool(head.get("standardize", False))
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_std", torch.ones(width))
        outputs = 1 if spec["classes"] == 2 else int(spec["classes"])
        hidden, dropout = list(head.get("hidden", [])), float(head.get("dropout", 0.0))
        self.head = _head(width, hidden, dropout, outputs)
        max_norm = head.get("max_norm")
        self.max_norm = None if max_norm is None else float(max_norm)
        self._init(spec.get("init", "keras"), dim)
        for table in self.tables()[channels - 1 :]:  # a static channel stays frozen
            table.requires_grad_(not emb.get("freeze", False))

    @torch.no_grad()
    def constrain(self) -> None:
        """Kim's max-norm: each output's weights back to ``max_norm`` where they grew past it."""
        if self.max_norm is not None:
            weight = self.head[-1].weight
            weight.copy_(torch.renorm(weight, 2, 0, self.max_norm))

    def tables(self) -> tuple[nn.Parameter, ...]:
        """The embedding's weight tables (two for the multichannel embedding)."""
        if isinstance(self.embedding, TwoChannels):
            return self.embedding.tables()
        return (self.embedding.weight,)

    def _init(self, init: str, dim: int) -> None:
        if init == "torch":
            return
        bound = 0.05 if init == "keras" else 1 / dim
        for table in self.tables():
            nn.init.uniform_(table, -bound, bound)
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                if init == "keras":
                    nn.init.xavier_uniform_(layer.weight)
                else:
                    nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        if init == "keras":  # drawn after the head's, so flatten's and the bags' draws stay
            for layer in self.encoder.modules():
                _keras_init(layer)

    @torch.no_grad()
    def load_embedding(self, matrix: np.ndarray | torch.Tensor) -> None:
        """Start the embedding from pretrained rows (GloVe, word2vec): same shape required."""
        weights = torch.as_tensor(np.asarray(matrix), dtype=torch.float32)
        for table in self.tables():  # both channels start from the same vectors
            if weights.shape != table.shape:
                raise ValueError(
                    f"the pretrained matrix has shape {tuple(weights.shape)}, the embedding "
                    f"{tuple(table.shape)}"
                )
            table.copy_(weights)

    def drop_words(self, ids: Tokens | torch.Tensor) -> Tokens | torch.Tensor:
        """``ids`` with each word (and hashed n-gram) left out with probability
        ``embedding.word_dropout``: a training step's rows, drawn once per optimiser update
        (so L-BFGS's line search compares one objective). Flat rows close up; rows already
        padded (flatten's fixed width) read padding in a left-out word's place."""
        if not self.word_dropout:
            return ids
        if isinstance(ids, Tokens):
            return ids.dropped(self.word_dropout)
        left_out = torch.rand(ids.shape, device=ids.device) < self.word_dropout
        return ids.masked_fill(left_out, PAD_ID)

    def encode(self, ids: Tokens | torch.Tensor) -> torch.Tensor:
        """One vector per row: what the head sees, before standardisation. ``ids`` are flat
        :class:`Tokens` (padded here only as far as the encoder's layout needs) or ids
        already padded ``(n, length)``."""
        if isinstance(ids, Tokens):
            layout = self.encoder.layout
            if layout == "bag":
                return self.encoder.forward_bag(self.embedding, ids.flat, ids.offsets)
            ids = ids.padded(self.encoder.seq_len if layout == "fixed" else None)
        return self.encoder(self.embedding, ids, ids != PAD_ID)

    def forward(self, ids: Tokens | torch.Tensor) -> torch.Tensor:
        vectors = self.encode(ids)
        if self.standardize:
            vectors = (vectors - self.feature_mean) / self.feature_std
        logits = self.head(vectors)
        return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


def _keras_init(layer: nn.Module) -> None:
    """Keras's defaults for its layer of the same kind: ``Dense`` and ``Conv1D`` kernels
    Glorot-uniform with zero biases; ``LSTM``/``GRU`` input kernels Glorot-uniform, recurrent
    kernels orthogonal, zero biases but an LSTM's forget gate at 1 (``unit_forget_bias``).
    PyTorch's gates are stacked (LSTM: input, forget, cell, output) as Keras's are, so each
    matrix is drawn whole, as Keras draws it."""
    if isinstance(layer, (nn.Linear, nn.Conv1d)):
        nn.init.xavier_uniform_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    elif isinstance(layer, (nn.LSTM, nn.GRU)):
        for name, weight in layer.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(weight)
            elif name.startswith("weight_hh"):
                nn.init.orthogonal_(weight)
            else:
                nn.init.zeros_(weight)
                if isinstance(layer, nn.LSTM) and name.startswith("bias_ih"):
                    with torch.no_grad():
                        weight[layer.hidden_size : 2 * layer.hidden_size] = 1.0


def _head(width: int, hidden: list[int], dropout: float, outputs: int) -> nn.Sequential:
    """``[Dropout] ([Dense + ReLU [Dropout]])* Dense``: logits."""
    layers: list[nn.Module] = []
    if dropout:  # on the encoded vectors, and after each hidden layer
        layers.append(nn.Dropout(dropout))
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)
