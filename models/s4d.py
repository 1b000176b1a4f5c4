"""S4D: the diagonal state-space model (Gu et al. 2022, "On the Parameterization and
Initialization of Diagonal State Space Models"; docs/models.md §3,
eqs. (2), (3) and (15)).

Per feature h and mode n (N // 2 complex modes, conjugates implied):

    x_k = A_bar x_{k-1} + B_bar u_k,       y_k = 2 Re(C x_k) + D u_k

    ZOH:       A_bar = exp(dt A),                   B_bar = (exp(dt A) - 1) / A * B
    bilinear:  A_bar = (1 + dt A/2) / (1 - dt A/2), B_bar = dt B / (1 - dt A/2)

    K[l] = 2 Re sum_n C_n B_bar_n A_bar_n^l           (Vandermonde product)

`rate` multiplies the step size (dt <- rate * dt), e.g. 2 for a signal sampled at half the rate.
"""

from __future__ import annotations

import torch
from torch import nn

from models.hippo import s4d_init
from models.ops.vandermonde import vandermonde
from models.ssm import ConvSSM


class S4D(ConvSSM):
    ssm_roles = {"log_dt": "dt", "A_log_re": "A", "A_im": "A", "B": "B"}

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        bidirectional: bool = False,
        n_ssm: int | None = None,
        init: str = "legs",
        disc: str = "zoh",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        backend: str = "triton",
    ):
        super().__init__(d_model, bidirectional, backend)
        if disc not in ("zoh", "bilinear"):
            raise ValueError(f"unknown discretisation {disc!r}; expected 'zoh' or 'bilinear'")
        self._init_diagonal(d_state, n_ssm, dt_min, dt_max)
        H, N2, n_ssm, self.disc = d_model, self.N2, self.n_ssm, disc

        A, B = s4d_init(d_state, init)  # (N2,) complex128
        self.A_log_re = nn.Parameter(torch.log(-A.real).float().repeat(n_ssm, 1))  # (n_ssm, N2): Re A = -exp
        self.A_im = nn.Parameter(A.imag.float().repeat(n_ssm, 1))  # (n_ssm, N2)
        self.B = nn.Parameter(torch.view_as_real(B.to(torch.complex64)).repeat(n_ssm, 1, 1))  # (n_ssm, N2, 2)
        C = torch.randn(self.channels, H, N2, dtype=torch.complex64)
        self.C = nn.Parameter(torch.view_as_real(C))  # (channels, H, N2, 2)

    def discretize(self, rate: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """A_bar, B_bar, each (H, N2) complex."""
        A = self.diagonal_A()  # (H, N2)
        B = self._per_feature(torch.view_as_complex(self.B))  # (H, N2)
        dt = (torch.exp(self.log_dt) * rate)[:, None]  # (H, 1)
        dtA = dt * A
        if self.disc == "zoh":
            A_bar = torch.exp(dtA)
            B_bar = (A_bar - 1) / A * B
        else:
            A_bar = (1 + dtA / 2) / (1 - dtA / 2)
            B_bar = dt * B / (1 - dtA / 2)
        return A_bar, B_bar

    def log_A_bar(self, A_bar: torch.Tensor, rate: float) -> torch.Tensor:
        if self.disc == "zoh":  # exact: log exp(dt A) = dt A, no branch cut
            return (torch.exp(self.log_dt) * rate)[:, None] * self.diagonal_A()
        return torch.log(A_bar)

    def kernel(self, L: int, rate: float = 1.0) -> torch.Tensor:
        """K (channels, H, L)."""
        A_bar, B_bar = self.discretize(rate)
        v = torch.view_as_complex(self.C) * B_bar  # (channels, H, N2)
        return vandermonde(v, self.log_A_bar(A_bar, rate), L, use_triton=self.use_triton)

    # Recurrent mode -------------------------------------------------------------------------

    def setup_step(self, rate: float = 1.0) -> None:
        self._check_step()
        with torch.no_grad():
            self._A_bar, self._B_bar = self.discretize(rate)
            self._C_step = torch.view_as_complex(self.C)[0].clone()  # (H, N2)

    def default_state(self, batch: int) -> torch.Tensor:
        dtype = torch.complex128 if self.C.dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.H, self.N2, dtype=dtype, device=self.C.device)

    def step(self, u_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u_t (B, H), state (B, H, N2) -> y_t (B, H), next state."""
        state = self._A_bar * state + self._B_bar * u_t.unsqueeze(-1)
        y = 2 * (self._C_step * state).sum(-1).real + self.D * u_t
        return y, state
