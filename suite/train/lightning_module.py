"""The LightningModule: one loss, per-split metrics, and the optimiser of `suite.train.optim`.

Validation runs over every evaluation split (val, test, ...) each epoch; metrics are logged as
`<split>/loss` and `<split>/accuracy` (classification) or `<split>/rmse` (regression); each evaluation
split also logs `<split>/n_samples`: the number of samples scored in the epoch (every sample of the
split, or fewer under `trainer.limit_val_batches`; summed over DDP ranks, whose samplers may repeat a
few samples to give every rank the same count). Tables show the test split's count beside the accuracy.
"""

from __future__ import annotations

import sys

import lightning.pytorch as L
import torch
import torchmetrics
from torch import nn
from torch.nn import functional as F

from suite.errors import ConfigError
from suite.train.optim import make_optimizer


def _metric(problem: str, n_classes: int) -> torchmetrics.Metric:
    """Accumulated on the device; read once per epoch. validate_args=False: the label check (torch.unique) would
    read the GPU at every step (suite/train/throughput.py); labels are checked when the data is loaded (tasks.base)."""
    if problem == "classification":
        return torchmetrics.classification.MulticlassAccuracy(num_classes=n_classes, average="micro",
                                                              validate_args=False)
    return torchmetrics.MeanSquaredError(squared=False)


class SequenceModule(L.LightningModule):
    def __init__(self, model: nn.Module, problem: str, d_output: int, optim_cfg, eval_splits: list[str],
                 config: dict | None = None, eval_rate: dict[str, float] | None = None, cuda_graph: bool | str = False):
        super().__init__()
        self.model = model
        self.problem = problem
        self.metric_name = "accuracy" if problem == "classification" else "rmse"
        self.optim_cfg = optim_cfg
        self.eval_splits = list(eval_splits)
        self.config = config or {}
        self.eval_rate = dict(eval_rate or {})  # split -> SSM step-size multiplier (e.g. test8k: 2.0)
        # keys get a trailing '_': 'train' would shadow nn.Module.train
        self.metrics = nn.ModuleDict({f"{s}_": _metric(problem, d_output) for s in ["train", *self.eval_splits]})
        self.cuda_graph = cuda_graph
        self._graphed = None  # suite.train.cuda_graphs.GraphedTraining, made at the first training batch
        self._graphed_eval = None  # suite.train.eval_graphs.GraphedEvaluation, beside it

    def on_fit_start(self) -> None:
        """trainer.cuda_graph (suite/train/cuda_graphs.py): auto = graphs where they apply, else eager with a note.
        Training and evaluation both (suite/train/eval_graphs.py)."""
        if self.cuda_graph is False:
            return
        from suite.train.cuda_graphs import GraphedTraining, obstacle

        why = obstacle(self.device.type, self.trainer.world_size, self.trainer.precision)
        if why is None:
            from suite.train.eval_graphs import GraphedEvaluation

            self._graphed = GraphedTraining(self.model)
            self._graphed_eval = GraphedEvaluation(self.model)  # the evaluation splits of every epoch, likewise
        elif self.cuda_graph is True:
            raise ConfigError(f"config: trainer.cuda_graph = true cannot apply to this run: {why}.",
                              hint="drop --set trainer.cuda_graph=true (auto falls back to eager by itself), or train "
                                   "on one GPU (--devices 1) at --precision 32-true")
        elif self.trainer.is_global_zero:
            print(f"note: CUDA graphs off: {why}; training eagerly", file=sys.stderr)

    def forward(self, x, lengths=None, rate=None):
        return self.model(x, lengths, rate)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.problem == "classification":
            return F.cross_entropy(out, y)
        return F.mse_loss(out.squeeze(-1), y.float())

    def _shared_step(self, batch, split: str) -> torch.Tensor:
        x, y, lengths = batch
        if split == "train" and self._graphed is not None:
            out = self._graphed(x, lengths)  # the same network, replayed as CUDA graphs
        elif split != "train" and self._graphed_eval is not None:
            out = self._graphed_eval(x, lengths, self.eval_rate.get(split))  # forward-only graphs, likewise
        else:
            out = self(x, lengths, self.eval_rate.get(split))
        loss = self._loss(out, y)
        preds = out if self.problem == "classification" else out.squeeze(-1)
        self.metrics[f"{split}_"].update(preds, y if self.problem == "classification" else y.float())
        n = len(y)
        if split == "train":
            # not prog_bar: Lightning reads progress-bar values at every step (a wait for the GPU);
            # suite.train.throughput.SteadyProgressBar shows this loss every log interval
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, batch_size=n)
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, prog_bar=split == "val", batch_size=n,
                 add_dataloader_idx=False, sync_dist=True)
        self.log(f"{split}/{self.metric_name}", self.metrics[f"{split}_"], on_step=False, on_epoch=True,
                 prog_bar=split == "val", batch_size=n, add_dataloader_idx=False)
        if split != "train":  # evaluation only: nothing more to do per training step
            # n made on the device (a fill, no copy): a Python number would be copied to the GPU at every batch,
            # a blocking copy that waits for the GPU (suite/train/throughput.py)
            self.log(f"{split}/n_samples", torch.full((), float(n), device=y.device), on_step=False, on_epoch=True,
                     reduce_fx="sum", batch_size=n, add_dataloader_idx=False, sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._shared_step(batch, self.eval_splits[dataloader_idx])

    def configure_optimizers(self):
        opt, sched, interval = make_optimizer(self.model, self.optim_cfg, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["suite_config"] = self.config
