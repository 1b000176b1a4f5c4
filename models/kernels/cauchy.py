"""Cauchy sums for the S4 kernel, over conjugate pairs (models.md, section 2.3).

    s[a, r, h, k] = sum_n  2 a_n b_n / (alpha_hk - t_k lambda_hn)  +  2 conj(a_n b_n) / (alpha_hk - t_k conj(lambda_hn))

with a = left[a, h, :], b = right[r, h, :]. The fast path walks the frequency nodes in chunks, so it
holds (H, N, chunk) at a time and never the (H, N, L) tensor; `cauchy_pairs_reference` is its plain
twin. (pykeops, where it works, would avoid even the chunk; it crashed compiling the S4 Cauchy
formula on an H100 with pykeops 2.3, so it is not used.)
"""

from __future__ import annotations

import torch


def cauchy_pairs(left: torch.Tensor, right: torch.Tensor, lam: torch.Tensor, alpha: torch.Tensor, t: torch.Tensor,
                 chunk: int = 1024) -> torch.Tensor:
    """left (A, H, N), right (R, H, N), lam (H, N), alpha (H, K), t (K,) -> (A, R, H, K) complex."""
    v = 2 * left.unsqueeze(1) * right.unsqueeze(0)  # (A, R, H, N)
    out = []
    for start in range(0, alpha.shape[-1], chunk):
        a_k, t_k = alpha[:, start : start + chunk], t[start : start + chunk]
        den = a_k.unsqueeze(1) - t_k * lam.unsqueeze(-1)  # (H, N, k)
        den_c = a_k.unsqueeze(1) - t_k * lam.conj().unsqueeze(-1)
        out.append(torch.einsum("arhn,hnk->arhk", v, 1 / den) + torch.einsum("arhn,hnk->arhk", v.conj(), 1 / den_c))
    return torch.cat(out, dim=-1)


def cauchy_pairs_reference(left, right, lam, alpha, t):
    """Plain twin of `cauchy_pairs`: one frequency node at a time, explicit sums."""
    A, R, H, K = left.shape[0], right.shape[0], lam.shape[0], alpha.shape[-1]
    out = torch.zeros(A, R, H, K, dtype=torch.promote_types(left.dtype, alpha.dtype))
    for k in range(K):
        for a in range(A):
            for r in range(R):
                v = left[a] * right[r]  # (H, N)
                out[a, r, :, k] = (2 * v / (alpha[:, k : k + 1] - t[k] * lam)).sum(-1) + (
                    2 * v.conj() / (alpha[:, k : k + 1] - t[k] * lam.conj())
                ).sum(-1)
    return out
