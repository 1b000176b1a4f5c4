"""Liquid-S4 (exact mode) against the exact recurrence x_k = (A + B u_k) x_{k-1} + B u_k of its diagonal system."""

from __future__ import annotations

import math

import pytest
import torch

from models.block import ResidualBlock, SSMLayer
from models.liquid import LiquidS4, window_esp
from models.liquid_reference import combination_window, reference_correlations
from models.network import SequenceModel


def diagonal_liquid(kind: str, degree: int, L: int = 64, H: int = 2, seed: int = 0) -> LiquidS4:
    """A Liquid-S4 layer whose low-rank term is zero, so its linear part is exactly diagonal."""
    torch.manual_seed(seed)
    m = LiquidS4(H, 8, dt_min=0.05, dt_max=0.3, l_max=L, liquid_kernel=kind, liquid_degree=degree,
                 liquid_mode="exact").double()
    with torch.no_grad():
        m.P.zero_()
    return m


def recurrence(m: LiquidS4, u: torch.Tensor) -> torch.Tensor:
    """The float64 ORACLE: the exact liquid recurrence of m's diagonal system, one step at a time,
    x_k = (A_bar + B_bar u_k) x_{k-1} + B_bar u_k (liquid off: A_bar x_{k-1} + B_bar u_k), y_k = 2 Re C x_k + D u_k.
    u (B, H, L) float64 -> (B, H, L)."""
    with torch.no_grad():
        A_bar, B_bar, C = (x.to(torch.complex128) for x in m.diagonal())
        x, ys = torch.zeros(u.shape[0], *B_bar.shape, dtype=torch.complex128), []
        for t in range(u.shape[-1]):
            Bu = B_bar * u[..., t, None]  # (B, H, N2)
            x = (A_bar + (Bu if m.liquid_kernel != "none" else 0)) * x + Bu
            ys.append(2 * (C[0] * x).sum(-1).real + m.D.double() * u[..., t])
    return torch.stack(ys, -1)


def gap(kind: str, degree: int, eps: float) -> float:
    m = diagonal_liquid(kind, degree)
    torch.manual_seed(1)
    u = eps * torch.randn(1, 2, 64, dtype=torch.float64)
    return (m(u) - recurrence(m, u)).abs().max().item()


@pytest.mark.parametrize(
    "kind, degree, order",
    [
        ("kb", 2, 3),  # exact through degree 2: the first missing term is cubic in eps
        ("kb", 3, 4),  # exact through degree 3
        ("pb", 2, 2),  # keeps only the zero-lag part of degree 2: the lagged quadratic terms are missing
        ("pb", 3, 2),  # higher PB degrees do not change that
    ],
)
def test_difference_to_the_exact_recurrence_shrinks_at_the_predicted_order(kind, degree, order):
    errors = [gap(kind, degree, eps) for eps in (0.1, 0.05, 0.025)]
    print(f"{kind} P={degree}: max |conv - recurrence| at eps 0.1, 0.05, 0.025 = {errors}")
    for big, small in zip(errors, errors[1:]):
        measured = math.log2(big / small)
        assert abs(measured - order) < 0.15, (kind, degree, errors)


def test_liquid_off_is_exactly_the_linear_ssm():
    assert gap("none", 2, 0.3) < 1e-12


def test_window_polynomials():
    """e_1 = S_k - S_i;  e_2 = ((S_k - S_i)^2 - (Q_k - Q_i)) / 2."""
    assert window_esp(1) == {((1,), (0,)): 1.0, ((0,), (1,)): -1.0}
    assert window_esp(2) == {((2, 0), (0, 0)): 0.5, ((1, 0), (1, 0)): -1.0, ((0, 0), (2, 0)): 0.5,
                             ((0, 1), (0, 0)): -0.5, ((0, 0), (0, 1)): 0.5}


@pytest.mark.parametrize("kind", ["kb", "pb"])
def test_gradients_reach_every_ssm_parameter_through_the_liquid_term(kind):
    torch.manual_seed(2)
    m = LiquidS4(4, 8, l_max=32, liquid_kernel=kind, liquid_mode="exact")
    u = torch.randn(2, 4, 32)
    m.liquid_term(u).pow(2).sum().backward()
    for name in ("log_dt", "A_log_re", "A_im", "B", "C"):
        grad = getattr(m, name).grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", ["kb", "pb"])
