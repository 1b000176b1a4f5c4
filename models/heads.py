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


class RetrievalHead(nn.Module):
    """Document matching (LRA Retrieval): the batch holds the first documents of B pairs, then their second
    documents, x (2B, H, L) with lengths (2B,). Each document is mean-pooled over its valid positions, then
    an MLP classifies the pair from [a, b, a - b, a * b] (4H) -> Linear(4H, H) -> GELU -> Linear(H, d_output),
    the reference's `retrieval` decoder (nli=True, activation gelu). Returns (B, d_output)."""

    def __init__(self, H: int, d_output: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * H, H), nn.GELU(), nn.Linear(H, d_output))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            pooled = x.mean(-1)  # (2B, H)
        else:
            mask = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]  # (2B, L)
            pooled = (x * mask[:, None, :]).sum(-1) / lengths[:, None].clamp(min=1).to(x.dtype)
        a, b = pooled.chunk(2)  # (B, H) each
        return self.mlp(torch.cat([a, b, a - b, a * b], dim=-1))


HEADS["retrieval"] = RetrievalHead
