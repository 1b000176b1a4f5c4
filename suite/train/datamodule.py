"""A LightningDataModule around a task's `TaskData`: loaders for train and the evaluation splits."""

from __future__ import annotations

import os

import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader, RandomSampler

from suite.gpus import devices_per_machine
from tasks.base import TaskData


def runs_on_gpu(accelerator: str) -> bool:
    """Whether a run with this `trainer.accelerator` trains on CUDA GPUs (auto: when there is one)."""
    return accelerator in ("gpu", "cuda") or accelerator == "auto" and torch.cuda.is_available()


def local_processes(devices: int | str) -> int:
    """Training processes on this machine for `trainer.devices` on GPUs, as Lightning reads it: auto is one
    (suite/gpus.py), -1 every GPU, "2" two, "0,3" and "1," a list of GPUs."""
    n = devices_per_machine(devices)
    return n if n > 0 else max(torch.cuda.device_count(), 1)


def loader_workers(setting: int | str, on_gpu: bool, processes: int = 1) -> int:
    """`trainer.num_workers`: a number as given; auto: 2 data-loading processes per training process on a GPU, so
    that batches are loaded and collated while the GPU trains instead of on the training thread between steps
    (with CUDA graphs the host's time per step sets the pace: suite/train/cuda_graphs.py), fewer when the machine
    has few cores; 0 on a CPU, where workers would take the cores the training uses. The batches are the same
    either way: the order is drawn in the main process by the sampler's own seeded generator (TaskDataModule) and
    every collate is deterministic."""
    if setting != "auto":
        return int(setting)
    if not on_gpu:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(2, cores // max(processes, 1) - 1))


class TaskDataModule(L.LightningDataModule):
    """Training batches are shuffled and the last partial batch dropped; evaluation sees every sample
    (the reference also drops the last evaluation batch; we do not, so test sets are complete)."""

    def __init__(self, data: TaskData, batch_size: int, eval_batch_size: int | None = None, num_workers: int = 0,
                 pin_memory: bool = False, seed: int = 0):
        super().__init__()
        self.seed = seed
        self.data = data
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory

    @property
    def eval_splits(self) -> list[str]:
        return self.data.eval_splits

    def _loader(self, dataset, batch_size: int, train: bool, collate=None) -> DataLoader:
        # The training order comes from the sampler's own generator, seeded by the run's seed: one draw per epoch,
        # whatever else uses the global generator and however many loader workers there are (a DataLoader without
        # a sampler generator seeds each epoch from the global generator, once per iterator: every epoch with 0
        # workers, once per run with persistent ones). Under DDP, Lightning puts a DistributedSampler in its place.
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(self.seed)) if train else None
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=train and len(dataset) > batch_size,
            collate_fn=collate or self.data.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.data.train, self.batch_size, train=True)

    def val_dataloader(self) -> list[DataLoader]:
        return [
            self._loader(self.data.split(s), self.eval_batch_size, train=False, collate=self.data.collate_eval.get(s))
            for s in self.eval_splits
        ]
