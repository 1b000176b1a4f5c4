"""Liquid-S4: S4 plus the liquid (input-correlation) term of the linearised LTC SSM
(Hasani, Lechner et al. 2023; models.md section 1, liquid-math.md).

The model, per feature, on the diagonal part of S4 (A_bar = Lambda_bar, B_bar diagonal):

    x_k = (A_bar + B_bar u_k) x_{k-1} + B_bar u_k,      y_k = 2 Re(C x_k) + D u_k

Expanding x in powers of u gives y = K * u + sum_{p>=2} y^(p) with the liquid kernels
K_p[l] = 2 Re sum_n C_n A_bar_n^l B_bar_n^p and

    y^(p)_k = sum_i K_p[k-(p-1)-i] u_i e_{p-1}(u_{i+1}, ..., u_k)          (e = elementary symmetric)

which, with prefix power sums, is a handful of causal FFT convolutions per degree (liquid-math.md).

liquid_kernel (paper mode):
  kb    the full liquid kernel K_p for every lag, degrees 2..P: exact up to degree P, so the
        difference to the recurrence is O(eps^(P+1)) for inputs of size eps.
  pb    the zero-lag part only, y^(p)_k = c_p u_{k-p+1} ... u_k with c_p = 2 Re sum_n C_n B_bar_n^p:
        pointwise and causal; it misses the lagged degree-2 terms, so its difference is O(eps^2).
  none  the Liquid-S4 configuration with the liquid term off (an ablation).
liquid_mode: reference reproduces the public implementation's behaviour (models.md 1.4) instead.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import torch

from models.kernels.fftconv import fft_conv
from models.kernels.kb_conv import centred_cumsum, conv_and_kb2
from models.kernels.vandermonde import vandermonde
from models.s4 import S4

# ------------------------------------------------------------------------------------------------
# e_m of a window (i, k] through prefix power sums: Newton's identities, expanded into monomials
# prod_j (S^(j)_k)^a_j * prod_j (S^(j)_i)^b_j, so that each monomial separates into "at k" x "at i".
# ------------------------------------------------------------------------------------------------

Monomial = tuple[tuple[int, ...], tuple[int, ...]]


def _mul(p: dict, q: dict) -> dict:
    out: dict = defaultdict(float)
    for (a1, b1), c1 in p.items():
        for (a2, b2), c2 in q.items():
            out[(tuple(x + y for x, y in zip(a1, a2)), tuple(x + y for x, y in zip(b1, b2)))] += c1 * c2
    return {k: v for k, v in out.items() if v != 0}


def window_esp(m: int) -> dict[Monomial, float]:
    """e_m(u_{i+1..k}) as {(exponents of S^(1..m)_k, exponents of S^(1..m)_i): coefficient}."""
    zero = (0,) * m
    e = [{(zero, zero): 1.0}]
    for n in range(1, m + 1):
        acc: dict = defaultdict(float)
        for j in range(1, n + 1):
            unit = tuple(int(t == j - 1) for t in range(m))
            power_sum = {(unit, zero): 1.0, (zero, unit): -1.0}  # S^(j)_k - S^(j)_i
            for key, c in _mul(e[n - j], power_sum).items():
                acc[key] += (-1) ** (j - 1) * c / n
        e.append({k: v for k, v in acc.items() if abs(v) > 1e-12})
    return e[m]


def _shift(x: torch.Tensor, s: int) -> torch.Tensor:
    """x delayed by s steps along the last axis, zeros in front."""
    return x if s == 0 else torch.nn.functional.pad(x, (s, 0))[..., : x.shape[-1]]


def liquid_kb(u: torch.Tensor, kernels: list[torch.Tensor]) -> torch.Tensor:
    """sum_{p=2..P} y^(p) for u (B, H, L) and kernels[p-2] = K_p (H, L). Causal, exact per degree."""
    y = torch.zeros_like(u)
    dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    uu = u.to(dtype)
    for p, K in enumerate(kernels, start=2):
        m = p - 1
        terms = window_esp(m)
        powers = [centred_cumsum(uu ** (j + 1)) for j in range(m)]  # S^(j)_k, (B, H, L)
        by_b: dict[tuple[int, ...], list] = defaultdict(list)
        for (a, b), c in terms.items():
            by_b[b].append((a, c))
        signals, weights = [], []
        for b, parts in by_b.items():
            g = uu.clone()
            for j, e in enumerate(b):
                if e:
                    g = g * powers[j] ** e
            f = torch.zeros_like(uu)
            for a, c in parts:
                term = torch.full_like(uu, c)
                for j, e in enumerate(a):
                    if e:
                        term = term * powers[j] ** e
                f = f + term
            signals.append(g)
            weights.append(f)
        conv = fft_conv(torch.stack(signals), K.to(dtype))  # (terms, B, H, L)
        y = y + (torch.stack(weights) * _shift(conv, m)).sum(0).to(u.dtype)
    return y


def liquid_pb(u: torch.Tensor, coeffs: list[torch.Tensor]) -> torch.Tensor:
    """sum_p c_p u_{k-p+1} ... u_k for u (B, H, L), coeffs[p-2] = c_p (H,)."""
    y, prod = None, u
    for p, c in enumerate(coeffs, start=2):
        prod = prod * _shift(u, p - 1)  # u_{k-p+1} ... u_k
        term = c[:, None] * prod
        y = term if y is None else y + term
    return y


# ------------------------------------------------------------------------------------------------
# The public implementation's correlation signal (reference mode)
# ------------------------------------------------------------------------------------------------


def combination_window(L: int, p: int) -> int:
    """n_p: the smallest n with C(n, p) >= L."""
    n = p
    while math.comb(n, p) < L:
        n += 1
    return n


_COMBOS: dict[tuple[int, int], torch.Tensor] = {}


def reference_correlations(u: torch.Tensor, p: int) -> torch.Tensor:
    """allcombs signal: products over the p-subsets of the last n_p time indices (lexicographic), the
    last L of them, zero-padded at the end when fewer; (B, H, L)."""
    L = u.shape[-1]
    if (L, p) not in _COMBOS:
        n = combination_window(L, p)
        combos = list(itertools.combinations(range(L - n, L), p))[-L:] if L >= p else []
        _COMBOS[(L, p)] = torch.tensor(combos, dtype=torch.long).reshape(-1, p)
    idx = _COMBOS[(L, p)].to(u.device)
    out = torch.zeros_like(u)
    if len(idx):
        out[..., : len(idx)] = u[..., idx].prod(-1)
    return out


# ------------------------------------------------------------------------------------------------


class LiquidS4(S4):
    """S4 with the liquid term. Extra options: liquid_kernel (kb, pb, none), liquid_degree P >= 2,
    liquid_mode (paper, reference)."""

    default_kernel = "kb"

    def __init__(self, d_model: int, d_state: int = 64, bidirectional: bool = False, n_ssm: int | None = None,
                 dt_min: float = 0.001, dt_max: float = 0.1, l_max: int = 1024, liquid_kernel: str | None = None,
                 liquid_degree: int = 2, liquid_mode: str = "paper"):
        super().__init__(d_model, d_state, bidirectional, n_ssm, dt_min, dt_max, l_max)
        self.liquid_kernel = liquid_kernel or self.default_kernel
        if self.liquid_kernel not in ("kb", "pb", "none"):
            raise ValueError(f"unknown liquid_kernel {self.liquid_kernel!r}; expected 'kb', 'pb' or 'none'")
        if liquid_degree < 2:
            raise ValueError(f"liquid_degree = {liquid_degree} must be at least 2")
        if liquid_mode not in ("paper", "reference"):
            raise ValueError(f"unknown liquid_mode {liquid_mode!r}; expected 'paper' or 'reference'")
        self.liquid_degree, self.liquid_mode = liquid_degree, liquid_mode
        if liquid_mode == "reference":  # quirk 1: coefficients frozen at their initial values (raw C, not C~)
            _, Lambda, _, B, _ = self.system()
            self.register_buffer("_ref_dt", torch.exp(self.log_dt.detach()).clone(), persistent=False)
            self.register_buffer("_ref_Lambda", Lambda.detach().clone(), persistent=False)
            self.register_buffer("_ref_B", B.detach().clone(), persistent=False)
            self.register_buffer("_ref_C", torch.view_as_complex(self._C_init).clone(), persistent=False)

    def _grow(self, L: int) -> None:
        if self._length == 0:
            self._C_init = self.C.detach().clone()  # the raw C, before it becomes C~
        super()._grow(L)

    # The diagonal system the liquid term lives on ---------------------------------------------

    def diagonal(self, rate: float = 1.0):
        """A_bar, B_bar (H, N2) of the diagonal part (bilinear), and C (channels, H, N2) with
        C = C~ / (1 - A_bar^L): exact when the low-rank term is zero."""
        dt, Lambda, _, B, Ct = self.system(rate)
        dt = dt[:, None]
        A_bar = (1 + dt * Lambda / 2) / (1 - dt * Lambda / 2)
        B_bar = dt * B / (1 - dt * Lambda / 2)
        C = Ct / (1 - A_bar ** round(self._length / rate))
        return A_bar, B_bar, C

    def liquid_term(self, u: torch.Tensor, rate: float = 1.0) -> torch.Tensor:
        if self.liquid_kernel == "none":
            return torch.zeros_like(u)
        if self.liquid_mode == "reference":
            return self._reference_term(u)
        A_bar, B_bar, C = self.diagonal(rate)
        degrees = range(2, self.liquid_degree + 1)
        out = None
        for c, direction in enumerate((1, -1) if self.bidirectional else (1,)):
            x = u if direction == 1 else u.flip(-1)
            if self.liquid_kernel == "pb":
                coeffs = [2 * (C[c] * B_bar**p).sum(-1).real for p in degrees]
                y = liquid_pb(x, coeffs)
            else:
                y = liquid_kb(x, list(self.liquid_kernels(u.shape[-1], rate, A_bar, B_bar, C[c])))
            y = y if direction == 1 else y.flip(-1)
            out = y if out is None else out + y
        return out

    def liquid_kernels(self, L: int, rate: float, A_bar, B_bar, C_c) -> torch.Tensor:
        """K_p[l] = 2 Re sum_n C_n A_bar_n^l B_bar_n^p for p = 2 .. P: (P - 1, H, L), one Vandermonde call."""
        p = torch.arange(2, self.liquid_degree + 1, device=B_bar.device).view(-1, 1, 1)  # (P-1, 1, 1)
        return vandermonde(C_c * B_bar**p, torch.log(A_bar), L, use_triton=self.use_triton)

    def _reference_term(self, u: torch.Tensor) -> torch.Tensor:
        """The public code's liquid term (models.md 1.3-1.4): frozen coefficients, last-n_p combination
        window, time flip, PB pointwise, KB with mismatched FFT grids."""
        dt = self._ref_dt[:, None]
        B_bar = dt * self._ref_B / (1 - dt * self._ref_Lambda / 2)  # diagonal part only
        s = 2 * B_bar.sum(-1).real  # sum over the conjugate-doubled modes, (H,)
        L = u.shape[-1]
        out = torch.zeros_like(u)
        for p in range(2, self.liquid_degree + 1):
            corr = reference_correlations(u, p).flip(-1)  # quirk 5: time reversal
            if self.liquid_kernel == "pb":
                b_p = B_bar * s[:, None] ** (2 ** (p - 1) - 1)  # quirk 11
                c = 2 * (self._ref_C * b_p).sum(-1).real  # (channels, H)
                out = out + c[0][:, None] * corr
                if self.bidirectional:
                    out = out + c[1][:, None] * corr.flip(-1)
            else:
                K = self.kernel(L)  # the trainable S4 kernel
                k = K[0] if not self.bidirectional else (K[0] + torch.nn.functional.pad(K[1].flip(-1), (L, 0))[..., :L])
                k_p = k[..., : L + 1] * s[:, None] ** (p - 1)  # quirk 12
                spec = torch.fft.fft(k_p, n=L + 1) * torch.fft.rfft(corr, n=2 * L)  # quirk 13: grid mismatch
                out = out + torch.fft.irfft(spec, n=2 * L)[..., :L]
        return out

    def forward(self, u: torch.Tensor, rate: float = 1.0) -> torch.Tensor:
        """u (B, H, L) -> K * u + D u + liquid term."""
        if self.fused and (self.liquid_kernel, self.liquid_degree, self.liquid_mode, self.bidirectional) == (
                "kb", 2, "paper", False):
            L = u.shape[-1]
            k = self.with_skip(self.kernel(L, rate)[0])  # first: it may grow C~ to length L, which `diagonal` reads
            A_bar, B_bar, C = self.diagonal(rate)
            K2 = self.liquid_kernels(L, rate, A_bar, B_bar, C[0])[0]  # (H, L)
            return conv_and_kb2(u, k, K2, self.use_triton)
        return super().forward(u, rate) + self.liquid_term(u, rate)

    # Exact recurrence of the diagonal system --------------------------------------------------

    def setup_step(self, rate: float = 1.0) -> None:
        self._check_step()
        if self.liquid_mode == "reference":
            raise RuntimeError("liquid_mode 'reference' has no recurrent mode (nor has the public code)")
        with torch.no_grad():
            self._A_bar, self._B_bar, C = self.diagonal(rate)
            self._C_step = C[0]

    def default_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, *self._B_bar.shape, dtype=self._B_bar.dtype, device=self.C.device)

    def step(self, u_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_k = (A_bar + B_bar u_k) x_{k-1} + B_bar u_k with the liquid term; `none` drops B_bar u_k x."""
        u = u_t.unsqueeze(-1)
        transition = self._A_bar + (self._B_bar * u if self.liquid_kernel != "none" else 0)
        state = transition * state + self._B_bar * u
        y = 2 * (self._C_step * state).sum(-1).real + self.D * u_t
        return y, state


class LiquidS4KB(LiquidS4):
    default_kernel = "kb"


class LiquidS4PB(LiquidS4):
    default_kernel = "pb"
