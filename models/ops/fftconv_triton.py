"""Fused Triton kernel for the frequency-space part of the FFT convolution's backward (`fftconv._FFTConv`).

With G = rFFT(dL/dy), U = rFFT(u) (B, H, F) and the kernel spectrum K (H, F):

    dU = G conj(K)   (B, H, F),        dK = sum_b G conj(U)   (H, F)

In PyTorch this is a broadcast product, a materialised conj(U) (conjugate views are resolved by copy
for the product), a (B, H, F) product and a reduction over the batch: four passes over (B, H, F)
complex tensors. Here one program per (feature, block of frequencies) loops over the batch (a
compile-time constant, as in `kb_conv_triton`: the interpreter takes no runtime loop bounds), reads G
and U once, writes dU and accumulates dK in registers: no atomics, deterministic. Complex tensors are
read as interleaved float32 pairs (torch.view_as_real), as in `kb_conv_triton`.

Runs where models/ops/_triton.py says (CUDA, or the CPU under Triton's interpreter).
"""

from __future__ import annotations

import torch

from models.ops._triton import INTERPRET, complex64_spectra, tl, triton  # noqa: F401 (INTERPRET: the tests read it)
BLOCK_F = 512


supported = complex64_spectra  # whether the kernels take these spectra (models/ops/_triton.py)


if triton is not None:

    @triton.jit
    def _conv_bwd(G, U, K, DU, DK, H, F, B: tl.constexpr, BLOCK: tl.constexpr):
        h = tl.program_id(0)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        m = offs < F
        q = 2 * (h * F + offs)  # interleaved (re, im) of (h, f)
        kr = tl.load(K + q, mask=m, other=0.0)
        ki = tl.load(K + q + 1, mask=m, other=0.0)
        acc_r = tl.zeros((BLOCK,), dtype=tl.float32)
        acc_i = tl.zeros((BLOCK,), dtype=tl.float32)
        for b in range(B):
            x = 2 * ((b * H + h) * F + offs)  # of (b, h, f)
            gr = tl.load(G + x, mask=m, other=0.0)
            gi = tl.load(G + x + 1, mask=m, other=0.0)
            ur = tl.load(U + x, mask=m, other=0.0)
            ui = tl.load(U + x + 1, mask=m, other=0.0)
            tl.store(DU + x, gr * kr + gi * ki, mask=m)  # G conj(K)
            tl.store(DU + x + 1, gi * kr - gr * ki, mask=m)
            acc_r += gr * ur + gi * ui  # G conj(U)
            acc_i += gi * ur - gr * ui
        tl.store(DK + q, acc_r, mask=m)
        tl.store(DK + q + 1, acc_i, mask=m)


def conv_backward(g_f: torch.Tensor, u_f: torch.Tensor, k_f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """dU = g_f conj(k_f) (B, H, F) and dK = sum_b g_f conj(u_f) (H, F), complex64, in one kernel."""
    B, H, F = u_f.shape
    g_f, u_f, k_f = g_f.contiguous(), u_f.contiguous(), k_f.contiguous()
    dU = torch.empty_like(u_f)
    dK = torch.empty_like(k_f)
    _conv_bwd[(H, triton.cdiv(F, BLOCK_F))](torch.view_as_real(g_f), torch.view_as_real(u_f),
                                            torch.view_as_real(k_f), torch.view_as_real(dU),
                                            torch.view_as_real(dK), H, F, B=B, BLOCK=BLOCK_F, num_warps=4)
    return dU, dK


def conv_backward_ref(g_f: torch.Tensor, u_f: torch.Tensor, k_f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch twin of `conv_backward`."""
    return g_f * k_f.conj(), (g_f * u_f.conj()).sum(0)
