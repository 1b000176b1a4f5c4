"""The data module (suite/train/datamodule.py): the training order is the run seed's, whatever the number of
loader workers and whatever else draws from the global random generator."""

from __future__ import annotations

import torch

from suite.train.datamodule import TaskDataModule, loader_workers
from tasks.base import TaskData


def _data(n: int = 20) -> TaskData:
    items = [(torch.tensor([i]), i) for i in range(n)]
    collate = lambda b: (torch.stack([x for x, _ in b]), torch.tensor([y for _, y in b]), None)  # noqa: E731
    return TaskData(train=items, val=items[:4], test=items[:4], collate=collate, encoder="embedding", d_input=n,
                    d_output=n, problem="classification", source="generated", l_max=1)


def _epochs(workers: int, seed: int, n_epochs: int = 3) -> list[list[int]]:
    module = TaskDataModule(_data(), batch_size=5, num_workers=workers, seed=seed)
    loader = module.train_dataloader()
    torch.manual_seed(123)
    orders = []
    for _ in range(n_epochs):
        orders.append([int(y) for _, ys, _ in loader for y in ys])
        torch.rand(7)  # training draws from the global generator between epochs
    return orders


def test_the_training_order_is_the_seeds_for_any_number_of_workers():
    inline = _epochs(workers=0, seed=5)
    assert _epochs(workers=2, seed=5) == inline  # persistent worker processes: the same batches, every epoch
    assert len({tuple(e) for e in inline}) == 3 and all(sorted(e) == list(range(20)) for e in inline)
    assert _epochs(workers=0, seed=6) != inline


def test_auto_workers_are_zero_on_a_cpu_and_a_number_is_kept():
    assert loader_workers("auto", on_gpu=False) == 0
    assert loader_workers(3, on_gpu=False) == 3
    assert 0 <= loader_workers("auto", on_gpu=True, processes=64) <= 2
