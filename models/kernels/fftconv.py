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


def fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """u (B, H, L) convolved with k (H, Lk), Lk <= 2L, -> (B, H, L) in float32 (float64 for float64 input)."""
    L = u.shape[-1]
    n = 2 * L
    dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=u.device.type, enabled=False):
        u_f = torch.fft.rfft(u.to(dtype), n=n)  # (B, H, L+1)
        k_f = torch.fft.rfft(k.to(dtype), n=n)  # (H, L+1)
        return torch.fft.irfft(u_f * k_f, n=n)[..., :L]


def direct_conv_reference(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Plain twin of `fft_conv` for a causal kernel (H, L): y_t = sum_{s<=t} k[t-s] u_s."""
    L = u.shape[-1]
    y = torch.zeros_like(u)
    for t in range(L):
        y[..., t] = (k[..., : t + 1].flip(-1) * u[..., : t + 1]).sum(-1)
    return y