def test_unidirectional_backbone_is_causal(kind):
    torch.manual_seed(3)
    make = lambda H: LiquidS4(H, 8, l_max=40, liquid_kernel=kind, liquid_degree=3, liquid_mode="exact")  # noqa: E731
    blocks = torch.nn.Sequential(*[ResidualBlock(SSMLayer(make(8)), norm="layer") for _ in range(3)]).eval()
    u = torch.randn(2, 8, 40)
    v = u.clone()
    v[..., 30] += torch.randn(2, 8)
    torch.testing.assert_close(blocks(u)[..., :30], blocks(v)[..., :30], rtol=0, atol=1e-5)


def test_reference_mode_is_not_causal_and_ignores_training():
    """Quirks 1, 5-7: frozen coefficients and the time-flipped last-n_p window."""
    torch.manual_seed(4)
    m = LiquidS4(4, 8, l_max=64, liquid_kernel="pb", liquid_mode="reference")
    u = torch.randn(1, 4, 64)
    v = u.clone()
    v[..., -1] += 1.0  # the last input reaches the first outputs through the flip
    assert (m.liquid_term(u)[..., :5] - m.liquid_term(v)[..., :5]).abs().max() > 1e-6
    before = m.liquid_term(u)
    with torch.no_grad():
        m.B.mul_(3.0)
        m.log_dt.add_(0.5)
    torch.testing.assert_close(m.liquid_term(u), before)  # coefficients frozen at init
    assert not m.liquid_term(u).requires_grad  # no gradient reaches dt, A, B, C through it


def test_reference_kb_runs_and_is_differentiable_in_the_kernel():
    torch.manual_seed(5)
    m = LiquidS4(4, 8, l_max=32, liquid_kernel="kb", liquid_mode="reference", bidirectional=True)
    m(torch.randn(2, 4, 32)).sum().backward()
    assert m.C.grad is not None


def test_combination_window():
    assert [combination_window(L, 2) for L in (1024, 2048, 4096, 16384)] == [46, 65, 92, 182]
    assert [combination_window(L, 3) for L in (1024, 16000)] == [20, 47]
    u = torch.arange(1.0, 11.0).view(1, 1, 10)  # L = 10, p = 2: n_p = 5, pairs of t = 5..9
    corr = reference_correlations(u, 2)
    assert corr[0, 0, 0] == 6 * 7 and corr[0, 0, -1] == 9 * 10


def test_full_network_trains_a_step():
    torch.manual_seed(6)
    model = SequenceModel(LiquidS4, dict(d_state=7, l_max=64, liquid_kernel="pb"), d_input=10, d_output=3,
                          d_model=8, n_layers=2)
    out = model(torch.randint(0, 10, (4, 64)), torch.tensor([64, 50, 30, 10]))
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("p", [2, 3])
def test_window_products_match_the_gather_and_prod_with_zeros_in_the_input(p):
    """The reference term's window products (one index_select per factor, graph-capturable) equal the plain
    `u[..., idx].prod(-1)`, outputs and gradients, in float64, with zero-padded positions in the input."""
    from models.liquid_reference import _window_index, window_products

    gen = torch.Generator().manual_seed(0)
    u = torch.randn(3, 4, 50, dtype=torch.float64, generator=gen)
    u[..., 40:] = 0.0  # padding: prod's backward takes its zero branch here
    idx = _window_index(50, p)  # (L, p)
    grad = torch.randn(3, 4, 50, dtype=torch.float64, generator=gen)
    outs = []
    for f in (lambda v: v[..., idx].prod(-1), lambda v: window_products(v, idx.t().contiguous())):
        v = u.clone().requires_grad_(True)
        y = f(v)
        y.backward(grad)
        outs.append((y.detach(), v.grad))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-14, atol=0)
    torch.testing.assert_close(outs[1][1], outs[0][1], rtol=1e-14, atol=1e-15)
