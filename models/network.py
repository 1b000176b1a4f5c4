"""The full network: encoder -> n_layers residual SSM blocks -> (final norm) -> decoder."""

from __future__ import annotations

import torch
from torch import nn

from models.block import Norm, ResidualBlock, SSMLayer, length_mask
from models.heads import HEADS
from models.ssm import ConvSSM


class SequenceModel(nn.Module):
    """Sequence classifier or regressor: n_layers residual blocks around `ssm(d_model, **ssm_options)`.

    encoder "embedding": x (B, L) integer tokens, d_input = vocabulary size.
    encoder "linear":    x (B, L, d_input) real features.
    Returns (B, d_output).
    """

    def __init__(
        self,
        ssm: type[ConvSSM],
        ssm_options: dict | None,
        d_input: int,
        d_output: int,
        encoder: str = "embedding",
        d_model: int = 128,
        n_layers: int = 4,
        dropout: float = 0.0,
        tie_dropout: bool = True,
        prenorm: bool = True,
        norm: str = "batch",
        decoder: str = "pool",
        rate: float = 1.0,
    ):
        super().__init__()
        if encoder == "embedding":
            self.encoder = nn.Embedding(d_input, d_model)
        elif encoder == "linear":
            self.encoder = nn.Linear(d_input, d_model)
        else:
            raise ValueError(f"unknown encoder {encoder!r}; expected 'embedding' or 'linear'")
        if decoder not in HEADS:
            raise ValueError(f"unknown decoder {decoder!r}; expected one of {sorted(HEADS)}")
        self.blocks = nn.ModuleList(
            ResidualBlock(SSMLayer(ssm(d_model, **(ssm_options or {})), dropout, tie_dropout), norm, prenorm, dropout,
                          tie_dropout)
            for _ in range(n_layers)
        )
        triton = all(b.layer.ssm.triton_kernels for b in self.blocks)  # the SSMs' backend (models/ssm.py)
        self.final_norm = Norm(d_model, norm, triton=triton) if prenorm else nn.Identity()
        self.decoder = HEADS[decoder](d_model, d_output)
        self.rate = rate
        # decoder "retrieval": inputs are document pairs, x (B, 2, L[, C]) with lengths (B, 2)
        self.pairs = decoder == "retrieval"

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, rate: float | None = None):
        rate = self.rate if rate is None else rate
        if self.pairs:  # both documents through the shared backbone: first documents, then second ones
            if x.dim() < 3 or x.shape[1] != 2:
                raise ValueError(f"decoder 'retrieval' takes document pairs x (B, 2, L), got {tuple(x.shape)}")
            x = torch.cat([x[:, 0], x[:, 1]])  # (2B, L[, C])
            lengths = None if lengths is None else torch.cat([lengths[:, 0], lengths[:, 1]])  # (2B,)
        h = self.encoder(x).transpose(1, 2)  # (B, H, L)
        mask = length_mask(lengths, h.shape[-1], h.device)
        for block in self.blocks:
            h = block(h, mask, rate)
        h = self.final_norm(h)
        return self.decoder(h, lengths)
