"""Training forward and backward as CUDA graphs (`trainer.cuda_graph`: auto, the default, true or false, with
`trainer.cuda_graph_scope: network`; the default scope, step, puts the whole step in the graph with the same
padding, kernel-length watch and shape limit: suite/train/step_graphs.py).

auto uses them when training runs on exactly one CUDA GPU at a precision they cover (GRAPHED_PRECISIONS,
suite/config.py), and otherwise trains eagerly after one line on stderr saying why (`obstacle`); true makes
any obstacle an error; false (`suite run --eager`) trains eagerly.

At the sizes of the paper's recipes (e.g. ListOps, batch 12 x 2048) a training step launches a few
thousand small kernels, and their launch cost, not the GPU, sets the pace: replaying the network's
forward and backward as CUDA graphs (torch.cuda.make_graphed_callables) runs the same kernels with
one launch each way. The loss, the metrics, gradient clipping and AdamW stay eager.

A graph is captured per batch shape, at the first training batch of that shape, into one shared
memory pool; at most MAX_GRAPHS shapes are kept, later new shapes run eagerly (with one notice).
S4-family layers extend their kernel length on first sight of a longer input (`kernel_length`, models/s4.py),
a Python-side change that a captured graph would not see: when any layer's length changes (in a
capture, an eager step or a validation pass), every graph is dropped and recaptured on demand.
Variable-length batches (tasks whose batches carry `lengths`) are zero-padded along the sequence axis
to a multiple of BUCKET first, so that a few shapes cover an epoch, but never past the length the S4 layers'
kernels were built for (data.l_max; `KernelLengths.room`): padding a 4000-step task to 4096 would double every
S4 kernel and train C~ at 8000 steps where the eager step trains it at 4000. That changes nothing in the
result: the network zeroes every position past a sequence's length before each SSM layer and pools
over valid positions only (models/block.py, models/heads.py), and the two parts that read the batch's
own length, BatchNorm's training statistics and Liquid-S4's reference term, are given it as a device
tensor (lengths.max(): the collate pads a batch to its longest sequence) and compute for it
(models/padding.py; tests/suite/test_cuda_graphs.py checks padded against unpadded in float64).

The captured step is the eager step replayed (benchmarks/fast_path_check.py compares them on the GPU:
outputs and every gradient within 1e-4 relative, measured 9e-7 to 2e-6).
"""

from __future__ import annotations

import contextlib
import sys

import torch
from torch import nn

BUCKET = 256  # variable lengths are padded up to a multiple of this
MAX_GRAPHS = 8  # shapes captured per run; more shapes run eagerly


def obstacle(device_type: str, world_size: int, precision: str) -> str | None:
    """Why CUDA graphs cannot run this training (a short phrase), or None when they can."""
    from suite.config import GRAPHED_PRECISIONS

    if device_type != "cuda":
        return f"training on {device_type}, not a CUDA GPU"
    if world_size > 1:
        return f"{world_size} processes (DDP); graphs run on one GPU"
    if str(precision) not in GRAPHED_PRECISIONS:
        return f"precision {precision} (graphs cover {', '.join(GRAPHED_PRECISIONS)})"
    return None


def padded_length(L: int, multiple: int, room: int | None = None) -> int:
    """L rounded up to a multiple of `multiple`, but not past `room` (the longest input no layer's kernel has to
    grow for); an input longer than `room` makes the kernels grow anyway (by doubling), and is rounded up."""
    up = L + -L % multiple
    return up if room is None or L > room else min(up, room)


def pad_sequence_axis(x: torch.Tensor, multiple: int, room: int | None = None) -> torch.Tensor:
    """Zero-pad the sequence axis of a network input up to a multiple of `multiple` (not past `room`:
    padded_length): the last axis of token ids (B, L) or pairs (B, 2, L) (integer dtype), axis -2 of features
    (B, L, C) or (B, 2, L, C)."""
    axis = -1 if not x.is_floating_point() else -2
    L = x.shape[axis]
    extra = padded_length(L, multiple, room) - L
    if extra == 0:
        return x
    pad = [0, 0] * (-axis - 1) + [0, extra]  # F.pad lists the last axis first
    return nn.functional.pad(x, pad)


def _autocast_dtype() -> torch.dtype | None:
    """The dtype of the active CUDA autocast (mixed precision), or None."""
    return torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None


