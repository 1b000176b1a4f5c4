"""Exact-mode Liquid-S4: the recurrent mode reproduces the convolution mode, on inputs of realistic size;
the reference mode refuses to step. And the liquid terms against the float64 oracle (the exact recurrence),
on inputs where the oracle's expansion ends at a known degree (docs/liquid.md, "Recurrent mode")."""

from __future__ import annotations

import pytest
import torch

from models.liquid import LiquidS4
from tests.models.test_liquid import recurrence


def layer(kind: str, degree: int, L: int, seed: int = 0, **kw) -> LiquidS4:
    torch.manual_seed(seed)
    return LiquidS4(4, 8, l_max=L, dt_min=0.01, dt_max=0.2, liquid_kernel=kind, liquid_degree=degree,
                    liquid_mode="exact", **kw).double()


def stepped(m: LiquidS4, u: torch.Tensor) -> torch.Tensor:
    m.setup_step()
    state, ys = m.default_state(u.shape[0]), []
    for t in range(u.shape[-1]):
        y_t, state = m.step(u[..., t], state)
        ys.append(y_t)
    return torch.stack(ys, -1)


@pytest.mark.parametrize("kind, degree, norm", [("kb", 2, "none"), ("kb", 3, "none"), ("pb", 2, "none"),
                                                ("pb", 3, "none"), ("none", 2, "none"), ("kb", 3, "pole"),
                                                ("pb", 3, "pole")])
@pytest.mark.parametrize("L", [64, 256])
def test_recurrent_mode_reproduces_the_convolution_mode(kind, degree, norm, L):
    """N(0, 1) inputs, the full DPLR layer (low-rank term on): step-by-step output = forward()."""
    m = layer(kind, degree, L, liquid_norm=norm)
    u = torch.randn(2, 4, L, dtype=torch.float64, generator=torch.Generator().manual_seed(L))
    with torch.no_grad():
        conv, rec = m(u), stepped(m, u)
        liquid = m.liquid_term(u)
    rel = ((rec - conv).abs().max() / conv.abs().max()).item()
    assert rel < 1e-10, rel
    if kind != "none":  # the liquid term is far above the tolerance, so it was stepped too
        assert liquid.abs().max() > 1e-3 * conv.abs().max()


def test_recurrent_mode_in_float32():
    m = layer("kb", 3, 128).float()
    u = torch.randn(2, 4, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        conv, rec = m(u), stepped(m, u)
    assert ((rec - conv).abs().max() / conv.abs().max()).item() < 1e-4


@pytest.mark.parametrize("kind", ["kb", "pb"])
def test_reference_mode_refuses_to_step(kind):
    m = LiquidS4(4, 8, l_max=32, liquid_kernel=kind)  # liquid_mode defaults to reference
    with pytest.raises(RuntimeError, match="(?s)error: liquid_mode .reference. has no recurrent mode.*fix: "):
        m.setup_step()


def impulses(positions: list[int], eps: float, L: int = 24) -> torch.Tensor:
    """eps * v at the given times (v fixed, different per feature), zero elsewhere: (1, 2, L)."""
    u = torch.zeros(1, 2, L, dtype=torch.float64)
    for i, t in enumerate(positions):
        u[..., t] = eps * torch.tensor([1.0 + 0.3 * i, -0.7 + 0.2 * i], dtype=torch.float64)
    return u


def parts(f, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The even (degree 2) and odd (degree 1 and 3) parts of f(u) - f's linear part, from f(u) and f(-u):
    with three nonzero inputs the exact recurrence has no terms beyond degree 3."""
    plus, minus = f(u), f(-u)
    return (plus + minus) / 2, (plus - minus) / 2


def test_pb_is_the_zero_lag_part_of_the_exact_expansion():
    """PB degree 3: its quadratic term at k = u_k u_{k-1} times c_2 and its cubic term u_k u_{k-1} u_{k-2}
    times c_3 are the oracle's coefficients of exactly those products (catches a lost factor 2 in c_p and
    c_p = 0 for p >= 3; the order-of-convergence test cannot)."""
    from tests.models.test_liquid import diagonal_liquid

    pb, off = diagonal_liquid("pb", 3, L=24), diagonal_liquid("none", 3, L=24)
    with torch.no_grad():
        t = 10
        u2 = impulses([t, t + 1], 0.5)  # two inputs: the oracle's liquid part is exactly its degree-2 term
        oracle2 = (recurrence(pb, u2) - recurrence(off, u2))[..., t + 1]  # K_2[0] u_t u_{t+1} = c_2 u u
        ours2 = pb.liquid_term(u2)[..., t + 1]
        u3 = impulses([t, t + 1, t + 2], 0.5)  # three: the cubic part at t + 2 is c_3 u_t u_{t+1} u_{t+2}
        _, odd_oracle = parts(lambda v: recurrence(pb, v) - recurrence(off, v), u3)
        _, odd_ours = parts(pb.liquid_term, u3)
    assert oracle2.abs().min() > 1e-3
    torch.testing.assert_close(ours2, oracle2, rtol=1e-10, atol=0)
    assert odd_oracle[..., t + 2].abs().min() > 1e-4
    torch.testing.assert_close(odd_ours[..., t + 2], odd_oracle[..., t + 2], rtol=1e-10, atol=0)


@pytest.mark.parametrize("degree, n", [(2, 2), (3, 2), (3, 3)])
def test_kb_equals_the_exact_recurrence_when_the_expansion_ends(degree, n):
    """With n <= P nonzero inputs the exact recurrence has no terms of degree > n: KB of degree P equals it."""
    from tests.models.test_liquid import diagonal_liquid

    m = diagonal_liquid("kb", degree, L=24)
    u = impulses([3, 7, 8][:n], 0.8)
    with torch.no_grad():
        oracle, ours = recurrence(m, u), m(u)
    assert (oracle - recurrence(diagonal_liquid("none", degree, L=24), u)).abs().max() > 1e-3
    torch.testing.assert_close(ours, oracle, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["kb", "pb"])
def test_pole_norm_scales_the_degree_p_term_by_r_to_the_p_minus_1(kind):
    """liquid_norm 'pole' is the liquid system x' = (A + r B u) x + B u with r = min_n |Re Lambda_n| / |B_n|."""
    plain, pole = layer(kind, 3, 24), layer(kind, 3, 24, liquid_norm="pole")
    r = pole.modulation().detach()  # (H, 1)
    _, Lambda, _, B, _ = pole.system()
    assert torch.all(Lambda.real.abs() >= r * B.abs() - 1e-12)  # |u| <= 1 keeps Re(Lambda + r B u) <= 0
    assert 0 < r.max() < 1
    u = impulses([5, 6, 7], 0.7)
    u = torch.cat([u, u], 1)  # 4 features
    with torch.no_grad():
        even_plain, odd_plain = parts(plain.liquid_term, u)
        even_pole, odd_pole = parts(pole.liquid_term, u)
    torch.testing.assert_close(even_pole, r * even_plain, rtol=1e-10, atol=1e-14)  # degree 2
    torch.testing.assert_close(odd_pole, r**2 * odd_plain, rtol=1e-10, atol=1e-14)  # degree 3
