"""S4: the diagonal-plus-low-rank state-space model (Gu, Goel, Ré 2022; docs/models.md §2).

State matrix in the HiPPO-LegS eigenbasis, N//2 complex modes kept, conjugates implied:

    A = Lambda - P P^*,     Lambda_n = -exp(a_n) + i b_n

Bilinear discretisation:  A_bar = (I - dt/2 A)^{-1} (I + dt/2 A),   B_bar = (I - dt/2 A)^{-1} dt B.

Kernel by its truncated generating function at the roots of unity w_k = exp(-2 pi i k / L):

    K^(w) = sum_{l<L} C A_bar^l B_bar w^l = C~ (I - A_bar w)^{-1} B_bar,      C~ = C (I - A_bar^L)
          = 2/(1+w) C~ (g(w) - A)^{-1} B,                                     g(w) = (2/dt)(1-w)/(1+w)

and with Woodbury for the low-rank term, writing t = 1 + w and s_ab = sum_n 2 a_n b_n / ((2/dt)(1-w) - t lambda_n)
(summed over both members of each conjugate pair):

    K^(w) = s_CB - t s_CP s_QB / (2 + t s_QP),        Q = conj(P)

This form has no singularity at w = -1. K = irFFT_L(K^). The stored parameter is C~ (the reference's
"C-tilde trick"); a request longer than the current length L doubles it: C~ <- C~ (I + A_bar^L).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.hippo import nplr_legs
from models.ops.cauchy import cauchy_pairs
from models.ssm import ConvSSM


def _full_space(x: torch.Tensor) -> torch.Tensor:
    """(..., N2) half of a conjugate-symmetric vector -> (..., 2 N2) with the conjugates appended."""
    return torch.cat([x, x.conj()], dim=-1)


class S4(ConvSSM):
    ssm_roles = {"log_dt": "dt", "A_log_re": "A", "A_im": "A", "P": "A", "B": "B"}

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        bidirectional: bool = False,
        n_ssm: int | None = None,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        l_max: int = 1024,
        backend: str = "triton",
    ):
        super().__init__(d_model, bidirectional, backend)
        self._init_diagonal(d_state, n_ssm, dt_min, dt_max)
        H, N2, n_ssm = d_model, self.N2, self.n_ssm
        Lambda, P, B, _ = nplr_legs(d_state)  # (N2,) complex128 each
        self.A_log_re = nn.Parameter(torch.log(-Lambda.real.clamp(max=-1e-3)).float().repeat(n_ssm, 1))
        self.A_im = nn.Parameter(Lambda.imag.float().repeat(n_ssm, 1))  # (n_ssm, N2)
        self.P = nn.Parameter(torch.view_as_real(P.to(torch.complex64)).repeat(n_ssm, 1, 1))  # (n_ssm, N2, 2)
        self.B = nn.Parameter(torch.view_as_real(B.to(torch.complex64)).repeat(n_ssm, 1, 1))  # (n_ssm, N2, 2)
        C = torch.randn(self.channels, H, N2, dtype=torch.complex64)
        self.register_buffer("L", torch.tensor(0), persistent=True)  # length C~ currently refers to
        self._length = 0  # the same as a Python int: reading the buffer on a GPU would synchronise
        self._nodes: dict = {}  # (Lk, device, dtype) -> rFFT nodes w and t = 1 + w, (K,) each
        self.C = nn.Parameter(torch.view_as_real(C))  # (channels, H, N2, 2): C until first use, then C~
        self._grow(l_max)

    # Parameters in complex form --------------------------------------------------------------

    def system(self, rate: float = 1.0):
        """dt (H,), Lambda (H, N2), P (H, N2), B (H, N2), C~ (channels, H, N2)."""
        Lambda = self.diagonal_A()
        P = self._per_feature(torch.view_as_complex(self.P))
        B = self._per_feature(torch.view_as_complex(self.B))
        dt = torch.exp(self.log_dt) * rate
        return dt, Lambda, P, B, torch.view_as_complex(self.C)

    def dense_discrete(self, rate: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """A_bar (H, 2N2, 2N2) and B_bar (H, 2N2) of the full (conjugate-completed) system, float64."""
        dt, Lambda, P, B, _ = (x.detach().to(torch.complex128) for x in self.system(rate))
        Lf, Pf, Bf = _full_space(Lambda), _full_space(P), _full_space(B)
        A = torch.diag_embed(Lf) - Pf.unsqueeze(-1) * Pf.conj().unsqueeze(-2)  # (H, N, N)
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        half = dt.real.view(-1, 1, 1) / 2 * A
        A_bar = torch.linalg.solve(eye - half, eye + half)
        B_bar = torch.linalg.solve(eye - half, (dt.real.view(-1, 1) * Bf).unsqueeze(-1)).squeeze(-1)
        return A_bar, B_bar

    @torch.no_grad()
    def _grow(self, L: int) -> None:
        """Make C~ refer to a length >= L: from C at first use, then by doubling (docs/models.md eq. (9))."""
        A_bar, _ = self.dense_discrete()
        eye = torch.eye(A_bar.shape[-1], dtype=A_bar.dtype, device=A_bar.device)
        C = torch.view_as_complex(self.C).to(torch.complex128)  # (channels, H, N2)
        length = self._length
        if length == 0:  # C -> C (I - A_bar^L)
            length = L
            factor = eye - torch.linalg.matrix_power(A_bar, length)
        else:
            factor = eye
            while length < L:  # C~ (I - A^L)^{-1} (I - A^2L) = C~ (I + A^L)
                factor = factor @ (eye + torch.linalg.matrix_power(A_bar, length))
                length *= 2
        Cf = torch.einsum("chn,hnm->chm", _full_space(C), factor)[..., : self.N2]
        self.C.copy_(torch.view_as_real(Cf.to(torch.view_as_complex(self.C).dtype)))
        self.L.fill_(length)
        self._length = length

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._length = int(self.L)  # a checkpoint's C~ refers to its own length

    def recover_C(self) -> torch.Tensor:
        """C (channels, H, 2N2) of the full system from C~: C = C~ (I - A_bar^L)^{-1}, float64."""
        A_bar, _ = self.dense_discrete()
        eye = torch.eye(A_bar.shape[-1], dtype=A_bar.dtype, device=A_bar.device)
        Ct = _full_space(torch.view_as_complex(self.C.detach()).to(torch.complex128))
        M = eye - torch.linalg.matrix_power(A_bar, self._length)  # (H, N, N)
        # C M = C~  <=>  M^T C^T = C~^T
        return torch.linalg.solve(M.transpose(-1, -2).unsqueeze(0), Ct.unsqueeze(-1)).squeeze(-1)

    @property
    def kernel_length(self) -> int:
        """The length C~ refers to: data.l_max from construction; `kernel` doubles it for a longer input (the
        reference's behaviour), which the CUDA graphs watch (suite/train/cuda_graphs.py, KernelLengths)."""
        return self._length

    # Convolution mode -------------------------------------------------------------------------

    def kernel(self, L: int, rate: float = 1.0) -> torch.Tensor:
        """K (channels, H, L) for an input of length L at step rate * dt."""
        # The generating function is evaluated at the stored length; at rate r the same C~ serves a
        # length L / r (A_bar at r dt is close to A_bar^r at dt), as in the reference.
        while round(self._length / rate) < L:
            self._grow(2 * self._length)
        Lk = round(self._length / rate)
        dt, Lambda, P, B, Ct = self.system(rate)
        w, t = self.nodes(Lk, dt)  # (K,) each, K = Lk // 2 + 1
        alpha = (2 / dt).unsqueeze(-1) * (1 - w)  # (H, K)
        left = torch.cat([Ct, P.conj().unsqueeze(0)], dim=0)  # (channels + 1, H, N2): C~ and Q
        right = torch.stack([B, P], dim=0)  # (2, H, N2)
        s = cauchy_pairs(left, right, Lambda, alpha, t, use_triton=self.use_triton)  # (channels + 1, 2, H, K)
        s_CB, s_CP, s_QB, s_QP = s[:-1, 0], s[:-1, 1], s[-1, 0], s[-1, 1]
        K_hat = s_CB - t * s_CP * s_QB / (2 + t * s_QP)  # (channels, H, K)
        K = torch.fft.irfft(K_hat, n=Lk)  # (channels, H, Lk)
        return K[..., :L]

    def nodes(self, Lk: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rFFT nodes w_k = exp(-2 pi i k / Lk), k = 0 .. Lk // 2, and t = 1 + w; cached per length."""
        key = (Lk, like.device, like.dtype)
        if key not in self._nodes:
            k = torch.arange(Lk // 2 + 1, device=like.device, dtype=like.dtype)
            w = torch.polar(torch.ones_like(k), -2 * math.pi * k / Lk)
            self._nodes[key] = (w, 1 + w)
        return self._nodes[key]

    # Recurrent mode (dense: O(N^2) per step) ----------------------------------------------------

    def setup_step(self, rate: float = 1.0) -> None:
        self._check_step()
        A_bar, B_bar = self.dense_discrete(rate)
        dtype = torch.complex128 if self.C.dtype == torch.float64 else torch.complex64
        self._A_bar, self._B_bar = A_bar.to(dtype), B_bar.to(dtype)
        self._C_step = self.recover_C()[0].to(dtype)  # (H, N)

    def default_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, *self._B_bar.shape, dtype=self._B_bar.dtype, device=self.C.device)

    def step(self, u_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u_t (B, H), state (B, H, N) -> y_t (B, H), next state."""
        state = torch.einsum("hnm,bhm->bhn", self._A_bar, state) + self._B_bar * u_t.unsqueeze(-1)
        y = (self._C_step * state).sum(-1).real + self.D * u_t
        return y, state
