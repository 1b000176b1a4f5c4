"""Fused Triton Vandermonde kernel, forward and backward, that never materialises (H, N, L).

    K[c, h, l] = 2 Re sum_n v[c, h, n] z[h, n]^l,      z = exp(x),  l = 0 .. L-1

(the twin of `models.ops.vandermonde.vandermonde`, which holds (H, N, chunk) powers at a time).
Each program computes z^l = exp(Re x l) (cos phi + i sin phi), phi = Im x l, for a (N, BLOCK_L) tile
in registers and reduces over n. The phase is formed and reduced to [-pi, pi] in float64, so the fp32
sine and cosine see small arguments (Im x l reaches 1e5 rad at L = 16384).

Backward, for a real loss with g = dLoss/dK (C, H, L) and PyTorch's convention for complex gradients
(grad = dLoss/dRe + i dLoss/dIm):

    S0[c, h, n] = sum_l g[c, h, l] z^l,        S1[c, h, n] = sum_l g[c, h, l] l z^l
    grad v[c, h, n] = 2 conj(S0[c, h, n]),     grad x[h, n] = 2 conj(sum_c v[c, h, n] S1[c, h, n])

(K = 2 Re(v z^l) is the real part of a holomorphic function of v and of x, whose derivatives are z^l
and v l z^l.) The backward kernel reduces over l in SPLIT contiguous ranges per (c, h); the partial
sums (C, SPLIT, H, N, 4) are added in PyTorch.

Runs where models/ops/_triton.py says (CUDA, or the CPU under Triton's interpreter).
"""

from __future__ import annotations

import math

import torch

from models.ops._triton import INTERPRET, complex64_spectra, tl, triton  # noqa: F401 (INTERPRET: the tests read it)
MAX_N = 256  # modes per feature held in one tile


