"""S4D: the kernel against a float64 brute force, convolution against recurrence, causality."""

from __future__ import annotations

import math

import pytest
import torch

from models.block import Norm, ResidualBlock, SSMLayer
from models.hippo import legs, legs_low_rank, nplr_legs, s4d_init
from models.ops.fftconv import direct_conv_ref, fft_conv, two_sided
from models.ops.vandermonde import vandermonde, vandermonde_ref
from models.s4d import S4D

INITS = ["legs", "inv", "lin"]
DISCS = ["zoh", "bilinear"]


@torch.no_grad()
def oracle_kernel(ssm: S4D, L: int, rate: float = 1.0) -> torch.Tensor:
    """K[c, h, l] = 2 Re sum_n C A_bar^l B_bar, in float64, with A_bar and B_bar obtained independently:
    ZOH from the matrix exponential of the augmented system [[dt A, dt B], [0, 0]], bilinear by a
    linear solve, and the powers by running the impulse response of the recurrence."""
    H, N2 = ssm.H, ssm.N2
    reps = H // ssm.n_ssm
    A = torch.complex(-torch.exp(ssm.A_log_re.double()), ssm.A_im.double()).repeat(reps, 1)
    B = torch.view_as_complex(ssm.B.double().contiguous()).repeat(reps, 1)
    C = torch.view_as_complex(ssm.C.double().contiguous())  # (channels, H, N2)
    dt = torch.exp(ssm.log_dt.double()) * rate
    K = torch.zeros(ssm.channels, H, L, dtype=torch.float64)
    for h in range(H):
        for n in range(N2):
            a, b = A[h, n], B[h, n]
            if ssm.disc == "zoh":
                M = torch.tensor([[a * dt[h], b * dt[h]], [0, 0]], dtype=torch.complex128)
                E = torch.linalg.matrix_exp(M)
                a_bar, b_bar = E[0, 0], E[0, 1]
            else:
                lhs = torch.tensor([[1 - dt[h] * a / 2]], dtype=torch.complex128)
                a_bar = torch.linalg.solve(lhs, torch.tensor([[1 + dt[h] * a / 2]], dtype=torch.complex128))[0, 0]
                b_bar = torch.linalg.solve(lhs, torch.tensor([[dt[h] * b]], dtype=torch.complex128))[0, 0]
            x = b_bar  # impulse response: x_0 = B_bar, x_l = A_bar x_{l-1}
            for ell in range(L):
                K[:, h, ell] += 2 * (C[:, h, n] * x).real
                x = a_bar * x
    return K


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("disc", DISCS)
def test_kernel_matches_float64_oracle(init, disc):
    torch.manual_seed(0)
    ssm = S4D(d_model=3, d_state=8, init=init, disc=disc, dt_min=0.01, dt_max=0.5)
    K = ssm.kernel(40)
    K_ref = oracle_kernel(ssm, 40)
    assert K.shape == (1, 3, 40)
    torch.testing.assert_close(K.double(), K_ref, rtol=1e-4, atol=1e-5)


def test_kernel_float64_path_is_exact():
    torch.manual_seed(1)
    ssm = S4D(d_model=2, d_state=6, init="legs", disc="bilinear").double()
    torch.testing.assert_close(ssm.kernel(33), oracle_kernel(ssm, 33), rtol=1e-10, atol=1e-12)


def test_vandermonde_chunks_match_repeated_multiplication():
    """The chunked exp(x l) path equals its plain twin (powers of A_bar by repeated multiplication) in float64,
    across chunk boundaries (chunk 7 < L = 40) and for modes with |A_bar| near 1 and far below it."""
    torch.manual_seed(4)
    A_bar = torch.polar(torch.rand(3, 5, dtype=torch.float64) * 0.5 + 0.49, torch.rand(3, 5, dtype=torch.float64) * 6)
    v = torch.randn(2, 3, 5, dtype=torch.complex128)
    K = vandermonde(v, torch.log(A_bar), 40, chunk=7)
    torch.testing.assert_close(K, vandermonde_ref(v, A_bar, 40), rtol=1e-12, atol=1e-12)


def test_rate_scales_the_step_size():
    torch.manual_seed(2)
    ssm = S4D(d_model=4, d_state=8).double()
    K2 = ssm.kernel(32, rate=2.0)
    with torch.no_grad():
        ssm.log_dt += math.log(2.0)
    torch.testing.assert_close(K2, ssm.kernel(32))


def test_shared_ssm_copies():
    ssm = S4D(d_model=8, d_state=8, n_ssm=2)
    assert ssm.A_im.shape == (2, 4)
    A_bar, _ = ssm.discretize()
    assert A_bar.shape == (8, 4)


def test_fft_conv_is_linear_convolution():
    torch.manual_seed(3)
    u, k = torch.randn(2, 3, 50, dtype=torch.float64), torch.randn(3, 50, dtype=torch.float64)
    torch.testing.assert_close(fft_conv(u, k).double(), direct_conv_ref(u, k), rtol=1e-5, atol=1e-5)


def test_two_sided_kernel_lags():
    """The backward kernel's tap j weighs the input j+1 steps in the future."""
    L = 6
    k_fwd, k_bwd = torch.zeros(1, L), torch.zeros(1, L)
    k_bwd[0, 2] = 1.0
    u = torch.zeros(1, 1, L)
    u[0, 0, 4] = 1.0
    y = fft_conv(u, two_sided(k_fwd, k_bwd))
    expected = torch.zeros(1, 1, L)
    expected[0, 0, 1] = 1.0  # y_1 = u_{1+3}
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("disc", DISCS)
def test_convolution_equals_recurrence(disc):
    torch.manual_seed(4)
    ssm = S4D(d_model=4, d_state=16, disc=disc).double()
    u = torch.randn(3, 4, 64, dtype=torch.float64)
    y_conv = ssm(u)
    ssm.setup_step()
    state = ssm.default_state(3)
    ys = []
    for t in range(u.shape[-1]):
        y_t, state = ssm.step(u[..., t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, -1), y_conv, rtol=1e-7, atol=1e-9)


