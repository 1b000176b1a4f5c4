"""A LightningDataModule around a task's `TaskData`: loaders for train and the evaluation splits."""

from __future__ import annotations

import lightning.pytorch as L
from torch.utils.data import DataLoader

from tasks.base import TaskData


class TaskDataModule(L.LightningDataModule):
    """Training batches are shuffled and the last partial batch dropped; evaluation sees every sample
    (the reference also drops the last evaluation batch; we do not, so test sets are complete)."""

    def __init__(self, data: TaskData, batch_size: int, eval_batch_size: int | None = None, num_workers: int = 0,
                 pin_memory: bool = False):
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory

    @property
    def eval_splits(self) -> list[str]:
        return self.data.eval_splits

    def _loader(self, dataset, batch_size: int, train: bool, collate=None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
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