class _Forward(nn.Module):
    """model(x, lengths) with tensor arguments only, the form make_graphed_callables takes. With lengths, x is
    zero-padded past the batch's longest sequence: the modules that read the batch's length (BatchNorm's
    statistics, Liquid-S4's reference term) compute for that length, read on the device (models/padding.py)."""

    def __init__(self, model: nn.Module, with_lengths: bool):
        super().__init__()
        self.model, self.with_lengths = model, with_lengths

    def forward(self, x, lengths=None):
        if not self.with_lengths:
            return self.model(x, None)
        from models.padding import batch_length

        with batch_length(self.model, lengths.max()):  # the collate pads each batch to its longest sequence
            return self.model(x, lengths)


class KernelLengths:
    """The kernel length of every layer whose kernel can grow (S4's `kernel_length`, models/s4.py), read at
    each step; the layers are found once (walking every module at every step cost the host ~0.3 ms a step).
    Each holder of graphs (training, whole step, evaluation) keeps one: it pads variable-length batches within
    the kernels' room (`pad`) and says when a layer grew since it last looked (`grew`: every graph is stale)."""

    def __init__(self, model: nn.Module):
        self.layers = [m for m in model.modules() if hasattr(m, "kernel_length")]
        self.rate = getattr(model, "rate", 1.0)  # the network's own step-size multiplier (model.rate)
        self.seen = self()

    def __call__(self) -> tuple:
        return tuple(m.kernel_length for m in self.layers)

    def room(self, rate: float | None = None) -> int | None:
        """The longest input at step rate * dt (default: the network's rate) for which no layer's kernel grows
        (models/s4.py `kernel`), or None when no layer has a stored length."""
        rate = self.rate if rate is None else rate
        return min((round(m.kernel_length / rate) for m in self.layers), default=None)

    def pad(self, x: torch.Tensor, rate: float | None = None) -> torch.Tensor:
        """x zero-padded along the sequence axis to the bucket length, not past the room at `rate`."""
        return pad_sequence_axis(x, BUCKET, self.room(rate))

    def grew(self) -> bool:
        """Whether a layer's kernel length changed since the last call (or since this was made)."""
        now = self()
        grew, self.seen = now != self.seen, now
        return grew


class GraphedTraining:
    """Calls `model(x, lengths)` for training batches through CUDA graphs, one per batch shape."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.graphs: dict[tuple, nn.Module] = {}
        self.pool = None
        self.told = False
        self._kernel_lengths = KernelLengths(model)

    def _drop_if_grown(self) -> None:
        """Forget every graph when a layer's kernel length changed since they were captured."""
        if self._kernel_lengths.grew():
            self.graphs.clear()

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if lengths is not None:
            x = self._kernel_lengths.pad(x)
        key = (tuple(x.shape), x.dtype, None if lengths is None else tuple(lengths.shape), _autocast_dtype())
        self._drop_if_grown()  # a layer may have grown in an eager step or a validation pass
        graphed = self.graphs.get(key)
        if graphed is None:
            if len(self.graphs) >= MAX_GRAPHS:
                if not self.told:
                    print(f"note: cuda_graph: more than {MAX_GRAPHS} batch shapes; new shapes run eagerly",
                          file=sys.stderr)
                    self.told = True
                return _Forward(self.model, lengths is not None)(x, lengths)
            graphed = self._capture(x, lengths)
            self._drop_if_grown()  # this capture's warm-up may have grown a layer: the older graphs are stale
            self.graphs[key] = graphed
        return graphed(x) if lengths is None else graphed(x, lengths)

    def _capture(self, x: torch.Tensor, lengths: torch.Tensor | None) -> nn.Module:
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
            # The parameters' AccumulateGrad nodes are created on make_graphed_callables' capture stream and
            # kept alive by the graph, so the first graphed backward warns of a stream mismatch: one stream sync,
            # included in the throughput of BENCHMARKS.md; results unchanged (tests/suite/test_cuda_graphs.py).
            torch.autograd.graph.set_warn_on_accumulate_grad_stream_mismatch(False)
        params = list(self.model.parameters())
        grads = [p.grad for p in params]  # the warm-up runs of the capture must not add to them
        args = (x,) if lengths is None else (x, lengths)
        dtype = _autocast_dtype()
        with torch.autocast("cuda", dtype=dtype, cache_enabled=False) if dtype else contextlib.nullcontext():
            # mixed precision: captured under autocast without its weight-cast cache, which graphs cannot keep
            graphed = torch.cuda.make_graphed_callables(_Forward(self.model, lengths is not None), args,
                                                        pool=self.pool)
        for p, g in zip(params, grads):
            p.grad = g
        return graphed
