"""Fused Triton kernels for the frequency-space products of the degree-2 KB convolution (`kb_conv`).

The FFTs stay in cuFFT; what these kernels fuse are the pointwise products between them, which in
PyTorch are a dozen passes over (B, H, L+1) complex tensors (each one a full read and write of
memory). With spectra U, W (B, H, F), kernel spectra k^, K2'^, Kl^ (H, F), mu (B, H), F = L + 1:

    forward    Y0 = U (k^ + mu Kl^) - W K2'^,      Y1 = U K2'^
    backward   dU = G0 conj(k^ + mu Kl^) + G1 conj(K2'^),      dW = -G0 conj(K2'^)
               dk^ = conj(sum_b T),  dKl^ = conj(sum_b mu T),  dK2'^ = sum_b (G1 conj(U) - G0 conj(W)),
               dmu_part = sum_f w_f Re(T Kl^) per block of f            (T = conj(G0) U)

The backward kernel runs one program per (feature, block of frequencies) and loops over the batch, so
the batch sums need no atomics (deterministic; the batch size is a compile-time constant); the dmu
partial sums per block are added in PyTorch.
Complex tensors are read as interleaved float32 pairs (torch.view_as_real).

Runs where models/ops/_triton.py says (CUDA, or the CPU under Triton's interpreter).
"""

from __future__ import annotations

import torch

from models.ops._triton import INTERPRET, complex64_spectra, tl, triton  # noqa: F401 (INTERPRET: the tests read it)
BLOCK_F = 512


supported = complex64_spectra  # whether the kernels take these spectra (models/ops/_triton.py)


if triton is not None:

    @triton.jit
    def _load(P, x, m):
        """(re, im) of the complex entries at interleaved offsets x (masked: 0)."""
        return tl.load(P + x, mask=m, other=0.0), tl.load(P + x + 1, mask=m, other=0.0)

    @triton.jit
    def _store(P, x, re, im, m):
        """Writes re, im to the complex entries at interleaved offsets x (masked)."""
        tl.store(P + x, re, mask=m)
        tl.store(P + x + 1, im, mask=m)

    @triton.jit
    def _kb2_fwd(U, W, K, D, LK, MU, Y0, Y1, H, F, BLOCK: tl.constexpr):
        bh = tl.program_id(0)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        m = offs < F
        x = 2 * (bh * F + offs)  # interleaved (re, im) of (b, h, f)
        q = 2 * ((bh % H) * F + offs)  # of (h, f)
        ur, ui = _load(U, x, m)
        wr, wi = _load(W, x, m)
        kr, ki = _load(K, q, m)
        dr, di = _load(D, q, m)
        lr, li = _load(LK, q, m)
        mu = tl.load(MU + bh)
        ar = kr + mu * lr  # A = k^ + mu Kl^
        ai = ki + mu * li
        _store(Y0, x, ur * ar - ui * ai - (wr * dr - wi * di),
               ur * ai + ui * ar - (wr * di + wi * dr), m)
        _store(Y1, x, ur * dr - ui * di, ur * di + ui * dr, m)

    @triton.jit
    def _kb2_bwd(G0, G1, U, W, K, D, LK, MU, DU, DW, DK, DL, DD, DMU, H, F, NFB, B: tl.constexpr,
                 BLOCK: tl.constexpr):
        h = tl.program_id(0)
        fb = tl.program_id(1)
        offs = fb * BLOCK + tl.arange(0, BLOCK)
        m = offs < F
        q = 2 * (h * F + offs)
        kr, ki = _load(K, q, m)
        dr, di = _load(D, q, m)
        lr, li = _load(LK, q, m)
        wgt = tl.where((offs == 0) | (offs == F - 1), 1.0, 2.0)  # Parseval weights of the half spectrum
        zero = tl.zeros((BLOCK,), dtype=tl.float32)
        akr, aki, alr, ali, adr, adi = zero, zero, zero, zero, zero, zero
        for b in range(B):
            bh = b * H + h
            x = 2 * (bh * F + offs)
            g0r, g0i = _load(G0, x, m)
            g1r, g1i = _load(G1, x, m)
            ur, ui = _load(U, x, m)
            wr, wi = _load(W, x, m)
            mu = tl.load(MU + bh)
            ar = kr + mu * lr
            ai = ki + mu * li
            _store(DU, x, g0r * ar + g0i * ai + g1r * dr + g1i * di,
                   g0i * ar - g0r * ai + g1i * dr - g1r * di, m)  # G0 conj(A) + G1 conj(D)
            _store(DW, x, -(g0r * dr + g0i * di), -(g0i * dr - g0r * di), m)  # -G0 conj(D)
            tr = g0r * ur + g0i * ui  # T = conj(G0) U
            ti = g0r * ui - g0i * ur
            akr += tr
            aki += ti
            alr += mu * tr
            ali += mu * ti
            adr += g1r * ur + g1i * ui - (g0r * wr + g0i * wi)  # G1 conj(U) - G0 conj(W)
            adi += g1i * ur - g1r * ui - (g0i * wr - g0r * wi)
            tl.store(DMU + bh * NFB + fb, tl.sum(wgt * (tr * lr - ti * li), axis=0))
        _store(DK, q, akr, -aki, m)  # conj(sum_b T)
        _store(DL, q, alr, -ali, m)  # conj(sum_b mu T)
        _store(DD, q, adr, adi, m)


def _r(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t.contiguous())


def spectra_forward(U, W, k_f, d_f, l_f, mu):
    """Y0, Y1 (B, H, F) complex64 from U, W (B, H, F), k^, K2'^, Kl^ (H, F), mu (B, H, 1)."""
    B, H, F = U.shape
    Y0, Y1 = torch.empty_like(U), torch.empty_like(U)
    _kb2_fwd[(B * H, triton.cdiv(F, BLOCK_F))](_r(U), _r(W), _r(k_f), _r(d_f), _r(l_f), mu.contiguous(),
                                               torch.view_as_real(Y0), torch.view_as_real(Y1), H, F,
                                               BLOCK=BLOCK_F, num_warps=4)
    return Y0, Y1


def spectra_backward(G0, G1, U, W, k_f, d_f, l_f, mu):
    """dU, dW (B, H, F), dk^, dKl^, dK2'^ (H, F) complex64 and dmu (B, H, 1) without the 1/n factor."""
    B, H, F = U.shape
    nfb = triton.cdiv(F, BLOCK_F)
    dU, dW = torch.empty_like(U), torch.empty_like(U)
    dk, dl, dd = (torch.empty_like(k_f) for _ in range(3))
    part = torch.empty(B, H, nfb, device=U.device, dtype=torch.float32)
    _kb2_bwd[(H, nfb)](_r(G0), _r(G1), _r(U), _r(W), _r(k_f), _r(d_f), _r(l_f), mu.contiguous(),
                       torch.view_as_real(dU), torch.view_as_real(dW), torch.view_as_real(dk),
                       torch.view_as_real(dl), torch.view_as_real(dd), part, H, F, nfb, B=B,
                       BLOCK=BLOCK_F, num_warps=4)
    return dU, dW, dk, dl, dd, part.sum(-1, keepdim=True)
