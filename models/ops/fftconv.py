"""Long convolution by FFT (docs/models.md §2.4, eqs. (13), (14)).

    y = irFFT_2L( rFFT_2L(u) * rFFT_2L(k) )[:L]

Zero-padding to 2L turns the circular convolution into a linear one. A two-sided kernel of length
2L (bidirectional SSMs) puts the causal taps in [0, L) and the anti-causal ones in [L, 2L), which
the same product turns into lags -L .. -1. Runs in float32 with autocast off: cuFFT in half
precision only takes power-of-two lengths and complex types have no bfloat16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.ops import fftconv_triton


def two_sided(k_fwd: torch.Tensor, k_bwd: torch.Tensor) -> torch.Tensor:
    """(..., L) causal and anti-causal kernels -> one (..., 2L) kernel: [k_fwd, 0] + [0, flip(k_bwd)].

    k_bwd[j] becomes the weight of lag -(j+1): the backward direction starts one step away, so lag 0
    is counted once (the convention of the S4 code).
    """
    L = k_fwd.shape[-1]
    return F.pad(k_fwd, (0, L)) + F.pad(k_bwd.flip(-1), (L, 0))


def zero_padded(x: torch.Tensor, n: int) -> torch.Tensor:
    """x (..., L) -> (..., n) with zeros after x: one copy of x and a fill of the tail only (F.pad, which
    `torch.fft.rfft(x, n=n)` uses, fills all n positions first and then copies x over)."""
    L = x.shape[-1]
    out = x.new_empty(*x.shape[:-1], n)
    out[..., L:].zero_()
    out[..., :L].copy_(x)
    return out


class _FFTConv(torch.autograd.Function):
    """y = irFFT_2L(U K)[:L] with a hand-written backward that works on the spectra directly.

    Both directions are circular convolutions on the zero-padded length n = 2L, so the adjoints are
    the matching correlations (G = rFFT_2L(dL/dy), U = rFFT_2L(u), K = rFFT_2L(k)):

        dL/du = irFFT_2L(G conj(K))[:L],      dL/dk = irFFT_2L(sum_b G conj(U))[:Lk]

    Against autograd through rfft/irfft/slice this saves the padding, slicing and un-broadcasting
    copies and reduces over the batch in frequency space, before the inverse FFT.

    The inverse FFTs of (B, H, L+1) spectra run with norm="forward" (no 1/n scaling pass over their
    (B, H, 2L) output): the 1/n is folded into the kernel spectrum k_f / n, an (H, L+1) tensor, once per
    call. The zero padding to 2L is written by `zero_padded` (the tail only is filled).
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, k: torch.Tensor, use_triton: bool) -> torch.Tensor:
        L, Lk = u.shape[-1], k.shape[-1]
        n = 2 * L
        u_f = torch.fft.rfft(zero_padded(u, n))  # (B, H, L+1)
        k_f = torch.fft.rfft(k, n=n, norm="forward")  # (H, L+1): spectrum / n
        ctx.save_for_backward(u_f, k_f)
        ctx.shape = (L, Lk)
        ctx.use_triton = use_triton
        return torch.fft.irfft(u_f * k_f, n=n, norm="forward")[..., :L]  # (B, H, L)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        u_f, k_f = ctx.saved_tensors  # k_f is the kernel spectrum / n
        L, Lk = ctx.shape
        n = 2 * L
        g_f = torch.fft.rfft(zero_padded(g, n))  # (B, H, L+1)
        grad_u = grad_k = None
        if all(ctx.needs_input_grad[:2]) and ctx.use_triton and fftconv_triton.supported(g_f, u_f, k_f):
            # both spectral products in one pass over G and U (models/ops/fftconv_triton.py)
            d_u, d_k = fftconv_triton.conv_backward(g_f, u_f, k_f)
            grad_u = torch.fft.irfft(d_u, n=n, norm="forward")[..., :L]  # (B, H, L)
            grad_k = torch.fft.irfft(d_k, n=n)[..., :Lk]  # (H, Lk)
            return grad_u, grad_k, None
        if ctx.needs_input_grad[0]:
            grad_u = torch.fft.irfft(g_f * k_f.conj(), n=n, norm="forward")[..., :L]  # (B, H, L)
        if ctx.needs_input_grad[1]:
            # sum over the batch in frequency space: elementwise product, then an outer-axis reduction
            # (faster than einsum, which runs this as a batched complex matrix-vector product)
            grad_k = torch.fft.irfft((g_f * u_f.conj()).sum(0), n=n)[..., :Lk]  # (H, Lk)
        return grad_u, grad_k, None


def fft_conv(u: torch.Tensor, k: torch.Tensor, use_triton: bool = True) -> torch.Tensor:
    """u (B, H, L) convolved with k (H, Lk), Lk <= 2L, -> (B, H, L) in float32 (float64 for float64 input).

    Leading batch axes of u may be any number (e.g. (terms, B, H, L)); they are folded into one.
    """
    L = u.shape[-1]
    dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=u.device.type, enabled=False):
        lead = u.shape[:-2]
        y = _FFTConv.apply(u.to(dtype).reshape(-1, *u.shape[-2:]), k.to(dtype), use_triton)
        return y.reshape(*lead, *y.shape[-2:])


def fft_conv_autograd(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Plain-autograd twin of `fft_conv` (rfft, product, irfft), used by the tests of its backward."""
    L = u.shape[-1]
    n = 2 * L
    u_f = torch.fft.rfft(u, n=n)
    k_f = torch.fft.rfft(k, n=n)
    return torch.fft.irfft(u_f * k_f, n=n)[..., :L]


def direct_conv_ref(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Plain twin of `fft_conv` for a causal kernel (H, L): y_t = sum_{s<=t} k[t-s] u_s."""
    L = u.shape[-1]
    y = torch.zeros_like(u)
    for t in range(L):
        y[..., t] = (k[..., : t + 1].flip(-1) * u[..., : t + 1]).sum(-1)
    return y
