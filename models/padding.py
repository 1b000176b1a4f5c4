"""Zero-padded batches that compute what the unpadded batch computes (the CUDA-graph buckets,
suite/train/cuda_graphs.py).

A batch of variable-length sequences is padded by its collate function to its longest sequence, L0. The CUDA-graph
path pads it further, to a bucket length L >= L0, so that a few captured shapes cover an epoch. Most of the network
ignores the extra zeros (every SSM layer zeroes the positions past each sequence's length; pooling reads valid
positions only), but two parts read the batch's length itself:

- BatchNorm in training: its statistics are taken over every position of the (B, H, L0) batch, the padded
  positions of the shorter sequences included;
- Liquid-S4's reference term (models/liquid.py, docs/liquid.md "Reference mode"): its combination window reads
  the batch's last positions, and KB multiplies spectra on grids of L0 + 1 and 2 L0 points.

Inside `batch_length(model, L0)`, with L0 a 0-dim tensor on the device (no host sync, so a CUDA graph can
capture it and read a new L0 at every replay), these modules compute their L0 result on the longer input.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable

import torch
from torch import nn

from models.ops import masked_norm_triton

# the fused Triton kernels of the masked BatchNorm (models/ops/masked_norm_triton.py), where they run: on by
# default (a ListOps step of s4d 6.3 ms against 8.2 with _MaskedBatchNorm on an H200, BENCHMARKS.md);
# SUITE_TRITON_NORM=0 turns them off
TRITON_NORM = os.environ.get("SUITE_TRITON_NORM", "1") != "0"


# the values that depend on the batch's length alone, built once per `batch_length` scope (see batch_constant)
_PER_BATCH: ContextVar[dict | None] = ContextVar("per_batch", default=None)


@contextmanager
def batch_length(model: nn.Module, L0: torch.Tensor | None):
    """While active, every module of `model` with a `batch_length` attribute (models.block.Norm,
    models.liquid.LiquidS4) computes as for an input of length L0, whatever zero padding follows it."""
    layers = [m for m in model.modules() if hasattr(m, "batch_length")]
    for m in layers:
        m.batch_length = L0
    token = _PER_BATCH.set({})
    try:
        yield
    finally:
        _PER_BATCH.reset(token)
        for m in layers:
            m.batch_length = None


def batch_constant(key: tuple, L0: torch.Tensor, build: Callable[[], torch.Tensor]) -> torch.Tensor:
    """`build()`, a tensor that depends only on the batch's length L0 and on `key`, built once per `batch_length`
    scope and shared by every layer that asks for it with the same L0 in that scope (one per forward pass, so a
    CUDA graph captures it once and a new L0 rebuilds it); outside a scope, and under torch.compile (which does
    not trace the scope's context variable), built at each call."""
    if torch.compiler.is_compiling():
        return build()
    memo = _PER_BATCH.get()
    if memo is None:
        return build()
    if key not in memo or memo[key][0] is not L0:
        memo[key] = (L0, build())
    return memo[key][1]


def batch_norm_first(x: torch.Tensor, bn: nn.BatchNorm1d, L0: torch.Tensor, triton: bool = True) -> torch.Tensor:
    """`bn(x[..., :L0])` zero-extended to x's length, in training mode: the batch statistics and the running-stat
    update (unbiased variance, as BatchNorm) over the first L0 positions. x (B, H, L).

    The forward and backward passes are written out (`_MaskedBatchNorm`: about half the passes over x of the
    composite autograd graph of `batch_norm_first_ref`, its plain twin, which the tests compare it with); in fused
    Triton kernels where they run (models/ops/masked_norm_triton.py) unless `triton` is False or
    SUITE_TRITON_NORM=0, and not inside torch.compile (which fuses the PyTorch formulas itself)."""
    n = (x.shape[0] * L0).to(x.dtype)
    weight = bn.weight if bn.affine else torch.ones(x.shape[1], device=x.device, dtype=x.dtype)
    bias = bn.bias if bn.affine else torch.zeros(x.shape[1], device=x.device, dtype=x.dtype)
    fused = triton and TRITON_NORM and not torch.compiler.is_compiling()
    if fused and masked_norm_triton.supported(x, L0, weight):
        y, mean, var = masked_norm_triton.MaskedBatchNorm.apply(x, L0.reshape(()), weight, bias, bn.eps)
    else:
        valid = (torch.arange(x.shape[-1], device=x.device) < L0).to(x.dtype)  # (L,)
        y, mean, var = _MaskedBatchNorm.apply(x, valid, n, weight, bias, bn.eps)
    if bn.track_running_stats and bn.running_mean is not None:
        _update_running_stats(bn, mean, var, n)
    return y


@torch.no_grad()
def _update_running_stats(bn: nn.BatchNorm1d, mean: torch.Tensor, var: torch.Tensor, n: torch.Tensor) -> None:
    bn.num_batches_tracked.add_(1)
    m = bn.momentum if bn.momentum is not None else 1 / bn.num_batches_tracked  # None: cumulative average
    bn.running_mean.lerp_(mean, m)
    bn.running_var.lerp_(var * n / (n - 1).clamp(min=1), m)


class _MaskedBatchNorm(torch.autograd.Function):
    """Per channel h, over the valid positions (v_l = 1 for l < L0) of the (B, H, L) input, n = B L0:

        mean = sum v x / n,   c = (x - mean) v,   var = sum c^2 / n,   r = (var + eps)^(-1/2)
        y = (w r c + b) v

    and for an upstream gradient g, with d = sum g v and e = sum g c r (the bias and weight gradients):

        dx = w r (g - d / n) v - w r^2 (e / n) c

    (the usual BatchNorm backward, restricted to the valid positions; dx is 0 past L0). Returns y and the batch
    mean and biased variance (no gradient) for the running statistics."""

    @staticmethod
    def forward(ctx, x, valid, n, weight, bias, eps):
        mean = (x * valid).sum((0, 2)) / n  # (H,)
        c = (x - mean[:, None]) * valid  # (B, H, L)
        var = torch.linalg.vector_norm(c, dim=(0, 2)).square() / n  # (H,)
        r = torch.rsqrt(var + eps)
        y = torch.addcmul(bias[:, None] * valid, c, (weight * r)[:, None])  # (B, H, L)
        ctx.save_for_backward(c, valid, n, weight, r)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, g, _mean, _var):
        c, valid, n, weight, r = ctx.saved_tensors
        d = (g * valid).sum((0, 2))  # (H,) the bias gradient
        e = (g * c).sum((0, 2)) * r  # (H,) the weight gradient (c is 0 past L0)
        wr = weight * r
        dx = torch.addcmul(-(wr * d / n)[:, None] * valid, g, wr[:, None] * valid)  # w r (g - d / n) v
        dx = torch.addcmul(dx, c, (-wr * r * e / n)[:, None])
        return dx, None, None, e, d, None


def batch_norm_first_ref(x: torch.Tensor, bn: nn.BatchNorm1d, L0: torch.Tensor) -> torch.Tensor:
    """`batch_norm_first` as plain autograd operations, formula by formula (its test twin)."""
    valid = (torch.arange(x.shape[-1], device=x.device) < L0).to(x.dtype)  # (L,)
    n = (x.shape[0] * L0).to(x.dtype)
    mean = (x * valid).sum((0, 2)) / n
    centred = (x - mean[:, None]) * valid
    var = centred.pow(2).sum((0, 2)) / n
    if bn.track_running_stats and bn.running_mean is not None:
        _update_running_stats(bn, mean.detach(), var.detach(), n)
    y = centred * torch.rsqrt(var + bn.eps)[:, None]
    if bn.affine:
        y = y * bn.weight[:, None] + bn.bias[:, None]
    return y * valid
