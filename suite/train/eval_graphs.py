"""Evaluation forward passes as CUDA graphs, beside the training graphs of suite/train/cuda_graphs.py.

Every epoch scores the validation and the test split (and test8k, ...). Run eagerly, a forward pass of the paper
networks at batch 12 launches a few thousand small kernels, and their launch cost sets the pace, as for training:
on ListOps the two splits cost about a tenth of the epoch eagerly (issue 12, target 2). So when training runs in
graphs, evaluation does too: one forward-only graph per (batch shape, lengths shape, rate, autocast dtype),
captured at the first batch of that key under the evaluation's own no-grad / inference mode, replayed after
copying the batch into its static inputs. Variable-length batches are zero-padded to the bucket length first
(not past the kernels' length), and the modules that read the batch's own length are given it on the device,
exactly as in training (suite/train/cuda_graphs.py; models/padding.py): the scores are those of the eager pass.

The graphs read the parameters and BatchNorm's running statistics in place, so they see every optimizer step.
A layer that extends its kernel length (S4's `kernel_length`) drops them all, as in training. More than
MAX_GRAPHS keys, or a capture that fails, and evaluation runs eagerly from then on (one note).
"""

from __future__ import annotations

import contextlib
import sys

import torch
from torch import nn

from suite.train.cuda_graphs import MAX_GRAPHS, KernelLengths, _autocast_dtype


class _Eval(nn.Module):
    """model(x, lengths, rate), the batch's length given on the device where the input was padded."""

    def __init__(self, model: nn.Module, rate: float | None):
        super().__init__()
        self.model, self.rate = model, rate

    def forward(self, x, lengths=None):
        if lengths is None:
            return self.model(x, None, self.rate)
        from models.padding import batch_length

        with batch_length(self.model, lengths.max()):  # the collate pads each batch to its longest sequence
            return self.model(x, lengths, self.rate)


class _Graph:
    def __init__(self, fn: _Eval, x: torch.Tensor, lengths: torch.Tensor | None, pool):
        self.x = x.clone()
        self.lengths = None if lengths is None else lengths.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up outside the capture (cuFFT plans, lazily built buffers)
            for _ in range(2):
                fn(self.x, self.lengths)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        dtype = _autocast_dtype()
        with torch.autocast("cuda", dtype=dtype, cache_enabled=False) if dtype else contextlib.nullcontext():
            with torch.cuda.graph(self.graph, pool=pool):
                self.out = fn(self.x, self.lengths)

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        self.x.copy_(x)
        if lengths is not None:
            self.lengths.copy_(lengths)
        self.graph.replay()
        return self.out.clone()  # the next replay overwrites self.out


class GraphedEvaluation:
    """Calls `model(x, lengths, rate)` for evaluation batches (model in eval mode, no grad) through CUDA graphs."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.graphs: dict[tuple, _Graph] = {}
        self.pool = None
        self.off: str | None = None  # why evaluation went back to eager, once it did
        self._kernel_lengths = KernelLengths(model)

    def _eager(self, x, lengths, rate):
        return self.model(x, lengths, rate)

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor | None, rate: float | None) -> torch.Tensor:
        if self.off is not None or torch.is_grad_enabled() or self.model.training:
            return self._eager(x, lengths, rate)
        if lengths is not None:
            x = self._kernel_lengths.pad(x, rate)
        key = (tuple(x.shape), x.dtype, None if lengths is None else tuple(lengths.shape), rate, _autocast_dtype(),
               torch.is_inference_mode_enabled())
        if self._kernel_lengths.grew():  # a layer grew (a longer batch, here or in training): the graphs are stale
            self.graphs.clear()
        graph = self.graphs.get(key)
        if graph is None:
            if len(self.graphs) >= MAX_GRAPHS:
                return self._eager(x, lengths, rate)
            try:
                if self.pool is None:
                    self.pool = torch.cuda.graph_pool_handle()
                graph = _Graph(_Eval(self.model, rate), x, lengths, self.pool)
            except RuntimeError as exc:
                self.off = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}" if str(exc) else type(exc).__name__
                self.graphs.clear()
                print(f"note: evaluation in CUDA graphs failed ({self.off}); evaluating eagerly", file=sys.stderr)
                return self._eager(x, lengths, rate)
            if self._kernel_lengths.grew():  # the warm-up grew a layer: the older graphs are stale
                self.graphs.clear()
            self.graphs[key] = graph
        return graph(x, lengths)
