"""The whole training step as one CUDA graph per batch shape (`trainer.cuda_graph_scope: step`, the default).

With the network's forward and backward in graphs (suite/train/cuda_graphs.py, scope `network`) the GPU's part of
a ListOps step is a few launches, and what is left on the host sets the pace: the autograd engine handing every
parameter's gradient out of the graph, clearing them, clipping them and AdamW's walk over its groups cost more
host time than the GPU spends on the step (BENCHMARKS.md, "Where the step and the loop spend their time"). Here
one graph holds all of it:

    forward -> loss -> backward -> clip_grad_norm_ (optim.grad_clip) -> AdamW update (fused, capturable)

and a training step is: copy the batch into the graph's static inputs, write the learning rates of the step into
the graph's device tensors, replay. The update is the eager step's: the same fused AdamW kernel reading the same
state; the learning rates stay Python floats in the optimizer's groups, where the schedule, the learning-rate
monitor and checkpoints see them, and are copied into the graph's tensors before each replay. Lightning keeps
its loop: the optimizer's step() then only runs its closure (suite.train.optim.AdamW.update_in_graph), and the
module skips Lightning's backward, zero_grad and clipping (suite/train/lightning_module.py).

Before a capture the step runs twice on a side stream without updating anything (cuFFT plans, Triton kernels,
lazily built tables), on copies of the buffers, which are then put back (BatchNorm's running statistics see
each batch once, as in the eager step), and AdamW's state is created for the parameters that get a gradient,
as its first step would. Each graph writes the gradients into its own buffers, which it keeps (`last.grads`,
valid right after its replay); `p.grad` stays None, so a callback that reads gradients before the optimizer
step finds none rather than another graph's. The hyperparameters other than the learning rate (betas, eps,
weight decay) are constants of a captured update: a change of them drops the graphs. Variable lengths (padded
up to a bucket, not past the S4 kernels' length at the network's rate), the kernel-length watch and MAX_GRAPHS
are those of the network graphs: a shape beyond MAX_GRAPHS runs the same step eagerly (`eager`)."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable

import torch
from torch import nn

from suite.train.cuda_graphs import MAX_GRAPHS, KernelLengths, _Forward


def init_adam_state(opt: torch.optim.Optimizer, params_with_grad: list[nn.Parameter]) -> None:
    """AdamW's state for each parameter that has none, as its first step creates it (torch/optim/adam.py
    `_init_group`, fused or capturable: the step count a float32 tensor on the parameter's device); a step count
    on the host (a checkpoint of non-fused AdamW) moved to the device, which a captured update needs."""
    for p in params_with_grad:
        state = opt.state[p]
        if "step" in state and state["step"].device != p.device:
            state["step"] = state["step"].to(device=p.device, dtype=torch.float32)
        if len(state) == 0:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)


class _StepGraph:
    """One captured step for one batch shape: static inputs, the graph, its outputs and its gradient buffers."""

    def __init__(self, step: "GraphedStep", x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None):
        self.x, self.y = x.clone(), y.clone()
        self.lengths = None if lengths is None else lengths.clone()
        self.graph = torch.cuda.CUDAGraph()
        with step.capturing():
            with torch.cuda.graph(self.graph, pool=step.pool):
                self.out, self.loss = step.update(self.x, self.y, self.lengths)
        self.grads = [p.grad for p in step.params]  # written at each replay; held so the pool keeps them
        for p in step.params:  # p.grad would show this graph's last gradients whichever graph ran last
            p.grad = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None):
        self.x.copy_(x)
        self.y.copy_(y)
        if lengths is not None:
            self.lengths.copy_(lengths)
        self.graph.replay()
        return self.out.clone(), self.loss.clone()  # the next replay overwrites them


class GraphedStep:
    """`step(x, y, lengths) -> (output, loss)`, both detached: one whole training step, parameters updated."""

    def __init__(self, model: nn.Module, network: nn.Module, optimizer: torch.optim.Optimizer,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], grad_clip: float = 0.0):
        self.model, self.network, self.opt, self.loss_fn, self.grad_clip = model, network, optimizer, loss, grad_clip
        self.params = [p for p in model.parameters() if p.requires_grad]
        self._in_groups = [p for g in optimizer.param_groups for p in g["params"]]  # the order Lightning clips in
        self.graphs: dict[tuple, _StepGraph] = {}
        self.pool = None
        self.told = False
        self._kernel_lengths = KernelLengths(model)
        self._lr: list[torch.Tensor] = []  # the learning rate of each group, on the device, read by the graphs
        self.last: _StepGraph | None = None  # the graph of the last step (None: it ran eagerly)
        self.off: str | None = None  # why the steps run eagerly, once a capture failed
        self._hyper = self._fixed()

    def update(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None):
        """The step itself, eager or under capture: gradients from None, clipped, then AdamW's update."""
        out = _Forward(self.network, lengths is not None)(x, lengths)
        loss = self.loss_fn(out, y)
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self._in_groups, self.grad_clip)  # Lightning's clipping, the same sum
        torch.optim.AdamW.step(self.opt)  # the update itself (the suite's AdamW.step only runs closures here)
        return out.detach(), loss.detach()

    def eager(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None):
        for p in self.params:
            p.grad = None
        out, loss = self.update(x, y, lengths)
        for p in self.params:
            p.grad = None
        return out, loss

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None):
        if lengths is not None:
            x = self._kernel_lengths.pad(x)
        key = (tuple(x.shape), x.dtype, tuple(y.shape), y.dtype, None if lengths is None else tuple(lengths.shape))
        self._drop_if_grown()
        self._drop_if_retuned()
        graph = self.graphs.get(key)
        if graph is None and len(self.graphs) < MAX_GRAPHS and self.off is None:
            graph = self._capture(key, x, y, lengths)
        elif graph is None and not self.told and self.off is None:
            print(f"note: cuda_graph: more than {MAX_GRAPHS} batch shapes; new shapes train eagerly", file=sys.stderr)
            self.told = True
        self.last = graph
        if graph is None:
            return self.eager(x, y, lengths)
        self._write_learning_rates()
        return graph(x, y, lengths)

    def _capture(self, key: tuple, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None):
        """The graph of this batch shape, or None (and every later step eager, after a note) when the step cannot
        be captured."""
        self._warm_up(x, y, lengths)
        self._drop_if_grown()
        try:
            self.graphs[key] = _StepGraph(self, x, y, lengths)
        except RuntimeError as exc:
            self.off = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}" if str(exc) else type(exc).__name__
            self.graphs.clear()
            print(f"note: capturing the training step as a CUDA graph failed ({self.off}); training eagerly",
                  file=sys.stderr)
            return None
        return self.graphs[key]

    def _drop_if_grown(self) -> None:
        if self._kernel_lengths.grew():  # an S4 kernel grew (an input longer than data.l_max): the graphs are stale
            self.graphs.clear()

    def _fixed(self) -> list[dict]:
        """What a captured update holds as constants: every group's hyperparameters but the learning rate."""
        return [{k: v for k, v in g.items() if k not in ("params", "lr", "initial_lr")} for g in self.opt.param_groups]

    def _drop_if_retuned(self) -> None:
        now = self._fixed()
        if now != self._hyper:  # betas, eps or weight decay changed since the captures (not a schedule we use)
            self.graphs.clear()
            self._hyper = now

    def _write_learning_rates(self) -> None:
        for lr, group in zip(self._lr, self.opt.param_groups):
            lr.fill_(group["lr"])

    @torch.no_grad()
    def _snapshot(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Copies of the normalisation layers' running statistics, which the warm-up's forward passes update."""
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
        return [(b, b.clone()) for m in norms for b in m.buffers(recurse=False)]

    def _warm_up(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None) -> None:
        """Run the step's forward and backward twice on a side stream, updating nothing; create AdamW's state for
        the parameters that get a gradient; the buffers as they were."""
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
            # the parameters' AccumulateGrad nodes are made on the capture's stream: a graph-free step (beyond
            # MAX_GRAPHS) would warn of the mismatch at each step (one stream sync; results unchanged)
            torch.autograd.graph.set_warn_on_accumulate_grad_stream_mismatch(False)
            device = self.params[0].device
            self._lr = [torch.tensor(float(g["lr"]), device=device) for g in self.opt.param_groups]
        saved = self._snapshot()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                loss = self.loss_fn(_Forward(self.network, lengths is not None)(x, lengths), y)
                grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():
            for buffer, copy in saved:
                buffer.copy_(copy)
        init_adam_state(self.opt, [p for p, g in zip(self.params, grads) if g is not None])

    @contextlib.contextmanager
    def capturing(self):
        """For a capture: gradients from None, each group's learning rate the device tensor the graph reads and
        AdamW capturable (torch refuses a capture otherwise); the groups as they were afterwards."""
        groups = self.opt.param_groups
        saved = [(g["lr"], g["capturable"]) for g in groups]
        for p in self.params:
            p.grad = None
        for g, lr in zip(groups, self._lr):
            g["lr"], g["capturable"] = lr, True
        try:
            yield
        finally:
            for g, (lr, capturable) in zip(groups, saved):
                g["lr"], g["capturable"] = lr, capturable
