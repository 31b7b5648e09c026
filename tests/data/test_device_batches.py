"""Training features held on the device, each batch gathered there (data.features_on_device).

No GPU here: the gather is torch's ops, so the device path runs on the CPU "device" by
placing the features there, and must give the host path's batches id for id."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import SMALL, train_in_process
from embedclf.data import datamodule, device_batches
from embedclf.data.datamodule import TextFolderDataModule
from embedclf.data.device_batches import DeviceBatches, device_for
from embedclf.text.ragged import Ragged

CPU = torch.device("cpu")


def ready(tree, **kwargs) -> TextFolderDataModule:
    args = dict(root=str(tree), num_words=50, maxlen=60, ngrams=2, buckets=64)
    args.update(batch_size=8, steps_per_call=2, val_samples=0.25, split_seed=0, **kwargs)
    dm = TextFolderDataModule(**args)
    dm.prepare_data()
    dm.setup("fit")
    dm.trainer = SimpleNamespace(  # what the loaders read of a trainer
        strategy=SimpleNamespace(root_device=CPU), global_rank=0, world_size=1
    )
    return dm


def epoch(dm) -> list[tuple[list[int], list[int], list[int], int]]:
    torch.manual_seed(0)  # the shuffle draws from torch's generator
    return [
        (b.tokens.flat.tolist(), b.tokens.offsets.tolist(), b.labels.tolist(), b.step_size)
        for b in dm.train_dataloader()
    ]


@pytest.fixture
def on_device(monkeypatch):
    """The CPU taken for a device the features fit."""
    monkeypatch.setattr(datamodule, "device_for", lambda f, labels, d: d)


def test_batches_gathered_on_the_device_are_the_host_paths(dirs, tiny_tree, on_device):
    host = ready(tiny_tree, features_on_device=False)
    device = ready(tiny_tree)
    loader = device.train_dataloader()
    assert isinstance(loader.dataset, DeviceBatches)
    assert not isinstance(host.train_dataloader().dataset, DeviceBatches)
    first = epoch(device)
    assert first == epoch(host)  # ids, offsets, labels and step size, batch by batch
    assert len(first) == 4 and first[0][3] == 8  # 60 rows in calls of 16, steps of 8
    assert epoch(device) == first  # seeded: the same shuffle again
    torch.manual_seed(1)
    assert [b.labels.tolist() for b in device.train_dataloader()] != [x[2] for x in first]


@pytest.mark.parametrize("buckets", [False, True])
@pytest.mark.parametrize(("rank", "world"), [(0, 2), (1, 2), (2, 3)])
def test_every_sampler_and_rank_gets_the_host_paths_batches(
    dirs, tiny_tree, on_device, buckets, rank, world
):
    host = ready(tiny_tree, features_on_device=False, length_buckets=buckets)
    device = ready(tiny_tree, length_buckets=buckets)
    for dm in (host, device):
        dm.trainer = SimpleNamespace(
            strategy=SimpleNamespace(root_device=CPU), global_rank=rank, world_size=world
        )
    assert isinstance(device.train_dataloader().dataset, DeviceBatches)
    assert epoch(device) == epoch(host) != []


def test_only_the_cached_training_features_go_to_the_device(dirs, tiny_tree, on_device):
    dm = ready(tiny_tree, feature_cache_mb=0)  # no cache: made per batch, on the host
    assert not isinstance(dm.train_dataloader().dataset, DeviceBatches)
    dm = ready(tiny_tree)
    assert not isinstance(dm.val_dataloader().dataset, DeviceBatches)
    statistics = dm._loader("train", train=False, chunk=16)  # NB weights, standardisation
    assert not isinstance(statistics.dataset, DeviceBatches)


def test_loaders_made_again_reuse_the_copy_on_the_device(dirs, tiny_tree, monkeypatch):
    judged = []
    monkeypatch.setattr(datamodule, "device_for", lambda f, labels, d: judged.append(d) or d)
    dm = ready(tiny_tree)
    first = dm.train_dataloader().dataset
    assert dm.train_dataloader().dataset is first and judged == [CPU]  # copied, judged once


def test_worker_processes_keep_the_host_path(dirs, tiny_tree, on_device):
    dm = ready(tiny_tree, num_workers=1, feature_cache_mb=256)
    assert not isinstance(dm.train_dataloader().dataset, DeviceBatches)


def test_batches_gathered_on_a_gpu_are_not_pinned_and_the_others_are(
    dirs, tiny_tree, on_device, monkeypatch
):
    class Gathered(DeviceBatches):
        def __init__(self, features, labels, padding, step_size, device):  # nothing copied
            self.device = device

    monkeypatch.setattr(datamodule, "DeviceBatches", Gathered)
    dm = ready(tiny_tree)
    dm.trainer.strategy.root_device = torch.device("cuda", 0)
    assert isinstance(dm.train_dataloader().dataset, Gathered)
    assert not dm.train_dataloader().pin_memory
    assert dm.val_dataloader().pin_memory  # copied over from pinned memory, without blocking


def test_the_gather_keeps_each_rows_ids_in_order():
    features = Ragged(np.array([5, 6, 7, 1, 9, 9, 2, 3], np.int32), np.array([0, 3, 4, 4, 8]))
    batches = DeviceBatches(features, np.array([1, 0, 1, 0]), "pre", 2, CPU)
    batch = batches[torch.tensor([3, 0, 2, 1])]
    assert batch.tokens.flat.dtype == torch.int64
    assert batch.tokens.flat.tolist() == [9, 9, 2, 3, 5, 6, 7, 1]  # row 2 is empty
    assert batch.tokens.offsets.tolist() == [0, 4, 7, 7, 8]
    assert batch.labels.tolist() == [0, 1, 1, 0] and batch.step_size == 2
    empty = batches[torch.tensor([2])]
    assert empty.tokens.flat.tolist() == [] and empty.tokens.offsets.tolist() == [0, 0]


def test_features_go_to_a_cuda_device_only_where_they_fit_half_its_free_memory(monkeypatch):
    features = Ragged(np.zeros(1000, np.int32), np.arange(101, dtype=np.int64))  # 4,000 bytes
    labels = np.zeros(100, np.int8)  # 800 bytes as int64: 4,800 in all (offsets stay put)
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (9_600, 10**9))
    assert device_for(features, labels, cuda) == cuda
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (9_598, 10**9))
    assert device_for(features, labels, cuda) is None
    # what torch's allocator holds unused (an earlier job's freed tensors) is free too
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 5_000)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 4_998)
    assert device_for(features, labels, cuda) == cuda
    assert device_for(features, labels, CPU) is None  # a CPU run's batches are made as ever
    assert device_batches.DEVICE_SHARE == 0.5


def test_a_run_on_the_device_path_scores_as_the_host_path(dirs, tiny_tree, monkeypatch):
    settings = ["experiment=seed_learned", *SMALL, f"data.root={tiny_tree}"]
    host = train_in_process(dirs["run"] / "host", *settings, "data.features_on_device=false")
    gathered = []
    real = DeviceBatches.__getitem__
    monkeypatch.setattr(
        DeviceBatches, "__getitem__", lambda self, i: gathered.append(len(i)) or real(self, i)
    )
    monkeypatch.setattr(datamodule, "device_for", lambda f, labels, d: d)
    device = train_in_process(dirs["run"] / "device", *settings)
    assert gathered and sum(gathered) == 3 * device["train_samples"]  # every row, 3 epochs
    for key in ("val_acc", "val_loss", "test_acc", "test_loss"):
        assert device[key] == host[key], key
