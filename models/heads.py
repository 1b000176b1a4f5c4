"""Decoders from the last block's features (B, H, L) to predictions (B, d_output)."""

from __future__ import annotations

import torch
from torch import nn


class PoolHead(nn.Module):
    """Mean over the valid positions, then Linear(H, d_output). Regression is d_output = 1."""

    def __init__(self, H: int, d_output: int):
        super().__init__()
        self.linear = nn.Linear(H, d_output)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            pooled = x.mean(-1)
        else:
            mask = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]  # (B, L)
            pooled = (x * mask[:, None, :]).sum(-1) / lengths[:, None].clamp(min=1).to(x.dtype)
        return self.linear(pooled)


class LastHead(nn.Module):
    """The features at the last valid position, then Linear(H, d_output)."""

    def __init__(self, H: int, d_output: int):
        super().__init__()
        self.linear = nn.Linear(H, d_output)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            last = x[..., -1]
        else:
            index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, x.shape[1], 1)
            last = x.gather(-1, index).squeeze(-1)
        return self.linear(last)


HEADS = {"pool": PoolHead, "last": LastHead}
