"""Cauchy sums for the S4 kernel, over conjugate pairs (docs/models.md §2.3, eq. (11)).

    s[a, r, h, k] = sum_n  2 a_n b_n / (alpha_hk - t_k lambda_hn)  +  2 conj(a_n b_n) / (alpha_hk - t_k conj(lambda_hn))

with a = left[a, h, :], b = right[r, h, :]. The fast path walks the frequency nodes in chunks, so it
holds (H, 2N, chunk) at a time and never more than a fixed budget; `cauchy_pairs_ref` is its plain
twin. (pykeops, where it works, would avoid even the chunk; it crashed compiling the S4 Cauchy
formula on an H100 with pykeops 2.3, so it is not used.)
"""

from __future__ import annotations

import torch

from models.ops import cauchy_triton


def cauchy_pairs(left: torch.Tensor, right: torch.Tensor, lam: torch.Tensor, alpha: torch.Tensor, t: torch.Tensor,
                 chunk: int | None = None, max_elements: int = 2**25, use_triton: bool = False) -> torch.Tensor:
    """left (A, H, N), right (R, H, N), lam (H, N), alpha (H, K), t (K,) -> (A, R, H, K) complex.

    Both members of each conjugate pair enter as 2N modes, and the sum over modes is one batched
    matrix product (H, A R, 2N) @ (H, 2N, k) per chunk of k = `chunk` nodes; by default chunks are
    sized so that the (H, 2N, k) reciprocal holds at most `max_elements` numbers (one chunk up to
    H 2N K = 2^25). With `use_triton` and inputs it takes (`cauchy_triton.supported`), the fused
    Triton kernel runs instead.
    """
    A, R, H, N = left.shape[0], right.shape[0], lam.shape[0], lam.shape[-1]
    K = alpha.shape[-1]
    v = 2 * left.unsqueeze(1) * right.unsqueeze(0)  # (A, R, H, N)
    if use_triton and cauchy_triton.supported(v, lam, alpha, t):  # fused kernel: no (H, 2N, chunk) tensor
        return cauchy_triton.cauchy_fused(v.reshape(A * R, H, N), lam, alpha, t).reshape(A, R, H, K)
    v = torch.cat([v, v.conj()], dim=-1).reshape(A * R, H, 2 * N).transpose(0, 1)  # (H, A R, 2N)
    lam2 = torch.cat([lam, lam.conj()], dim=-1).unsqueeze(-1)  # (H, 2N, 1)
    chunk = chunk or max(1, max_elements // (H * 2 * N))
    out = []
    for start in range(0, K, chunk):
        den = alpha[:, None, start : start + chunk] - t[start : start + chunk] * lam2  # (H, 2N, k)
        out.append(torch.bmm(v, den.reciprocal()))  # (H, A R, k)
    s = out[0] if len(out) == 1 else torch.cat(out, dim=-1)
    return s.transpose(0, 1).reshape(A, R, H, K)


def cauchy_pairs_ref(left, right, lam, alpha, t):
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
