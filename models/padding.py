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

from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def batch_length(model: nn.Module, L0: torch.Tensor | None):
    """While active, every module of `model` with a `batch_length` attribute (models.block.Norm,
    models.liquid.LiquidS4) computes as for an input of length L0, whatever zero padding follows it."""
    layers = [m for m in model.modules() if hasattr(m, "batch_length")]
    for m in layers:
        m.batch_length = L0
    try:
        yield
    finally:
        for m in layers:
            m.batch_length = None


def batch_norm_first(x: torch.Tensor, bn: nn.BatchNorm1d, L0: torch.Tensor) -> torch.Tensor:
    """`bn(x[..., :L0])` zero-extended to x's length, in training mode: the batch statistics and the running-stat
    update (unbiased variance, as BatchNorm) over the first L0 positions. x (B, H, L)."""
    valid = (torch.arange(x.shape[-1], device=x.device) < L0).to(x.dtype)  # (L,)
    n = (x.shape[0] * L0).to(x.dtype)
    mean = (x * valid).sum((0, 2)) / n
    centred = (x - mean[:, None]) * valid
    var = centred.pow(2).sum((0, 2)) / n
    if bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            m = bn.momentum if bn.momentum is not None else 1 / bn.num_batches_tracked  # None: cumulative average
            bn.running_mean.lerp_(mean.detach(), m)
            bn.running_var.lerp_(var.detach() * n / (n - 1).clamp(min=1), m)
    y = centred * torch.rsqrt(var + bn.eps)[:, None]
    if bn.affine:
        y = y * bn.weight[:, None] + bn.bias[:, None]
    return y * valid
