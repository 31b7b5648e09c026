"""A trained classifier as an ONNX graph: ids padded to ``maxlen`` in, class probabilities out.

Every encoder kind exports through its padded path (``Encoder.forward`` on a CPU: masks, not
packing or ``nn.EmbeddingBag``'s offsets, which ONNX cannot express well). The graph's input is
``ids`` (int64, ``(n, maxlen)``, any ``n``), padded as the checkpoint's text encoder pads
(``TextFeaturizer.encode``); its output is ``probs`` (float32, ``(n, classes)``), exactly what
``predict`` reports. The legacy TorchScript-based exporter is used: torch.export's cannot yet
trace the data-dependent shapes of these encoders. The export checks itself with onnxruntime
before it is kept.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embedclf.data.batches import PAD_ID
from embedclf.models.classifier import EmbeddingClassifier
from embedclf.util.errors import CheckpointError

OPSET = 18
TOLERANCE = 1e-5  # largest difference in a probability allowed between torch and onnxruntime


class ProbabilityGraph(nn.Module):
    """The classifier on padded ids, ending in class probabilities.

    With ``keep`` (the embedding rows to keep, sorted, padding included) the graph holds only
    those rows and a zero row for every other id, looked up through a table of row numbers
    (int32): the pruned model of ``export --prune``.
    """

    def __init__(
        self, net: EmbeddingClassifier, binary: bool, keep: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.binary = binary
        self.remap: torch.Tensor | None = None
        if keep is not None:
            net, self.remap = _pruned(net, keep)
        self.net = net

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        net, mask = self.net, ids != PAD_ID
        if self.remap is not None:
            ids = self.remap[ids].long()
        vectors = net.encoder(net.embedding, ids, mask)
        if net.standardize:
            vectors = (vectors - net.feature_mean) / net.feature_std
        logits = net.head(vectors)
        if self.binary:
            positive = torch.sigmoid(logits[:, 0])
            return torch.stack([1 - positive, positive], dim=-1)
        return logits.softmax(-1)


def _pruned(
    net: EmbeddingClassifier, keep: torch.Tensor
) -> tuple[EmbeddingClassifier, torch.Tensor]:
    """A copy of ``net`` whose embedding (and per-row buffers) hold the ``keep`` rows and one
    zero row, and the table that maps each original id to its row there."""
    rows, dim = net.embedding.weight.shape
    pruned = copy.deepcopy(net)
    weight = torch.cat([net.embedding.weight.detach()[keep], torch.zeros(1, dim)])
    pruned.embedding = nn.Embedding.from_pretrained(weight, freeze=True)
    remap = torch.full((rows,), len(keep), dtype=torch.int32)
    remap[keep] = torch.arange(len(keep), dtype=torch.int32)
    encoder = pruned.encoder
    if hasattr(encoder, "feature_weight"):  # bags: one weight per row
        encoder.feature_weight = torch.cat([encoder.feature_weight[keep], torch.ones(1)])
    return pruned, remap


def export_onnx(
    net: EmbeddingClassifier,
    binary: bool,
    maxlen: int,
    path: Path,
    keep: torch.Tensor | None = None,
) -> float:
    """Write the graph to ``path``; returns the largest probability difference between torch
    and onnxruntime on random rows (some fully padded), refusing more than TOLERANCE."""
    graph = ProbabilityGraph(net, binary, keep).eval()
    rows = net.embedding.weight.shape[0]
    generator = torch.Generator().manual_seed(0)
    example = torch.randint(1, rows, (2, maxlen), generator=generator)  # full rows: see below
    fastpath = torch.backends.mha.get_fastpath_enabled()
    with warnings.catch_warnings(), torch.no_grad():
        # the transformer slices to the longest row: traced on full rows, that is maxlen,
        # which every padded input has; its fused inference kernel has no ONNX form
        warnings.simplefilter("ignore")
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            torch.onnx.export(
                graph,
                (example,),
                str(path),
                input_names=["ids"],
                output_names=["probs"],
                dynamic_axes={"ids": {0: "batch"}, "probs": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
    return _check(graph, path, rows, maxlen, generator)


def _check(
    graph: ProbabilityGraph, path: Path, rows: int, maxlen: int, generator: torch.Generator
) -> float:
    import onnxruntime  # the serve extra; export.py says so in one line where it is missing

    ids = torch.randint(1, rows, (64, maxlen), generator=generator)
    kept = torch.randint(0, maxlen + 1, (64,), generator=generator)
    ids[torch.arange(maxlen) < (maxlen - kept).unsqueeze(1)] = PAD_ID  # pre-padded, some empty
    with torch.no_grad():
        expected = graph(ids).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"ids": ids.numpy().astype(np.int64)})[0]
    difference = float(np.abs(got - expected).max())
    if not difference <= TOLERANCE:
        raise CheckpointError(
            f"the ONNX graph differs from the checkpoint by {difference:.2g} in a probability "
            f"(over {TOLERANCE}); not kept"
        )
    return difference


def touched_rows(checkpoint: dict, rows: int) -> torch.Tensor:
    """The embedding rows that training updated (and the padding row), from the optimiser's
    per-row state in the checkpoint (Adagrad's ``sum``, Adam's ``exp_avg_sq``...): a row no
    gradient reached has an all-zero state. Rows never updated hold their initial draws."""
    states = [
        value
        for optimizer in checkpoint.get("optimizer_states") or ()
        for state in (optimizer.get("state") or {}).values()
        for value in state.values()
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] == rows
    ]
    if not states:
        raise CheckpointError(
            "the checkpoint holds no optimiser state of the embedding's shape (a frozen "
            "embedding, or an inference checkpoint): --prune cannot tell which rows training used"
        )
    used = torch.zeros(rows, dtype=torch.bool)
    for state in states:
        used |= (state.to_dense() if state.is_sparse else state).ne(0).any(1)
    used[PAD_ID] = True
    return torch.nonzero(used).squeeze(1)
