"""Long convolution by FFT (models.md, section 2.4).

    y = irFFT_2L( rFFT_2L(u) * rFFT_2L(k) )[:L]

Zero-padding to 2L turns the circular convolution into a linear one. A two-sided kernel of length
2L (bidirectional SSMs) puts the causal taps in [0, L) and the anti-causal ones in [L, 2L), which
the same product turns into lags -L .. -1. Runs in float32 with autocast off: cuFFT in half
precision only takes power-of-two lengths and complex types have no bfloat16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def two_sided(k_fwd: torch.Tensor, k_bwd: torch.Tensor) -> torch.Tensor:
    """(..., L) causal and anti-causal kernels -> one (..., 2L) kernel: [k_fwd, 0] + [0, flip(k_bwd)].

    k_bwd[j] becomes the weight of lag -(j+1): the backward direction starts one step away, so lag 0
    is counted once (the convention of the S4 code).
    """
    L = k_fwd.shape[-1]
    return F.pad(k_fwd, (0, L)) + F.pad(k_bwd.flip(-1), (L, 0))


class _FFTConv(torch.autograd.Function):
    """y = irFFT_2L(U K)[:L] with a hand-written backward that works on the spectra directly.

    Both directions are circular convolutions on the zero-padded length n = 2L, so the adjoints are
    the matching correlations (G = rFFT_2L(dL/dy), U = rFFT_2L(u), K = rFFT_2L(k)):

        dL/du = irFFT_2L(G conj(K))[:L],      dL/dk = irFFT_2L(sum_b G conj(U))[:Lk]

    Against autograd through rfft/irfft/slice this saves the padding, slicing and un-broadcasting
    copies and reduces over the batch in frequency space, before the inverse FFT.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        L, Lk = u.shape[-1], k.shape[-1]
        n = 2 * L
        u_f = torch.fft.rfft(u, n=n)  # (B, H, L+1)
        k_f = torch.fft.rfft(k, n=n)  # (H, L+1)
        ctx.save_for_backward(u_f, k_f)
        ctx.shape = (L, Lk)
        return torch.fft.irfft(u_f * k_f, n=n)[..., :L]  # (B, H, L)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        u_f, k_f = ctx.saved_tensors
        L, Lk = ctx.shape
        n = 2 * L
        g_f = torch.fft.rfft(g, n=n)  # (B, H, L+1)
        grad_u = grad_k = None
        if ctx.needs_input_grad[0]:
            grad_u = torch.fft.irfft(g_f * k_f.conj(), n=n)[..., :L]  # (B, H, L)
        if ctx.needs_input_grad[1]:
            # sum over the batch in frequency space: elementwise product, then an outer-axis reduction
            # (faster than einsum, which runs this as a batched complex matrix-vector product)
            grad_k = torch.fft.irfft((g_f * u_f.conj()).sum(0), n=n)[..., :Lk]  # (H, Lk)
        return grad_u, grad_k


def fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """u (B, H, L) convolved with k (H, Lk), Lk <= 2L, -> (B, H, L) in float32 (float64 for float64 input).

    Leading batch axes of u may be any number (e.g. (terms, B, H, L)); they are folded into one.
    """
    L = u.shape[-1]
    dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=u.device.type, enabled=False):
        lead = u.shape[:-2]
        y = _FFTConv.apply(u.to(dtype).reshape(-1, *u.shape[-2:]), k.to(dtype))
        return y.reshape(*lead, *y.shape[-2:])


class _FFTConvMix(torch.autograd.Function):
    """Several convolutions sharing spectra: y_o = sum over (o, s, j) in `pairs` of x_s * k_j.

    Each signal x_s (B, H, L) and kernel k_j (H, Lk) is transformed once; the products are summed in
    frequency space, so there is one inverse FFT per output. Backward, as for _FFTConv, with one
    forward FFT per output gradient and one inverse FFT per signal gradient and kernel gradient.
    """

    @staticmethod
    def forward(ctx, pairs, n_out, n_sig, *tensors):
        xs, ks = tensors[:n_sig], tensors[n_sig:]
        L, Lk = xs[0].shape[-1], ks[0].shape[-1]
        n = 2 * L
        xf = [torch.fft.rfft(x, n=n) for x in xs]  # (B, H, L+1) each
        kf = [torch.fft.rfft(k, n=n) for k in ks]  # (H, L+1) each
        acc = [None] * n_out
        for o, s_, j in pairs:
            acc[o] = xf[s_] * kf[j] if acc[o] is None else acc[o].addcmul_(xf[s_], kf[j])
        ctx.save_for_backward(*xf, *kf)
        ctx.meta = (pairs, n_sig, L, Lk)
        return tuple(torch.fft.irfft(a, n=n)[..., :L] for a in acc)  # (B, H, L) each

    @staticmethod
    def backward(ctx, *grads):
        pairs, n_sig, L, Lk = ctx.meta
        saved = ctx.saved_tensors
        xf, kf = saved[:n_sig], saved[n_sig:]
        n = 2 * L
        gf = [None if g is None else torch.fft.rfft(g, n=n) for g in grads]
        gx, gk = [None] * n_sig, [None] * len(kf)
        for o, s_, j in pairs:
            if gf[o] is None:
                continue
            if ctx.needs_input_grad[3 + s_]:
                term = gf[o] * kf[j].conj()
                gx[s_] = term if gx[s_] is None else gx[s_].add_(term)
            if ctx.needs_input_grad[3 + n_sig + j]:
                term = (gf[o] * xf[s_].conj()).sum(0)  # (H, L+1)
                gk[j] = term if gk[j] is None else gk[j].add_(term)
        gx = [None if g is None else torch.fft.irfft(g, n=n)[..., :L] for g in gx]
        gk = [None if g is None else torch.fft.irfft(g, n=n)[..., :Lk] for g in gk]
        return (None, None, None, *gx, *gk)


def fft_conv_mix(signals: list[torch.Tensor], kernels: list[torch.Tensor],
                 pairs: list[tuple[int, int, int]]) -> tuple[torch.Tensor, ...]:
    """y_o = sum_{(o, s, j) in pairs} signals[s] * kernels[j]: signals (B, H, L), kernels (H, Lk), Lk <= 2L,
    same dtype (float32 or float64); returns one (B, H, L) tensor per output index o."""
    n_out = 1 + max(o for o, _, _ in pairs)
    return _FFTConvMix.apply(tuple(pairs), n_out, len(signals), *signals, *kernels)


def fft_conv_autograd(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Plain-autograd twin of `fft_conv` (rfft, product, irfft), used by the tests of its backward."""
    L = u.shape[-1]
    n = 2 * L
    u_f = torch.fft.rfft(u, n=n)
    k_f = torch.fft.rfft(k, n=n)
    return torch.fft.irfft(u_f * k_f, n=n)[..., :L]


def direct_conv_reference(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Plain twin of `fft_conv` for a causal kernel (H, L): y_t = sum_{s<=t} k[t-s] u_s."""
    L = u.shape[-1]
    y = torch.zeros_like(u)
    for t in range(L):
        y[..., t] = (k[..., : t + 1].flip(-1) * u[..., : t + 1]).sum(-1)
    return y
