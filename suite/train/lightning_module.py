"""The LightningModule: one loss, per-split epoch metrics, and the optimiser of `suite.train.optim`.

Validation runs over every evaluation split (val, test, ...) each epoch. Each split's metrics (`<split>/loss`,
`<split>/accuracy` or `<split>/rmse`, `<split>/n_samples` for the evaluation splits) are accumulated on the device
batch by batch and logged once, at the end of the epoch (suite/train/epoch_metrics.py, which defines them); the
training loss of a single step, `train/loss_step`, is logged at the steps the loggers write (every
`trainer.log_every_n_steps`). Per-batch `self.log` calls would cost more host time than a graphed ListOps step takes
on the GPU. Tables show the test split's count beside the accuracy.
"""

from __future__ import annotations

import sys

import lightning.pytorch as L
import torch
from torch import nn
from torch.nn import functional as F

from suite.errors import ConfigError
from suite.train.epoch_metrics import EpochMeter
from suite.train.optim import make_optimizer
from suite.train.throughput import is_log_step


class SequenceModule(L.LightningModule):
    def __init__(self, model: nn.Module, problem: str, optim_cfg, eval_splits: list[str],
                 config: dict | None = None, eval_rate: dict[str, float] | None = None, cuda_graph: bool | str = False,
                 compile_network: bool = False, cuda_graph_scope: str = "step"):
        super().__init__()
        self.model = model
        self.problem = problem
        self.optim_cfg = optim_cfg
        self.eval_splits = list(eval_splits)
        self.config = config or {}
        self.eval_rate = dict(eval_rate or {})  # split -> SSM step-size multiplier (e.g. test8k: 2.0)
        self.meters = {s: EpochMeter(problem) for s in ["train", *self.eval_splits]}
        self._train_epoch_logged = False
        self._resumed_sums: list[float] | None = None  # the training meter's sums of a checkpoint taken mid-epoch
        self.cuda_graph = cuda_graph
        self.compile_network = compile_network
        self.cuda_graph_scope = cuda_graph_scope
        self._step = None  # suite.train.step_graphs.GraphedStep: the whole training step in graphs (scope step)
        self._compiled: tuple[nn.Module, ...] = ()  # (torch.compile(model),): a tuple, so not a submodule
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

            if self.cuda_graph_scope == "step":
                self._step_in_graphs()
            else:
                self._graphed = GraphedTraining(self._training_network(graphs=True))
            self._graphed_eval = GraphedEvaluation(self.model)  # the evaluation splits of every epoch, likewise
        elif self.cuda_graph is True:
            raise ConfigError(f"config: trainer.cuda_graph = true cannot apply to this run: {why}.",
                              hint="drop --set trainer.cuda_graph=true (auto falls back to eager by itself), or train "
                                   "on one GPU (--devices 1) at --precision 32-true")
        elif self.trainer.is_global_zero:
            print(f"note: CUDA graphs off: {why}; training eagerly", file=sys.stderr)

    def _step_in_graphs(self) -> None:
        """trainer.cuda_graph_scope = step (suite/train/step_graphs.py): forward, loss, backward, clipping and the
        AdamW update replayed as one graph per batch shape; Lightning's backward, zero_grad and clipping skipped."""
        from suite.train.step_graphs import GraphedStep

        optimizer = self.optimizers().optimizer
        self._step = GraphedStep(self.model, self._training_network(graphs=True), optimizer, self._loss,
                                 grad_clip=self.optim_cfg.grad_clip)
        optimizer.update_in_graph = True

    def _training_network(self, graphs: bool = False) -> nn.Module:
        """trainer.compile: the network through torch.compile, sharing its parameters (static shapes under the
        CUDA graphs, whose batches come in a few padded lengths; else automatic dynamic shapes); else the
        network itself. Evaluation always runs the network itself."""
        if not self.compile_network:
            return self.model
        if not self._compiled:
            self._compiled = (torch.compile(self.model, dynamic=False if graphs else None),)
        return self._compiled[0]

    def forward(self, x, lengths=None, rate=None):
        return self.model(x, lengths, rate)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.problem == "classification":
            return F.cross_entropy(out, y)
        return F.mse_loss(out.squeeze(-1), y.float())

    def _output(self, split: str, x, lengths) -> torch.Tensor:
        if split == "train" and self._graphed is not None:
            return self._graphed(x, lengths)  # the same network, replayed as CUDA graphs
        if split != "train" and self._graphed_eval is not None:
            return self._graphed_eval(x, lengths, self.eval_rate.get(split))  # forward-only graphs, likewise
        if split == "train":
            return self._training_network()(x, lengths, None)
        return self(x, lengths, self.eval_rate.get(split))

    def _shared_step(self, batch, split: str) -> torch.Tensor:
        x, y, lengths = batch
        if split == "train" and self._step is not None:
            out, loss = self._step(x, y, lengths)  # the whole step, update included, replayed as a CUDA graph
        else:
            out = self._output(split, x, lengths)
            loss = self._loss(out, y)
        self.meters[split].update(loss, out if self.problem == "classification" else out.squeeze(-1), y)
        if split == "train" and is_log_step(self.trainer):
            # not prog_bar: Lightning reads progress-bar values at every step (a wait for the GPU);
            # suite.train.throughput.SteadyProgressBar shows this loss every log interval
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, batch_size=len(y))
        return loss

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    # With the whole step in graphs (self._step) the update is made: Lightning's parts of it are skipped.
    def backward(self, loss, *args, **kwargs) -> None:
        if self._step is None:
            super().backward(loss, *args, **kwargs)

    def optimizer_zero_grad(self, epoch, batch_idx, optimizer) -> None:
        if self._step is None:
            super().optimizer_zero_grad(epoch, batch_idx, optimizer)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        if self._step is None:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._shared_step(batch, self.eval_splits[dataloader_idx])

    def on_train_start(self) -> None:
        # Resumed from a checkpoint taken mid-epoch: the epoch's metrics include the steps before the stop. Put back
        # here, after the checkpoint is restored: Lightning does not call on_train_epoch_start for the epoch it
        # resumes. Under DDP only rank 0's sums were saved and every rank restores them: the steps before the stop
        # then count rank 0's samples once per rank (their mean is rank 0's, the sample count right).
        if self._resumed_sums is not None:
            self.meters["train"].sums = torch.tensor(self._resumed_sums, dtype=torch.float64, device=self.device)
            self._resumed_sums = None

    def on_train_epoch_start(self) -> None:
        self.meters["train"].reset()
        self._train_epoch_logged = False

    def on_validation_epoch_start(self) -> None:
        for split in self.eval_splits:
            self.meters[split].reset()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # The training metrics are logged after the epoch's last batch, not in on_train_epoch_end: Lightning runs
        # the callbacks' on_train_epoch_end before the module's, and the progress line of the epoch
        # (suite/train/progress.py) reports them from there.
        if self.trainer.is_last_batch:
            self._log_train_epoch()

    def on_train_epoch_end(self) -> None:
        self._log_train_epoch()  # an epoch cut short (max_steps, a stop) has no last batch

    def _log_train_epoch(self) -> None:
        if not self._train_epoch_logged:
            self._train_epoch_logged = True
            self._log_epoch(["train"])

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(self.eval_splits)

    def _log_epoch(self, splits: list[str]) -> None:
        """Log each split's epoch metrics, summed over the DDP ranks (one read by the host per split)."""
        def over_ranks(t: torch.Tensor) -> torch.Tensor:
            return self.trainer.strategy.reduce(t, reduce_op="sum")

        for split in splits:
            for name, value in self.meters[split].compute(over_ranks).items():
                if split == "train" and name == "n_samples":
                    continue
                self.log(f"{split}/{name}", value, prog_bar=split == "val" and name != "n_samples",
                         on_step=False, on_epoch=True, batch_size=1, add_dataloader_idx=False)

    def configure_optimizers(self):
        opt, sched, interval = make_optimizer(self.model, self.optim_cfg, int(self.trainer.estimated_stepping_batches),
                                              precision=str(self.trainer.precision))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["suite_config"] = self.config
        sums = self.meters["train"].sums
        trainer = self._trainer
        epoch_done = trainer is not None and trainer.is_last_batch  # the resumed run starts the next epoch afresh
        if sums is not None and not epoch_done:  # plain floats: the checkpoint loads with weights_only=True
            checkpoint["suite_train_epoch_sums"] = sums.tolist()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._resumed_sums = checkpoint.get("suite_train_epoch_sums")
