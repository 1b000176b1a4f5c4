"""What every SSM in the registry shares: y = K * u + D u, bidirectionality, SSM parameter roles.

A subclass supplies `kernel(L, rate) -> (channels, H, L)` and, for the recurrent mode,
`setup_step(rate)`, `default_state(batch)` and `step(u_t, state)`.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

from models.ops.fftconv import fft_conv, fft_conv_autograd, two_sided


BACKENDS = ("triton", "torch", "plain")  # `backend` of every SSM: see ConvSSM.__init__


class ConvSSM(nn.Module, abc.ABC):
    """Base class: convolution mode of an SSM with kernel channels for each direction.

    `ssm_roles` maps a parameter name to its role ("dt", "A" or "B"): the optimiser gives these
    their own learning rate and no weight decay (docs/models.md §5).
    """

    ssm_roles: dict[str, str] = {}

    def __init__(self, d_model: int, bidirectional: bool = False, backend: str = "triton"):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        self.H = d_model
        self.bidirectional = bidirectional
        self.channels = 2 if bidirectional else 1
        self.D = nn.Parameter(torch.randn(d_model))  # (H,) skip connection
        # plain: the plain twins of the fused fast paths (autograd FFT convolution, skip term added separately,
        # liquid terms one by one), the baseline the fast paths are tested against; torch: the fused paths with
        # PyTorch kernels; triton: with the fused Triton kernels where they apply (CUDA, complex64, triton
        # importable: models/ops/*_triton.py), the default
        self.backend = backend
        self.fused = backend != "plain"
        self.triton_kernels = backend == "triton"

    def _init_diagonal(self, d_state: int, n_ssm: int | None, dt_min: float, dt_max: float) -> None:
        """N2 = d_state // 2 modes, n_ssm (A, B) copies (None = one per feature), log dt ~ U[log dt_min, log dt_max]."""
        n_ssm = n_ssm or self.H
        if self.H % n_ssm:
            raise ValueError(f"n_ssm = {n_ssm} must divide d_model = {self.H}")
        self.N2, self.n_ssm = d_state // 2, n_ssm
        log_dt = torch.rand(self.H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)  # (H,)

    def _per_feature(self, x: torch.Tensor) -> torch.Tensor:
        """(n_ssm, ...) -> (H, ...): feature h uses copy h % n_ssm."""
        if self.n_ssm == self.H:
            return x
        return x.repeat(self.H // self.n_ssm, *([1] * (x.dim() - 1)))

    def diagonal_A(self) -> torch.Tensor:
        """The diagonal of A per feature, (H, N2): -exp(A_log_re) + i A_im."""
        return self._per_feature(torch.complex(-torch.exp(self.A_log_re), self.A_im))

    @abc.abstractmethod
    def kernel(self, L: int, rate: float = 1.0) -> torch.Tensor:
        """The convolution kernel (channels, H, L) at step size rate * dt."""

    def param_roles(self):
        """Yield (role, parameter) for the SSM parameters of this module."""
        for name, p in self.named_parameters(recurse=False):
            if name in self.ssm_roles:
                yield self.ssm_roles[name], p

    def forward(self, u: torch.Tensor, rate: float = 1.0) -> torch.Tensor:
        """u (B, H, L) -> y (B, H, L)."""
        L = u.shape[-1]
        k = self.kernel(L, rate)  # (channels, H, L)
        k = two_sided(k[0], k[1]) if self.bidirectional else k[0]  # (H, L) or (H, 2L)
        if not self.fused:
            return fft_conv_autograd(u, k.to(u.dtype)) + self.D[:, None] * u
        return fft_conv(u, self.with_skip(k), self.use_triton)

    def with_skip(self, k: torch.Tensor) -> torch.Tensor:
        """k (H, Lk) -> k + D delta: the skip term D u is the lag-0 tap of the convolution, so
        y = K * u + D u costs one FFT convolution and no extra pass over (B, H, L)."""
        return torch.cat([k[..., :1] + self.D[:, None].to(k.dtype), k[..., 1:]], dim=-1)

    @property
    def use_triton(self) -> bool:
        """Whether kernel generation may dispatch to the Triton kernels (each checks its inputs too)."""
        return self.fused and self.triton_kernels

    def _check_step(self) -> None:
        if self.bidirectional:
            raise RuntimeError("a bidirectional SSM has no recurrent mode: it looks at future inputs")
