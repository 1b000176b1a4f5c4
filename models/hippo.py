"""HiPPO-LegS matrices and their normal-plus-low-rank diagonalisation (docs/models.md §2.1,
eqs. (5) to (7)).

LegS (Gu et al. 2020):  A_nk = -sqrt(2n+1) sqrt(2k+1) for n > k,  -(n+1) for n = k,  0 for n < k;
                        B_n  = sqrt(2n+1).
With P_n = sqrt(n + 1/2), A + P P^T = -I/2 + S where S is skew-symmetric, hence normal, so

    A = V (Lambda - P~ P~^*) V^*,   Lambda = -1/2 + i eig(-i S),   P~ = V^* P,   B~ = V^* B.

Eigenvalues come in conjugate pairs; we keep the N // 2 with negative imaginary part and double by
conjugation wherever a real kernel is formed.
"""

from __future__ import annotations

import math

import torch


def legs(N: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The LegS transition (N, N) and input (N,) matrices, float64."""
    q = torch.sqrt(2 * torch.arange(N, dtype=torch.float64) + 1)
    A = -torch.tril(q[:, None] * q[None, :], diagonal=-1) - torch.diag(torch.arange(N, dtype=torch.float64) + 1)
    return A, q.clone()


def legs_low_rank(N: int) -> torch.Tensor:
    """P with A + P P^T normal: P_n = sqrt(n + 1/2), shape (N,)."""
    return torch.sqrt(torch.arange(N, dtype=torch.float64) + 0.5)


def nplr_legs(N: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Diagonal-plus-low-rank form of LegS in the eigenbasis of its normal part.

    Returns Lambda (N//2,), P~ (N//2,), B~ (N//2,) complex128 and V (N, N//2) complex128, such that
    with the conjugate modes added back, A = V (diag(Lambda) - P~ P~^*) V^* and B = V B~.
    """
    A, B = legs(N)
    P = legs_low_rank(N)
    S = A + P[:, None] * P[None, :]  # = -I/2 + skew-symmetric
    S_skew = S + 0.5 * torch.eye(N, dtype=torch.float64)
    w, V = torch.linalg.eigh(-1j * S_skew.to(torch.complex128))  # Hermitian, w real ascending
    Lambda = -0.5 + 1j * w.to(torch.complex128)
    # Keep the N // 2 modes with negative imaginary part (w ascending: the first ones).
    half = N // 2
    Lambda, V = Lambda[:half], V[:, :half]
    V_star = V.conj().T
    P_t = V_star @ P.to(torch.complex128)
    B_t = V_star @ B.to(torch.complex128)
    return Lambda, P_t, B_t, V


def s4d_init(N: int, init: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonal A (N//2,) and B (N//2,) complex128 for the S4D initialisations (docs/models.md §3).

    legs: Lambda and B~ of the NPLR LegS form, low-rank term dropped (S4D-LegS).
    inv:  A_n = -1/2 + i (N/pi)(N/(2n+1) - 1), B_n = 1 (S4D-Inv).
    lin:  A_n = -1/2 + i pi n, B_n = 1 (S4D-Lin).
    """
    n = torch.arange(N // 2, dtype=torch.float64)
    if init == "legs":
        Lambda, _, B_t, _ = nplr_legs(N)
        return Lambda, B_t
    if init == "inv":
        imag = N / math.pi * (N / (2 * n + 1) - 1)
    elif init == "lin":
        imag = math.pi * n
    else:
        raise ValueError(f"unknown S4D init {init!r}; expected 'legs', 'inv' or 'lin'")
    A = torch.complex(torch.full_like(n, -0.5), imag)
    return A, torch.ones_like(A)
