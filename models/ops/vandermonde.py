"""Vandermonde products: the convolution kernel of a diagonal SSM (S4D, docs/models.md eq. (15)).

    K[c, h, l] = 2 Re sum_n  v[c, h, n] * exp(x[h, n] * l),   l = 0 .. L-1

with v = C * B_bar and x = log(A_bar), so that exp(x l) = A_bar^l. The factor 2 and the real part
restore the conjugate modes that were halved away.
"""

from __future__ import annotations

import torch

from models.ops import vandermonde_triton


def vandermonde(v: torch.Tensor, x: torch.Tensor, L: int, chunk: int = 4096, use_triton: bool = False) -> torch.Tensor:
    """Kernel (C, H, L) from v (C, H, N) and x (H, N), complex.

    With `use_triton` and inputs the fused Triton kernel takes (complex64 on CUDA, triton importable:
    `vandermonde_triton.supported`), runs that kernel, which never holds the powers. Otherwise this
    PyTorch path materialises (H, N, chunk) at a time, so memory stays O(H N chunk) for any L.
    """
    if use_triton and vandermonde_triton.supported(v, x):
        return vandermonde_triton.vandermonde_fused(v, x, L)
    out = []
    for start in range(0, L, chunk):
        ell = torch.arange(start, min(start + chunk, L), device=x.device, dtype=x.real.dtype)
        powers = torch.exp(x.unsqueeze(-1) * ell)  # (H, N, l)
        out.append(2 * torch.einsum("chn,hnl->chl", v, powers).real)
    return torch.cat(out, dim=-1)


def vandermonde_ref(v: torch.Tensor, A_bar: torch.Tensor, L: int) -> torch.Tensor:
    """Plain twin of `vandermonde`: explicit powers A_bar^l by repeated multiplication."""
    K = []
    power = torch.ones_like(A_bar)
    for _ in range(L):
        K.append(2 * (v * power).sum(-1).real)  # (C, H)
        power = power * A_bar
    return torch.stack(K, dim=-1)
