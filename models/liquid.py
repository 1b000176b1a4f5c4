"""Liquid-S4: S4 plus the liquid (input-correlation) term of the linearised LTC SSM
(Hasani, Lechner et al. 2023). Derivations, the public code's quirks and measurements: docs/liquid.md.

The model, per feature, on the diagonal part of S4 (A_bar = Lambda_bar, B_bar diagonal):

    x_k = (A_bar + B_bar u_k) x_{k-1} + B_bar u_k,      y_k = 2 Re(C x_k) + D u_k

Expanding x in powers of u gives y = K * u + sum_{p>=2} y^(p) with the liquid kernels
K_p[l] = 2 Re sum_n C_n A_bar_n^l B_bar_n^p and

    y^(p)_k = sum_i K_p[k-(p-1)-i] u_i e_{p-1}(u_{i+1}, ..., u_k)          (e = elementary symmetric)

which, with prefix power sums, is a handful of causal FFT convolutions per degree (docs/liquid.md).

liquid_mode:
  reference (default) the public Liquid-S4 code's liquid term (raminmh/liquid-s4, class S4, liquid_kernel
            polyb / kb), quirks included: frozen init-time coefficients, time-flipped last-n_p combination
            window, not causal. Checked against the public layer's numbers (tests/models/test_liquid_golden.py).
  exact     the expansion above, truncated after degree P:
liquid_kernel (exact mode):
  kb    the full liquid kernel K_p for every lag, degrees 2..P: exact up to degree P, so the
        difference to the recurrence is O(eps^(P+1)) for inputs of size eps.
  pb    the zero-lag part only, y^(p)_k = c_p u_{k-p+1} ... u_k with c_p = 2 Re sum_n C_n B_bar_n^p:
        pointwise and causal; it misses the lagged degree-2 terms, so its difference is O(eps^2).
  none  the Liquid-S4 configuration with the liquid term off (an ablation).
The exact mode's recurrent mode (`setup_step` / `step`) reproduces its convolution mode: KB by the states
x^(p)_k = A_bar x^(p)_{k-1} + B_bar u_k x^(p-1)_{k-1} of each degree, PB with the last P - 1 inputs.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from models.ops.fftconv import fft_conv, fft_conv_autograd, two_sided
from models.ops.kb_conv import centred_cumsum, conv_and_kb2
from models import liquid_reference
from models.ops.vandermonde import vandermonde
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


class LiquidS4(S4):
    """S4 with the liquid term. Extra options: liquid_kernel (kb, pb, none), liquid_degree P >= 2,
    liquid_mode (reference: the public code's term, the default; exact: the expansion)."""

    default_kernel = "kb"

    def __init__(self, d_model: int, d_state: int = 64, bidirectional: bool = False, n_ssm: int | None = None,
                 dt_min: float = 0.001, dt_max: float = 0.1, l_max: int = 1024, liquid_kernel: str | None = None,
                 liquid_degree: int = 2, liquid_mode: str = "reference", liquid_norm: str = "none",
                 backend: str = "triton"):
        super().__init__(d_model, d_state, bidirectional, n_ssm, dt_min, dt_max, l_max, backend)
        self.liquid_kernel = liquid_kernel or self.default_kernel
        if self.liquid_kernel not in ("kb", "pb", "none"):
            raise ValueError(f"unknown liquid_kernel {self.liquid_kernel!r}; expected 'kb', 'pb' or 'none'")
        if liquid_degree < 2:
            raise ValueError(f"liquid_degree = {liquid_degree} must be at least 2")
        if liquid_mode not in ("reference", "exact"):
            raise ValueError(f"unknown liquid_mode {liquid_mode!r}; expected 'reference' or 'exact'")
        if liquid_norm not in ("none", "pole"):
            raise ValueError(f"unknown liquid_norm {liquid_norm!r}; expected 'none' or 'pole'")
        if liquid_norm != "none" and liquid_mode != "exact":
            raise ValueError("liquid_norm 'pole' applies to liquid_mode 'exact' only (the reference term is fixed)")
        self.liquid_degree, self.liquid_mode, self.liquid_norm = liquid_degree, liquid_mode, liquid_norm
        self.batch_length: torch.Tensor | None = None  # set by models.padding.batch_length for padded batches
        if liquid_mode == "reference":
            self.freeze_reference()

    def freeze_reference(self) -> None:
        """Quirk 1: the reference term's coefficients frozen at their current (initial) values
        (models/liquid_reference.py)."""
        liquid_reference.freeze(self)

    def _grow(self, L: int) -> None:
        if self._length == 0:
            self._C_init = self.C.detach().clone()  # the raw C (real view), before it becomes C~
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

    def modulation(self) -> torch.Tensor:
        """r (H, 1): the liquid system is x' = (A + r B u) x + B u, so its degree-p terms carry r^(p-1).
        liquid_norm 'none': r = 1 (the paper's system). 'pole': r = min_n |Re Lambda_n| / |B_n|, so that
        Re(Lambda_n + r B_n u) <= 0 for every mode while |u| <= 1: the input can no longer push a pole into
        the right half-plane, and the degree-p term shrinks like |u|^p (docs/liquid.md, "Divergence")."""
        if self.liquid_norm == "none":
            return torch.ones(self.H, 1, device=self.log_dt.device, dtype=self.log_dt.dtype)
        _, Lambda, _, B, _ = self.system()
        return (Lambda.real.abs() / B.abs()).amin(-1, keepdim=True)

    def liquid_term(self, u: torch.Tensor, rate: float = 1.0) -> torch.Tensor:
        if self.liquid_kernel == "none":
            return torch.zeros_like(u)
        if self.liquid_mode == "reference":
            return self._reference_term(u, rate)
        A_bar, B_bar, C = self.diagonal(rate)
        degrees = range(2, self.liquid_degree + 1)
        out = None
        for c, direction in enumerate((1, -1) if self.bidirectional else (1,)):
            x = u if direction == 1 else u.flip(-1)
            if self.liquid_kernel == "pb":
                r = self.modulation()
                coeffs = [2 * (C[c] * B_bar * (r * B_bar) ** (p - 1)).sum(-1).real for p in degrees]
                y = liquid_pb(x, coeffs)
            else:
                y = liquid_kb(x, list(self.liquid_kernels(u.shape[-1], rate, A_bar, B_bar, C[c])))
            y = y if direction == 1 else y.flip(-1)
            out = y if out is None else out + y
        return out

    def liquid_kernels(self, L: int, rate: float, A_bar, B_bar, C_c) -> torch.Tensor:
        """K_p[l] = 2 Re sum_n C_n A_bar_n^l B_bar_n^p for p = 2 .. P: (P - 1, H, L), one Vandermonde call."""
        p = torch.arange(2, self.liquid_degree + 1, device=B_bar.device).view(-1, 1, 1)  # (P-1, 1, 1)
        v = C_c * B_bar * (self.modulation() * B_bar) ** (p - 1)  # (P-1, H, N2)
        return vandermonde(v, torch.log(A_bar), L, use_triton=self.use_triton)

    def _reference_term(self, u: torch.Tensor, rate: float = 1.0, K: torch.Tensor | None = None) -> torch.Tensor:
        """The public code's liquid term, (B, H, L) (models/liquid_reference.py)."""
        return liquid_reference.reference_term(self, u, rate, K)

    def forward(self, u: torch.Tensor, rate: float = 1.0) -> torch.Tensor:
        """u (B, H, L) -> K * u + D u + liquid term."""
        if self.fused and (self.liquid_kernel, self.liquid_degree, self.liquid_mode, self.bidirectional) == (
                "kb", 2, "exact", False):
            L = u.shape[-1]
            k = self.with_skip(self.kernel(L, rate)[0])  # first: it may grow C~ to length L, which `diagonal` reads
            A_bar, B_bar, C = self.diagonal(rate)
            K2 = self.liquid_kernels(L, rate, A_bar, B_bar, C[0])[0]  # (H, L)
            return conv_and_kb2(u, k, K2, self.use_triton)
        if self.liquid_mode == "reference" and self.liquid_kernel == "kb":  # one kernel for both terms
            K = self.kernel(u.shape[-1], rate)  # (channels, H, L)
            k = two_sided(K[0], K[1]) if self.bidirectional else K[0]
            linear = (fft_conv_autograd(u, k.to(u.dtype)) + self.D[:, None] * u if not self.fused
                      else fft_conv(u, self.with_skip(k), self.use_triton))  # as ConvSSM.forward
            return linear + self._reference_term(u, rate, K)
        return super().forward(u, rate) + self.liquid_term(u, rate)

    # Recurrent mode: the convolution mode's output, step by step (docs/liquid.md, "Recurrent mode") ----

    def setup_step(self, rate: float = 1.0) -> None:
        """The linear part steps as S4 (dense); KB keeps the degree-1..P states of the diagonal system,
        PB the last P - 1 inputs."""
        if self.liquid_mode == "reference" and self.liquid_kernel != "none":
            raise RuntimeError(
                "error: liquid_mode 'reference' has no recurrent mode: the public code's liquid term reads the "
                "sequence's last inputs at its first outputs (time flip), so it is not causal.\n"
                "fix: use liquid_mode 'exact' (or liquid_kernel 'none') for step-by-step inference.")
        super().setup_step(rate)  # self._A_bar, self._B_bar, self._C_step: the dense linear system
        with torch.no_grad():
            A_bar, B_bar, C = self.diagonal(rate)
            dtype = self._B_bar.dtype
            self._diag = tuple(x.to(dtype) for x in (A_bar, B_bar, C[0]))  # (H, N2) each
            self._r = self.modulation().to(dtype)  # (H, 1)
            self._pb = [2 * (self._diag[2] * self._diag[1] * (self._r * self._diag[1]) ** (p - 1)).sum(-1).real
                        for p in range(2, self.liquid_degree + 1)]  # c_p, (H,) each

    def default_state(self, batch: int):
        """(linear state (B, H, N), liquid states x^(1..P) (P, B, H, N2), last P - 1 inputs (B, H, P - 1))."""
        x = super().default_state(batch)
        H, N2 = self._diag[1].shape
        return (x, x.new_zeros(self.liquid_degree, batch, H, N2),
                x.real.new_zeros(batch, H, self.liquid_degree - 1))

    def step(self, u_t: torch.Tensor, state):
        """u_t (B, H) -> y_t (B, H): the linear S4 step plus
        KB: x^(1)_k = A x^(1)_{k-1} + B u_k, x^(p)_k = A x^(p)_{k-1} + r B u_k x^(p-1)_{k-1}, y += 2 Re C x^(p)_k
        (r = `modulation()`, 1 unless liquid_norm 'pole'); PB: y += sum_p c_p u_k u_{k-1} ... u_{k-p+1}."""
        x, xs, window = state
        y, x = super().step(u_t, x)
        if self.liquid_kernel == "kb":
            A_bar, B_bar, C = self._diag
            Bu = B_bar * u_t.unsqueeze(-1)  # (B, H, N2)
            lower = torch.cat([torch.ones_like(xs[:1]), self._r * xs[:-1]])  # r x^(p-1)_{k-1}, x^(0) = 1
            xs = A_bar * xs + Bu * lower
            y = y + 2 * (C * xs[1:]).sum(-1).real.sum(0).to(y.dtype)
        elif self.liquid_kernel == "pb":
            prod = u_t
            for j, c in enumerate(self._pb):
                prod = prod * window[..., j]
                y = y + c.to(y.dtype) * prod
        window = torch.cat([u_t.unsqueeze(-1).to(window.dtype), window[..., :-1]], -1)
        return y, (x, xs, window)


class LiquidS4KB(LiquidS4):
    default_kernel = "kb"


class LiquidS4PB(LiquidS4):
    default_kernel = "pb"
