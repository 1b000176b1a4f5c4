"""The SSM layer and the residual block around it (docs/models.md §6).

Layer:  (B, H, L) -> zero padded positions -> y = K * u + D u -> GELU -> Dropout -> Linear(H, 2H) -> GLU
Block:  z = Norm(x) if prenorm else x;  x = x + Dropout(Layer(z));  x = Norm(x) if postnorm
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.padding import batch_norm_first
from models.ssm import ConvSSM


class TiedDropout(nn.Module):
    """Dropout with one mask per (batch, feature), shared along time when `tie` is set."""

    def __init__(self, p: float, tie: bool = True):
        super().__init__()
        self.p, self.tie = p, tie

    def scaled_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """The keep mask divided by 1 - p, (B, H, 1) when tied, else x's shape; None when dropout is off.
        Draws the same random numbers as `forward_ref`."""
        if not self.training or self.p == 0:
            return None
        shape = x.shape[:2] + (1,) if self.tie else x.shape
        return (torch.rand(shape, device=x.device) >= self.p).to(x.dtype) / (1 - self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, L)
        """x * (mask / (1 - p)): one pass over x (the tied mask is scaled while it is (B, H, 1))."""
        mask = self.scaled_mask(x)
        return x if mask is None else x * mask

    def forward_ref(self, x: torch.Tensor) -> torch.Tensor:
        """Plain twin of `forward`: x * mask / (1 - p), two passes over x."""
        if not self.training or self.p == 0:
            return x
        shape = x.shape[:2] + (1,) if self.tie else x.shape
        mask = torch.rand(shape, device=x.device) >= self.p
        return x * mask / (1 - self.p)


def length_mask(lengths: torch.Tensor | None, L: int, device: torch.device) -> torch.Tensor | None:
    """(B,) valid lengths -> (B, 1, L) float mask, or None when every position is valid."""
    if lengths is None:
        return None
    return (torch.arange(L, device=device)[None, :] < lengths[:, None]).unsqueeze(1).float()


class SSMLayer(nn.Module):
    def __init__(self, ssm: ConvSSM, dropout: float = 0.0, tie_dropout: bool = True):
        super().__init__()
        H = ssm.H
        self.ssm = ssm
        self.dropout = TiedDropout(dropout, tie_dropout)
        self.output = nn.Conv1d(H, 2 * H, kernel_size=1)  # Linear(H, 2H) along features

    def forward(self, u: torch.Tensor, mask: torch.Tensor | None = None, rate: float = 1.0) -> torch.Tensor:
        """u (B, H, L) -> (B, H, L)."""
        if mask is not None:
            u = u * mask
        y = self.ssm(u, rate)
        y = self.dropout(F.gelu(y))
        return F.glu(self.output(y), dim=1)

    def setup_step(self, rate: float = 1.0) -> None:
        self.ssm.setup_step(rate)

    def step(self, u_t: torch.Tensor, state):
        """u_t (B, H) -> (y_t (B, H), state); the recurrent twin of `forward` (eval mode)."""
        y, state = self.ssm.step(u_t, state)
        y = self.dropout(F.gelu(y).unsqueeze(-1))
        return F.glu(self.output(y), dim=1).squeeze(-1), state


class Norm(nn.Module):
    """BatchNorm1d or LayerNorm over the feature axis of a (B, H, L) tensor. `triton`: BatchNorm over a padded
    batch's true length may run as fused Triton kernels (models/padding.py); off with the SSM's `backend` torch or
    plain, as every other Triton kernel."""

    def __init__(self, H: int, kind: str, triton: bool = True):
        super().__init__()
        self.triton = triton
        if kind not in ("batch", "layer"):
            raise ValueError(f"unknown norm {kind!r}; expected 'batch' or 'layer'")
        self.kind = kind
        self.norm = nn.BatchNorm1d(H) if kind == "batch" else nn.LayerNorm(H)
        self.batch_length: torch.Tensor | None = None  # set by models.padding.batch_length for padded batches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "batch":
            if self.batch_length is not None and self.training:
                return batch_norm_first(x, self.norm, self.batch_length, self.triton)  # the unpadded batch's
            return self.norm(x)
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ResidualBlock(nn.Module):
    def __init__(self, layer: SSMLayer, norm: str = "batch", prenorm: bool = True, dropout: float = 0.0,
                 tie_dropout: bool = True):
        super().__init__()
        self.layer = layer
        self.norm = Norm(layer.ssm.H, norm, triton=layer.ssm.triton_kernels)
        self.prenorm = prenorm
        self.dropout = TiedDropout(dropout, tie_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, rate: float = 1.0) -> torch.Tensor:
        z = self.norm(x) if self.prenorm else x
        y = self.layer(z, mask, rate)
        keep = self.dropout.scaled_mask(y)
        x = x + y if keep is None else torch.addcmul(x, y, keep)  # dropout and residual in one pass
        return x if self.prenorm else self.norm(x)

    def forward_ref(self, x: torch.Tensor, mask: torch.Tensor | None = None, rate: float = 1.0) -> torch.Tensor:
        """Plain twin of `forward`: residual added after a separate dropout."""
        z = self.norm(x) if self.prenorm else x
        x = x + self.dropout.forward_ref(self.layer(z, mask, rate))
        return x if self.prenorm else self.norm(x)