def test_layer_step_reproduces_layer_forward():
    torch.manual_seed(5)
    layer = SSMLayer(S4D(d_model=4, d_state=8), dropout=0.1).double().eval()
    u = torch.randn(2, 4, 30, dtype=torch.float64)
    y = layer(u)
    layer.setup_step(rate=1.0)
    state = layer.ssm.default_state(2)
    steps = []
    for t in range(30):
        y_t, state = layer.step(u[..., t], state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, -1), y, rtol=1e-7, atol=1e-9)


def test_bidirectional_has_no_step():
    ssm = S4D(d_model=2, d_state=4, bidirectional=True)
    with pytest.raises(RuntimeError, match="bidirectional"):
        ssm.setup_step()


@pytest.mark.parametrize("norm", ["batch", "layer"])
@pytest.mark.parametrize("prenorm", [True, False])
def test_unidirectional_block_is_causal(norm, prenorm):
    torch.manual_seed(6)
    block = ResidualBlock(SSMLayer(S4D(d_model=8, d_state=8)), norm=norm, prenorm=prenorm).eval()
    u = torch.randn(2, 8, 40)
    t = 25
    v = u.clone()
    v[..., t] += torch.randn(2, 8)
    y_u, y_v = block(u), block(v)
    torch.testing.assert_close(y_u[..., :t], y_v[..., :t], rtol=0, atol=1e-5)
    assert (y_u[..., t:] - y_v[..., t:]).abs().max() > 1e-3


def test_bidirectional_block_sees_the_future():
    torch.manual_seed(7)
    block = ResidualBlock(SSMLayer(S4D(d_model=4, d_state=8, bidirectional=True)), norm="layer").eval()
    u = torch.randn(1, 4, 32)
    v = u.clone()
    v[..., 20] += torch.randn(1, 4)  # not constant across features: LayerNorm would remove that
    assert (block(u)[..., :20] - block(v)[..., :20]).abs().max() > 1e-4


def test_hippo_nplr_reconstructs_legs():
    """(A + P P^T) V = V Lambda on the kept modes, and B = 2 Re(V B~) (conjugate half added back)."""
    N = 8
    A, B = legs(N)
    P = legs_low_rank(N)
    Lambda, P_t, B_t, V = nplr_legs(N)
    normal = (A + P[:, None] * P[None, :]).to(torch.complex128)
    torch.testing.assert_close(normal @ V, V * Lambda, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(Lambda.real, torch.full((N // 2,), -0.5, dtype=torch.float64))
    assert (Lambda.imag < 0).all()
    torch.testing.assert_close(2 * (V @ B_t).real, B, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(2 * (V @ P_t).real, P, rtol=1e-10, atol=1e-10)


def test_norm_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown norm"):
        Norm(4, "group")


# S4D-Inv and S4D-Lin (docs/models.md §3; the public S4 code, src/models/sequence/kernels/dplr.py, init 'inv' /
# 'lin'), N = 8 state size, n = 0..3: Re A_n = -1/2, B_n = 1,
#   Inv: Im A_n = (N/pi)(N/(2n+1) - 1) = 8/pi * (7, 5/3, 3/5, 1/7)
#   Lin: Im A_n = pi n
# The public code stores A = -1/2 - i Im (negative imaginary parts), this code the conjugate: the same real kernel
# for the conjugate C, so only |Im A_n| is compared. The numbers are written out, not recomputed from the formula.
EXPECTED_IMAG = {
    "inv": [17.82535362629228, 4.244131815783875, 1.5278874536821956, 0.3637827270671892],
    "lin": [0.0, 3.141592653589793, 6.283185307179586, 9.42477796076938],
}


@pytest.mark.parametrize("init", ["inv", "lin"])
def test_s4d_inv_and_lin_initialisations_match_the_published_formulas(init):
    A, B = s4d_init(8, init)
    assert A.shape == B.shape == (4,)
    torch.testing.assert_close(A.real, torch.full((4,), -0.5, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(A.imag.abs(), torch.tensor(EXPECTED_IMAG[init], dtype=torch.float64),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(B, torch.ones(4, dtype=torch.complex128), rtol=0, atol=0)


@pytest.mark.parametrize("init", ["inv", "lin"])
def test_s4d_layer_starts_from_its_initialisation(init):
    """The trainable parameters hold the init (Re A = -exp(A_log_re)), repeated for every SSM copy."""
    ssm = S4D(d_model=4, d_state=8, init=init, n_ssm=2)
    expected = torch.tensor(EXPECTED_IMAG[init])
    torch.testing.assert_close(-torch.exp(ssm.A_log_re), torch.full((2, 4), -0.5), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ssm.A_im.abs(), expected.expand(2, 4), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(torch.view_as_complex(ssm.B), torch.ones(2, 4, dtype=torch.complex64))


def test_s4d_inv_at_a_realistic_state_size():
    """N = 64: the first, second and last of the 32 modes (the first is about N^2/pi)."""
    A, _ = s4d_init(64, "inv")
    assert A.shape == (32,)
    torch.testing.assert_close(A.imag.abs()[[0, 1, 31]],
                               torch.tensor([1283.425461093044, 414.22726522050624, 0.3233624240597227],
                                            dtype=torch.float64), rtol=1e-12, atol=1e-12)
