"""Liquid-S4's reference mode: the public Liquid-S4 code's liquid term (raminmh/liquid-s4, class S4,
liquid_kernel polyb / kb), quirks included: frozen init-time coefficients, the time-flipped combination window of
the last n_p inputs, not causal (docs/liquid.md, "Reference mode", quirks numbered there). It is the mode that
produced the published numbers, hence the `paper` preset's default; models/liquid.py holds the paper's model, the
exact expansion, and calls in here for this mode. Checked against the public layer's numbers
(tests/models/test_liquid_golden.py).

`ssm` below is a models.liquid.LiquidS4 layer.
"""

from __future__ import annotations

import math

import torch

from models.ops import kb_taps_triton
from models.ops.fftconv import fft_conv
from models.padding import batch_constant

# ------------------------------------------------------------------------------------------------
# The public implementation's correlation signal
# ------------------------------------------------------------------------------------------------


def combination_window(L: int, p: int) -> int:
    """n_p: the smallest n with C(n, p) >= L."""
    n = p
    while math.comb(n, p) < L:
        n += 1
    return n


_WINDOWS: dict[tuple[int, int, torch.device], torch.Tensor | None] = {}


def _window_index(L: int, p: int) -> torch.Tensor | None:
    """The time-flipped combination window of a length-L input: row t holds the p time indices whose product
    lands at output t (the (C(n_p, p) - 1 - t)-th p-subset of the last n_p indices, lexicographic; an index
    below 0 wraps as Python's indexing does); None when L < p (no subset: the term is zero). (L, p) long."""
    if L < p:
        return None
    n = combination_window(L, p)
    subsets = torch.combinations(torch.arange(n), p)  # lexicographic, as itertools.combinations
    return (subsets[-L:].flip(0) + (L - n)) % L


