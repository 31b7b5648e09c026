"""The training rows' features held on the GPU, each batch gathered there.

Where the training rows' features are computed once (``data.feature_cache_mb``) and the model
trains on a CUDA device, the flat ids, their offsets and the labels are copied to the device
once, where they fit (:func:`device_for`), and each batch is gathered from them on the
device: no batch is made on the host or copied over per step. Only the batch's row numbers and
lengths travel, a few KB. Elsewhere batches come from pinned host memory with non-blocking
copies (``TextDataModule._loader``).

The batches are the host path's, id for id, in the same order (``tests/data``): the gather
is done with torch's ops, so it runs, and is tested, on any device.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from embedclf.data.batches import Batch, Tokens
from embedclf.text.ragged import Ragged

log = logging.getLogger(__name__)

# the share of the device's free memory the features may take: the model, its optimiser
# state and the activations need the rest
DEVICE_SHARE = 0.5


def device_for(features: Ragged, labels: np.ndarray, device: torch.device) -> torch.device | None:
    """``device`` where it is a CUDA device whose free memory (with what torch's allocator
    holds unused) holds these features and labels within :data:`DEVICE_SHARE`; else None
    (batches are made on the host)."""
    if device.type != "cuda":
        return None
    need = features.flat.nbytes + len(labels) * 8  # the ids and int64 labels (offsets: host)
    free, _ = torch.cuda.mem_get_info(device)
    # memory torch's allocator holds but no tensor uses is free to this process: a sweep's
    # jobs run one after another in one process (Hydra's basic launcher), each after the last
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if need > DEVICE_SHARE * free:
        log.info(
            "the training features (%.0f MB) stay in host memory: more than %.0f%% of %s's "
            "%.0f MB free",
            need / 2**20,
            100 * DEVICE_SHARE,
            device,
            free / 2**20,
        )
        return None
    return device


class DeviceBatches(Dataset):
    """One batch per index tensor the sampler yields, gathered on ``device`` from the rows'
    features (``features``: one row per label, in the split's order)."""

    def __init__(
        self,
        features: Ragged,
        labels: np.ndarray,
        padding: str,
        step_size: int,
        device: torch.device,
    ) -> None:
        self.offsets = np.asarray(features.offsets, dtype=np.int64)  # host: sizes without a sync
        # the ids as narrow as the featurizer made them (int32: half the memory), widened per batch
        self.flat = torch.from_numpy(np.ascontiguousarray(features.flat)).to(device)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        self.padding, self.step_size, self.device = padding, step_size, device

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: torch.Tensor) -> Batch:
        """The rows ``index`` (positions in the split, a host tensor), gathered on the device."""
        rows = index.numpy()
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        total = int(offsets[-1])
        # row r's ids are flat[starts[r] + k] for k < lengths[r]: the k-th id of the batch
        # overall, shifted by (starts[r] - offsets[r]) for its row
        shift = torch.from_numpy(starts - offsets[:-1]).to(self.device, non_blocking=True)
        counts = torch.from_numpy(lengths).to(self.device, non_blocking=True)
        positions = torch.arange(total, device=self.device) + torch.repeat_interleave(
            shift, counts, output_size=total
        )
        tokens = Tokens(
            self.flat[positions].long(),
            torch.from_numpy(offsets).to(self.device, non_blocking=True),
            self.padding,
        )
        labels = self.labels[index.to(self.device, non_blocking=True)]
        return Batch(tokens, labels, self.step_size)
