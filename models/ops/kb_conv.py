"""The SSM convolution and the degree-2 KB liquid term in one pass (docs/liquid.md, section 1).

For u (B, H, L), the SSM kernel k (H, L) (skip term folded into lag 0) and the degree-2 liquid
kernel K2 (H, L):

    y_t = (k * u)_t + y2_t,        y2_t = sum_{i<t} K2[t-1-i] u_i (S_t - S_i),        S = prefix sum of u

With K2'[j] = K2[j-1] (K2 delayed one step), mu the mean of u over time, V the centred prefix sum of
u - mu (so S_t - S_i = mu (t - i) + V_t - V_i) and Kl[j] = j K2'[j]:

    y = k * u + mu (Kl * u) + V (K2' * u) - K2' * (u V)

In frequency space (U = rFFT_2L(u), W = rFFT_2L(u V), hats for the kernels' spectra), with mu a
per-sequence scalar:

    Y0 = U (k^ + mu Kl^) - W K2'^,    Y1 = U K2'^,    y = irFFT(Y0) + V irFFT(Y1)

two forward and two inverse FFTs of (B, H, 2L) signals; the backward below needs as many again.
The pointwise products between them are fused into one Triton kernel each way on the GPU
(`kb_conv_triton`). The
mean split keeps fp32 accurate at long L (V is a zero-drift random walk even when u has a mean; the
plain S (K2' * u) - K2' * (u S) loses ~1e-5 relative at L = 16384 for inputs of mean 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.ops import kb_conv_triton
from models.ops.fftconv import zero_padded


def centred_cumsum(x: torch.Tensor) -> torch.Tensor:
    """S_k - mean_k S_k with S_k = sum_{i<=k} x_i along the last axis, accumulated in float64,
    returned in x's dtype. Only differences S_t - S_i enter the liquid term, so the centring changes
    nothing exactly; it keeps the magnitudes that fp32 products would cancel small."""
    s = torch.cumsum(x.to(torch.float64), dim=-1)
    return (s - s.mean(-1, keepdim=True)).to(x.dtype)


def _centred_cumsum_adjoint(g: torch.Tensor) -> torch.Tensor:
    """The adjoint of `centred_cumsum`: dx_i = sum_{t>=i} (g_t - mean g), accumulated in float64."""
    d = g.to(torch.float64)
    d = d - d.mean(-1, keepdim=True)
    s = torch.cumsum(d, dim=-1)
    return (s[..., -1:] - s + d).to(g.dtype)  # reverse cumulative sum


def spectra_forward(U, W, k_f, d_f, l_f, mu):
    """Y0 = U (k^ + mu Kl^) - W K2'^ and Y1 = U K2'^ (B, H, F): the PyTorch twin of
    `kb_conv_triton.spectra_forward`."""
    Y0 = U * torch.addcmul(k_f, mu, l_f)
    Y0.addcmul_(W, d_f, value=-1)
    return Y0, U * d_f


def spectra_backward(G0, G1, U, W, k_f, d_f, l_f, mu):
    """dU, dW (B, H, F), dk^, dKl^, dK2'^ (H, F) and dmu (B, H, 1) times n = 2L (`_ConvKB2` passes the
    kernel spectra divided by n, so there it is dmu itself): the PyTorch twin of `kb_conv_triton.spectra_backward`."""
    T = G0.conj() * U  # (B, H, F)
    dU = G0 * torch.addcmul(k_f, mu, l_f).conj() + G1 * d_f.conj()
    dW = -(G0 * d_f.conj())
    r = (T * l_f).real  # Parseval on the half spectrum: f = 0 and f = L once, the others twice
    dmu = 2 * r.sum(-1, keepdim=True) - r[..., :1] - r[..., -1:]
    dd = (G1 * U.conj() - G0 * W.conj()).sum(0)
    return dU, dW, T.sum(0).conj(), (T * mu).sum(0).conj(), dd, dmu


class _ConvKB2(torch.autograd.Function):
    """y = k * u + y2 (module docstring) with a hand-written backward on the spectra.

    Backward, for g = dL/dy (G0 = rFFT(g), G1 = rFFT(g V), T = conj(G0) U):
        through the spectra:  du = irFFT(G0 conj(k^ + mu Kl^) + G1 conj(K2'^)),  d(uV) = -irFFT(G0 conj(K2'^))
                              dmu = sum_f w_f Re(T Kl^)     (Parseval: w_f = 1/n at f = 0, L, else 2/n)
        kernels:              dk^ = conj(sum_b T),  dKl^ = conj(sum_b mu T),  dK2'^ = sum_b (G1 conj(U) - G0 conj(W))
        through V and mu:     dV = g irFFT(Y1) + d(uV) u,  du += d(uV) V + adjoint_cumsum(dV),
                              dmu -= sum_t adjoint_cumsum(dV),  du += dmu / L
    The pointwise products between the FFTs run in one Triton kernel each way when it takes the inputs
    (`kb_conv_triton.supported`), else in PyTorch (`spectra_forward`, `spectra_backward`).
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, k: torch.Tensor, K2: torch.Tensor, use_triton: bool) -> torch.Tensor:
        L = u.shape[-1]
        n = 2 * L
        mu = u.mean(-1, keepdim=True)  # (B, H, 1)
        V = centred_cumsum(u - mu)  # (B, H, L)
        lag = torch.arange(L, device=u.device, dtype=u.dtype)
        K2d = F.pad(K2[..., :-1], (1, 0))  # (H, L): K2' (tap L never reaches t < L)
        # kernel spectra / n (norm="forward"): the inverse FFTs below then need no 1/n pass over (B, H, 2L)
        k_f = torch.fft.rfft(k, n=n, norm="forward")  # (H, L+1)
        d_f = torch.fft.rfft(K2d, n=n, norm="forward")
        l_f = torch.fft.rfft(lag * K2d, n=n, norm="forward")
        U = torch.fft.rfft(zero_padded(u, n))  # (B, H, L+1)
        W = torch.fft.rfft(zero_padded(u * V, n))
        fused = use_triton and kb_conv_triton.supported(U, W, k_f, d_f, l_f)
        Y0, Y1 = (kb_conv_triton.spectra_forward if fused else spectra_forward)(U, W, k_f, d_f, l_f, mu)
        y1 = torch.fft.irfft(Y1, n=n, norm="forward")[..., :L]  # K2' * u
        ctx.save_for_backward(u, mu, V, y1, U, W, k_f, d_f, l_f)
        ctx.fused = fused
        return torch.addcmul(torch.fft.irfft(Y0, n=n, norm="forward")[..., :L], V, y1)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        u, mu, V, y1, U, W, k_f, d_f, l_f = ctx.saved_tensors
        L = u.shape[-1]
        n = 2 * L
        G0 = torch.fft.rfft(zero_padded(g, n))  # (B, H, L+1)
        G1 = torch.fft.rfft(zero_padded(g * V, n))
        backward = kb_conv_triton.spectra_backward if ctx.fused else spectra_backward
        dU, dW, dk_f, dl_f, dd_f, dmu = backward(G0, G1, U, W, k_f, d_f, l_f, mu)
        grad_u = grad_k = grad_K2 = None
        if ctx.needs_input_grad[0]:
            du = torch.fft.irfft(dU, n=n, norm="forward")[..., :L]  # the spectra carry the 1/n
            duV = torch.fft.irfft(dW, n=n, norm="forward")[..., :L]  # d(uV)
            dv = _centred_cumsum_adjoint(torch.addcmul(g * y1, duV, u))  # (B, H, L)
            grad_u = du.addcmul_(duV, V).add_(dv).add_((dmu - dv.sum(-1, keepdim=True)) / L)  # dmu / n: l_f is / n
        if ctx.needs_input_grad[1]:
            grad_k = torch.fft.irfft(dk_f, n=n)[..., :L]  # (H, L)
        if ctx.needs_input_grad[2]:
            lag = torch.arange(L, device=u.device, dtype=u.dtype)
            dl = torch.fft.irfft(dl_f, n=n)[..., :L]  # d Kl
            dd = torch.fft.irfft(dd_f, n=n)[..., :L]  # d K2'
            grad_K2 = F.pad(torch.addcmul(dd, lag, dl)[..., 1:], (0, 1))  # K2' = K2 delayed: shift back
        return grad_u, grad_k, grad_K2, None


def conv_and_kb2(u: torch.Tensor, k: torch.Tensor, K2: torch.Tensor, use_triton: bool = True) -> torch.Tensor:
    """k * u + y2 for u (B, H, L), k (H, L), K2 (H, L) -> (B, H, L), in float32 (float64 for float64
    input), autocast off (complex FFTs have no bfloat16). `use_triton`: the fused spectral products
    where they run (CUDA, complex64), else PyTorch."""
    dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=u.device.type, enabled=False):
        return _ConvKB2.apply(u.to(dtype), k.to(dtype), K2.to(dtype), use_triton)