def window_products(u: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """out[..., t] = prod_j u[..., idx[j, t]] for u (B, H, L) and idx (p, L) long -> (B, H, L).

    One `index_select` per factor and plain products, for the CUDA-graph path: the backward of `index_select` is an
    `index_add_` on the device, while `u[..., idx].prod(-1)` would backpropagate through `prod`, whose backward looks
    for zeros in its input on the host (a sync, which a graph capture refuses) and through advanced indexing's
    sort-based `index_put_` (44 % of a PB training step's GPU time, BENCHMARKS.md)."""
    out = u.index_select(-1, idx[0])
    for j in range(1, idx.shape[0]):
        out = out * u.index_select(-1, idx[j])
    return out


def reference_window(u: torch.Tensor, p: int) -> torch.Tensor:
    """allcombs signal, time-flipped (quirk 4, docs/liquid.md): products over the p-subsets of the last n_p time
    indices, the last L of them in reverse lexicographic order; (B, H, L). The index table is built once per
    (L, p, device) and kept on the device: no host-to-device copy in the forward."""
    L = u.shape[-1]
    key = (L, p, u.device)
    if key not in _WINDOWS:
        idx = _window_index(L, p)
        _WINDOWS[key] = None if idx is None else idx.t().contiguous().to(u.device)  # (p, L)
    idx = _WINDOWS[key]
    return torch.zeros_like(u) if idx is None else window_products(u, idx)


def reference_correlations(u: torch.Tensor, p: int) -> torch.Tensor:
    """allcombs signal in the public code's time order (before its flip): products over the p-subsets of the last
    n_p time indices (lexicographic), the last L of them, zero-padded at the end when fewer; (B, H, L)."""
    return reference_window(u, p).flip(-1)


# The same term on a zero-padded batch (CUDA graphs, suite/train/cuda_graphs.py) ----------------------------------
# The public code's term depends on the batch's length L0 (the window indexes its last positions; KB multiplies
# spectra on grids of L0 + 1 and 2 L0 points). A graph captured for a padded length L >= L0 computes it for the
# true L0, given as a device tensor (no .item(), no host sync): index tables cover every L0 <= L, and the
# KB product on grids of L0 + 1 and 2 L0 points is a convolution with a kernel that is a closed-form linear map of
# the S4 kernel's taps (kb_tap_map_ref).

_PADDED_WINDOWS: dict[tuple[int, int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}


def _padded_window_tables(L: int, p: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For every L0 in 0..L: `which[L0]` the row of `rel` for n_p(L0); rel[j, t] the window's indices at output t
    relative to L0 (in [-n, 0)) for the j-th distinct window size n; (L + 1,) and (windows, L, p)."""
    key = (L, p, device)
    if key not in _PADDED_WINDOWS:
        sizes = [combination_window(L0, p) for L0 in range(p, L + 1)]
        distinct = sorted(set(sizes))
        rel = torch.zeros(len(distinct), L, p, dtype=torch.long)
        for j, n in enumerate(distinct):
            subsets = torch.combinations(torch.arange(n), p)[-L:].flip(0) - n
            rel[j, : len(subsets)] = subsets
        which = torch.tensor([0] * p + [distinct.index(n) for n in sizes], dtype=torch.long)
        _PADDED_WINDOWS[key] = (which.to(device), rel.to(device))
    return _PADDED_WINDOWS[key]


def padded_reference_window(u: torch.Tensor, p: int, L0: torch.Tensor) -> torch.Tensor:
    """`reference_window(u[..., :L0], p)` zero-extended to u's length L, for u zero past L0; L0 a 0-dim long
    tensor on u's device."""
    L = u.shape[-1]
    which, rel = _padded_window_tables(L, p, u.device)
    idx = L0 + rel.index_select(0, which.index_select(0, L0.view(1)))[0]  # (L, p); no 0-dim index: no .item()
    idx = torch.remainder(idx, L0.clamp(min=1)).clamp(max=L - 1)  # wrap as eager indexing does; rows t >= L0 unused
    valid = (torch.arange(L, device=u.device) < L0) & (L0 >= p)
    return torch.where(valid, window_products(u, idx.t().contiguous()), 0.0)


def flip_within(x: torch.Tensor, L0: torch.Tensor) -> torch.Tensor:
    """x[..., :L0].flip(-1) zero-extended to x's length (L0 a 0-dim device tensor)."""
    t = torch.arange(x.shape[-1], device=x.device)
    src = (L0 - 1 - t).clamp(min=0)
    return torch.where(t < L0, x[..., src], 0.0)


def sin_pi(r: torch.Tensor, N: torch.Tensor) -> torch.Tensor:
    """sin(pi r / N) in float64 for integer tensors r and N > 0, r reduced exactly to s in [-N/2, N/2] first
    (r = k N + s, sin(pi r / N) = (-1)^k sin(pi s / N)): full relative precision near every zero."""
    r = torch.remainder(r, 2 * N)
    k = torch.div(2 * r + N, 2 * N, rounding_mode="floor")  # round(r / N) in {0, 1, 2}
    sign = 1 - 2 * (k % 2)
    return sign * torch.sin(math.pi * (r - k * N).double() / N.double())


def kb_tap_map_ref(L0: torch.Tensor, L: int) -> torch.Tensor:
    """The linear map from the kernel's first L0 + 1 taps k1 to the two-sided kernel on the 2L grid whose
    convolution gives the public KB term's product of spectra on mismatched grids (docs/liquid.md, "Padded
    batches"): irfft_{2 L0}(fft_{L0+1}(k1) * rfft_{2 L0}(c))[:L0] = sum_b c[b] h[(t - b) mod 2 L0] with
    h = irfft_{2 L0}(fft_{L0+1}(k1)) = G k1 in closed form, a Dirichlet kernel. G (2L, L + 1) float64, L0 a 0-dim
    integer tensor on the device (no host sync): the PyTorch twin of models/ops/kb_taps_triton.py."""
    dev = L0.device
    j = torch.arange(2 * L, device=dev)  # tap on the 2L grid: lag j (j < L0) or -(2L - j)
    e = 2 * L - j
    d = torch.where(j < L0, j, 2 * L0 - e)  # the index into h, whose period is 2 L0
    keep = (j < L0) | ((e >= 1) & (e < L0))
    n = torch.arange(L + 1, device=dev)
    P = L0 * (L0 + 1)
    q = d[:, None] * (L0 + 1) - 2 * n * L0  # (2L, L + 1): h's phase theta = pi d / L0 - 2 pi n / (L0 + 1) = pi q / P
    half = sin_pi(q, 2 * P)  # sin(theta / 2), reduced exactly: it divides
    a, b = math.pi * d.double() / (2 * L0).double(), math.pi * n.double() / (L0 + 1).double()  # theta / 2 = a - b
    cos_half = torch.cos(a)[:, None] * torch.cos(b) + torch.sin(a)[:, None] * torch.sin(b)
    parity = (1 - 2 * torch.remainder(d, 2)).double()[:, None]  # L0 theta = pi d + 2 b
    cos_L0, sin_L0 = parity * torch.cos(2 * b), parity * torch.sin(2 * b)
    num = sin_L0 * cos_half - cos_L0 * half  # sin((L0 - 1/2) theta)
    at_zero = torch.remainder(q, 2 * P) == 0
    ratio = torch.where(at_zero, (2 * L0 - 1).double(), num / torch.where(at_zero, 1.0, half))
    G = (ratio + cos_L0) / (2 * L0).double()
    return torch.where(keep[:, None] & (n <= L0), G, 0.0)


def kb_tap_map(L0: torch.Tensor, L: int, use_triton: bool = True) -> torch.Tensor:
    """`kb_tap_map_ref`, in one Triton kernel where it runs (models/ops/kb_taps_triton.py)."""
    fused = use_triton and kb_taps_triton.supported(L0, L)
    return kb_taps_triton.kb_tap_map(L0, L) if fused else kb_tap_map_ref(L0, L)


def padded_kb_spectrum_kernel(k1: torch.Tensor, L0: torch.Tensor, L: int, use_triton: bool = True) -> torch.Tensor:
    """The two-sided kernel (H, 2L) of `kb_tap_map_ref` for the kernel's first L0 + 1 taps k1 (H, L + 1), zero past
    them: one float64 matrix product; the map is built once per batch and shared by the layers (models/padding.py
    `batch_constant`)."""
    G = batch_constant(("kb_tap_map", L, use_triton), L0, lambda: kb_tap_map(L0, L, use_triton))  # on L0's device
    return (k1.double() @ G.t()).to(k1.dtype)


# ------------------------------------------------------------------------------------------------
# The term itself
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def freeze(ssm) -> None:
    """Quirk 1 (docs/liquid.md): the reference term's coefficients are the current (initial) dt, Lambda,
    B and raw C, frozen as buffers. Complex values are stored as real (..., 2) views, so that
    `.to(dtype)` / `.double()` convert them without dropping their imaginary parts."""
    _, Lambda, _, B, _ = ssm.system()
    real = lambda z: torch.view_as_real(z.detach().clone().resolve_conj()).clone()  # noqa: E731
    for name, value in (("_ref_dt", torch.exp(ssm.log_dt.detach()).clone()), ("_ref_Lambda", real(Lambda)),
                        ("_ref_B", real(B)), ("_ref_C", ssm._C_init.detach().clone())):
        if name in ssm._buffers:
            ssm._buffers[name] = value.to(ssm._buffers[name].device)
        else:
            ssm.register_buffer(name, value, persistent=False)


def reference_term(ssm, u: torch.Tensor, rate: float = 1.0, K: torch.Tensor | None = None) -> torch.Tensor:
    """The public code's liquid term (docs/liquid.md, "Reference mode"): frozen init-time coefficients
    (init dt even at rate != 1), the conjugate of the raw C, the last-n_p combination window, time flip;
    PB pointwise; KB the rate's S4 kernel (two-sided and cut to L + 1 taps when bidirectional) on
    mismatched FFT grids. u (B, H, L), K the S4 kernel (channels, H, L) if already computed -> (B, H, L)."""
    dt = ssm._ref_dt[:, None]
    Lambda, B = torch.view_as_complex(ssm._ref_Lambda), torch.view_as_complex(ssm._ref_B)
    B_bar = dt * B / (1 - dt * Lambda / 2)  # diagonal part only, (H, N2)
    s = 2 * B_bar.sum(-1).real  # sum over the conjugate-doubled modes, (H,)
    L = u.shape[-1]
    L0 = ssm.batch_length  # None: the input is the batch itself; else its true length (zero padding past it)
    out = torch.zeros_like(u)
    if ssm.liquid_kernel == "kb":
        K = ssm.kernel(L, rate) if K is None else K  # the trainable S4 kernel at this rate, (channels, H, L)
        if L0 is None:
            k = K[0] if not ssm.bidirectional else torch.cat([K[0], K[1].flip(-1)], -1)  # (H, L) or (H, 2L)
            k_f = torch.fft.fft(k, n=L + 1)  # quirks 13-14: complex FFT of the first L + 1 taps
        else:  # the same first L0 + 1 taps: K[0][:L0], then 0 or (bidirectional) K[1][L0 - 1]
            last = (K[1].index_select(-1, (L0 - 1).clamp(min=0).view(1))[:, 0] if ssm.bidirectional
                    else torch.zeros_like(K[0][:, 0]))
            k1 = torch.cat([K[0], torch.zeros_like(K[0][:, :1])], -1)  # (H, L + 1)
            tap = torch.arange(L + 1, device=u.device)
            k1 = torch.where(tap < L0, k1, torch.where(tap == L0, last[:, None], 0.0))
            k2 = padded_kb_spectrum_kernel(k1, L0, L, ssm.use_triton)  # the same product: a 2L-tap convolution
    for p in range(2, ssm.liquid_degree + 1):
        corr = reference_window(u, p) if L0 is None else padded_reference_window(u, p, L0)  # quirk 5: flipped
        if ssm.liquid_kernel == "pb":
            b_p = B_bar * s[:, None] ** (2 ** (p - 1) - 1)  # quirk 11
            c = 2 * (torch.view_as_complex(ssm._ref_C).conj() * b_p).sum(-1).real  # (channels, H), quirk 3
            out = out + c[0][:, None] * corr
            if ssm.bidirectional:
                out = out + c[1][:, None] * (corr.flip(-1) if L0 is None else flip_within(corr, L0))
        elif L0 is None:
            spec = k_f * s[:, None] ** (p - 1) * torch.fft.rfft(corr, n=2 * L)  # quirk 12
            out = out + torch.fft.irfft(spec, n=2 * L)[..., :L]
        else:  # the same, as a two-sided FFT convolution (its written-out backward)
            out = out + fft_conv(corr, k2 * s[:, None] ** (p - 1), ssm.use_triton)
    return out