def supported(v: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether the Triton kernel can take these inputs: triton importable, complex64 on CUDA (or any
    device under the interpreter), at most MAX_N modes."""
    return x.shape[-1] <= MAX_N and v.dim() == 3 and x.dim() == 2 and complex64_spectra(v, x)


if triton is not None:

    @triton.jit
    def _powers(xr, xi, offs_l):
        """z^l for a tile: xr, xi (BLOCK_N,) fp32, offs_l (BLOCK_L,) int -> real, imag (BLOCK_N, BLOCK_L)."""
        ell = offs_l.to(tl.float32)
        mag = tl.exp(xr[:, None] * ell[None, :])
        ph = xi.to(tl.float64)[:, None] * offs_l.to(tl.float64)[None, :]  # exact for |l| < 2^24
        turns = tl.floor(ph * 0.15915494309189535 + 0.5)
        ph = (ph - turns * 6.283185307179586).to(tl.float32)  # in [-pi, pi]
        return mag * tl.cos(ph), mag * tl.sin(ph)

    @triton.jit
    def _vdm_fwd(v_ptr, x_ptr, out_ptr, H, N, L,
                 C: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
        # v (C, H, N, 2), x (H, N, 2) fp32 (real, imag); out (C, H, L)
        h = tl.program_id(0)
        offs_l = tl.program_id(1) * BLOCK_L + tl.arange(0, BLOCK_L)
        offs_n = tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        xr = tl.load(x_ptr + (h * N + offs_n) * 2, mask=mask_n, other=0.0)
        xi = tl.load(x_ptr + (h * N + offs_n) * 2 + 1, mask=mask_n, other=0.0)
        pr, pi = _powers(xr, xi, offs_l)
        for c in tl.static_range(C):
            base = ((c * H + h) * N + offs_n) * 2
            vr = tl.load(v_ptr + base, mask=mask_n, other=0.0)  # 0 on padded modes: no contribution
            vi = tl.load(v_ptr + base + 1, mask=mask_n, other=0.0)
            k = 2.0 * tl.sum(vr[:, None] * pr - vi[:, None] * pi, axis=0)
            tl.store(out_ptr + (c * H + h) * L + offs_l, k, mask=offs_l < L)

    @triton.jit
    def _vdm_bwd(g_ptr, x_ptr, part_ptr, H, N, L, L_PER: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
        # g (C, H, L); x (H, N, 2); part (C, SPLIT, H, N, 4): Re S0, Im S0, Re S1, Im S1 of this range
        h, sp, c = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        n_split = tl.num_programs(1)
        offs_n = tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        xr = tl.load(x_ptr + (h * N + offs_n) * 2, mask=mask_n, other=0.0)
        xi = tl.load(x_ptr + (h * N + offs_n) * 2 + 1, mask=mask_n, other=0.0)
        a0r = tl.zeros((BLOCK_N, BLOCK_L), dtype=tl.float32)
        a0i = tl.zeros((BLOCK_N, BLOCK_L), dtype=tl.float32)
        a1r = tl.zeros((BLOCK_N, BLOCK_L), dtype=tl.float32)
        a1i = tl.zeros((BLOCK_N, BLOCK_L), dtype=tl.float32)
        start = sp * L_PER
        for off in range(0, L_PER, BLOCK_L):
            offs_l = start + off + tl.arange(0, BLOCK_L)
            g = tl.load(g_ptr + (c * H + h) * L + offs_l, mask=offs_l < L, other=0.0)
            pr, pi = _powers(xr, xi, offs_l)
            gl = g * offs_l.to(tl.float32)
            a0r += g[None, :] * pr
            a0i += g[None, :] * pi
            a1r += gl[None, :] * pr
            a1i += gl[None, :] * pi
        base = (((c * n_split + sp) * H + h) * N + offs_n) * 4
        tl.store(part_ptr + base, tl.sum(a0r, axis=1), mask=mask_n)
        tl.store(part_ptr + base + 1, tl.sum(a0i, axis=1), mask=mask_n)
        tl.store(part_ptr + base + 2, tl.sum(a1r, axis=1), mask=mask_n)
        tl.store(part_ptr + base + 3, tl.sum(a1i, axis=1), mask=mask_n)


FWD_BLOCK_L = 64
BWD_BLOCK_L = 64
BWD_PROGRAMS = 2048  # aim for about this many backward programs (C H SPLIT), to fill the GPU


def _block_n(N: int) -> int:
    return max(16, triton.next_power_of_2(N))


def _forward(v: torch.Tensor, x: torch.Tensor, L: int) -> torch.Tensor:
    C, H, N = v.shape
    out = torch.empty(C, H, L, device=v.device, dtype=torch.float32)
    vr = torch.view_as_real(v.contiguous())  # (C, H, N, 2)
    xr = torch.view_as_real(x.contiguous())  # (H, N, 2)
    grid = (H, triton.cdiv(L, FWD_BLOCK_L))
    _vdm_fwd[grid](vr, xr, out, H, N, L, C=C, BLOCK_N=_block_n(N), BLOCK_L=FWD_BLOCK_L, num_warps=4)
    return out


def _backward_sums(g: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """S0, S1 (C, H, N) complex64 for g (C, H, L) real and x (H, N) complex."""
    C, H, L = g.shape
    N = x.shape[-1]
    blocks = triton.cdiv(L, BWD_BLOCK_L)
    split = max(1, min(blocks, math.ceil(BWD_PROGRAMS / (C * H))))
    per = triton.cdiv(blocks, split) * BWD_BLOCK_L
    split = triton.cdiv(L, per)
    part = torch.empty(C, split, H, N, 4, device=g.device, dtype=torch.float32)
    xr = torch.view_as_real(x.contiguous())
    _vdm_bwd[(H, split, C)](g.contiguous().float(), xr, part, H, N, L, L_PER=per,
                            BLOCK_N=_block_n(N), BLOCK_L=BWD_BLOCK_L, num_warps=4)
    s = part.sum(1)  # (C, H, N, 4)
    return torch.complex(s[..., 0], s[..., 1]), torch.complex(s[..., 2], s[..., 3])


class _Vandermonde(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v: torch.Tensor, x: torch.Tensor, L: int) -> torch.Tensor:
        ctx.save_for_backward(v, x)
        return _forward(v, x, L)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        v, x = ctx.saved_tensors
        need_v, need_x = ctx.needs_input_grad[:2]
        if not (need_v or need_x):
            return None, None, None
        S0, S1 = _backward_sums(g, x)
        grad_v = 2 * S0.conj() if need_v else None
        grad_x = 2 * (v * S1).sum(0).conj() if need_x else None
        return grad_v, grad_x, None


def vandermonde_fused(v: torch.Tensor, x: torch.Tensor, L: int) -> torch.Tensor:
    """Kernel (C, H, L) float32 from v (C, H, N) and x (H, N) complex64; see `supported`."""
    with torch.autocast(device_type=v.device.type, enabled=False):
        return _Vandermonde.apply(v, x, L)
