"""Fused Triton Cauchy sums for the S4 kernel, forward and backward, that never materialise (H, N, K).

    s[j, h, k] = sum_n  v[j, h, n] r1[h, n, k] + conj(v[j, h, n]) r2[h, n, k]
    r1 = 1 / (alpha[h, k] - t[k] lam[h, n]),      r2 = 1 / (alpha[h, k] - t[k] conj(lam[h, n]))

(the twin of `models.ops.cauchy.cauchy_pairs`, with v = 2 left right flattened over the (a, r)
pairs into j). Each program holds an (N, BLOCK_K) tile of reciprocals in registers.

Backward, for a real loss with G = dLoss/ds (PyTorch's convention for complex gradients: for
s(z), grad z = G conj(ds/dz) + conj(G) ds/dconj(z)); t are fixed nodes (no gradient):

    grad v[j, h, n]  = sum_k G[j] conj(r1) + conj(G[j]) r2
    grad lam[h, n]   = sum_k sum_j conj(v[j]) (G[j] conj(t r1^2) + conj(G[j]) t r2^2)
    grad alpha[h, k] = -sum_j G[j] conj(sum_n v[j] r1^2 + conj(v[j]) r2^2)

The sums over k run in SPLIT contiguous ranges per feature; partial sums are added in PyTorch.
Runs on CUDA tensors, or on CPU tensors under Triton's interpreter (TRITON_INTERPRET=1).
"""

from __future__ import annotations

import math

import torch

from models.ops._triton import INTERPRET, triton

if triton is not None:
    import triton.language as tl

MAX_N = 128


def supported(v: torch.Tensor, lam: torch.Tensor, alpha: torch.Tensor, t: torch.Tensor) -> bool:
    """Triton importable, complex64 inputs on CUDA (or the interpreter), at most MAX_N modes, fixed nodes t."""
    if triton is None or any(x.dtype != torch.complex64 for x in (v, lam, alpha, t)):
        return False
    if lam.shape[-1] > MAX_N or t.requires_grad:
        return False
    return all(x.is_cuda for x in (v, lam, alpha, t)) or INTERPRET


if triton is not None:

    @triton.jit
    def _recips(lr, li, ar_, ai, tr, ti):
        """r1, r2 tiles (BLOCK_N, BLOCK_K) as (re, im) from lam (BLOCK_N,), alpha and t (BLOCK_K,)."""
        # t lam and t conj(lam)
        a = tr[None, :] * lr[:, None]
        b = ti[None, :] * li[:, None]
        c = tr[None, :] * li[:, None]
        d = ti[None, :] * lr[:, None]
        d1r = ar_[None, :] - (a - b)
        d1i = ai[None, :] - (c + d)
        d2r = ar_[None, :] - (a + b)
        d2i = ai[None, :] - (d - c)
        s1 = 1.0 / (d1r * d1r + d1i * d1i)
        s2 = 1.0 / (d2r * d2r + d2i * d2i)
        return d1r * s1, -d1i * s1, d2r * s2, -d2i * s2

    @triton.jit
    def _load_nodes(alpha_ptr, t_ptr, h, offs_k, K):
        mk = offs_k < K
        ar_ = tl.load(alpha_ptr + (h * K + offs_k) * 2, mask=mk, other=1.0)
        ai = tl.load(alpha_ptr + (h * K + offs_k) * 2 + 1, mask=mk, other=0.0)
        tr = tl.load(t_ptr + offs_k * 2, mask=mk, other=0.0)
        ti = tl.load(t_ptr + offs_k * 2 + 1, mask=mk, other=0.0)
        return ar_, ai, tr, ti

    @triton.jit
    def _cauchy_fwd(v_ptr, lam_ptr, alpha_ptr, t_ptr, out_ptr, grad_ptr, galpha_ptr, H, N, K,
                    J: tl.constexpr, BACKWARD: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        # v (J, H, N, 2), lam (H, N, 2), alpha (H, K, 2), t (K, 2); out (J, H, K, 2).
        # BACKWARD: instead of out, galpha (H, K, 2) = -sum_j G conj(sum_n v r1^2 + conj(v) r2^2), G = grad (J, H, K, 2)
        h = tl.program_id(0)
        offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
        offs_n = tl.arange(0, BLOCK_N)
        mn = offs_n < N
        mk = offs_k < K
        lr = tl.load(lam_ptr + (h * N + offs_n) * 2, mask=mn, other=-1.0)  # -1 on padded modes: no 1/0
        li = tl.load(lam_ptr + (h * N + offs_n) * 2 + 1, mask=mn, other=0.0)
        ar_, ai, tr, ti = _load_nodes(alpha_ptr, t_ptr, h, offs_k, K)
        r1r, r1i, r2r, r2i = _recips(lr, li, ar_, ai, tr, ti)
        if BACKWARD:  # squares of the reciprocals
            r1r, r1i = r1r * r1r - r1i * r1i, 2.0 * r1r * r1i
            r2r, r2i = r2r * r2r - r2i * r2i, 2.0 * r2r * r2i
        gar = tl.zeros((BLOCK_K,), dtype=tl.float32)
        gai = tl.zeros((BLOCK_K,), dtype=tl.float32)
        for j in tl.static_range(J):
            base = ((j * H + h) * N + offs_n) * 2
            vr = tl.load(v_ptr + base, mask=mn, other=0.0)[:, None]  # 0 on padded modes
            vi = tl.load(v_ptr + base + 1, mask=mn, other=0.0)[:, None]
            # v r1 + conj(v) r2
            sr = tl.sum(vr * (r1r + r2r) - vi * (r1i - r2i), axis=0)
            si = tl.sum(vr * (r1i + r2i) + vi * (r1r - r2r), axis=0)
            o = ((j * H + h) * K + offs_k) * 2
            if BACKWARD:
                g_r = tl.load(grad_ptr + o, mask=mk, other=0.0)
                g_i = tl.load(grad_ptr + o + 1, mask=mk, other=0.0)
                gar -= g_r * sr + g_i * si  # -G conj(s)
                gai -= g_i * sr - g_r * si
            else:
                tl.store(out_ptr + o, sr, mask=mk)
                tl.store(out_ptr + o + 1, si, mask=mk)
        if BACKWARD:
            tl.store(galpha_ptr + (h * K + offs_k) * 2, gar, mask=mk)
            tl.store(galpha_ptr + (h * K + offs_k) * 2 + 1, gai, mask=mk)

    @triton.jit
    def _cauchy_bwd_v(lam_ptr, alpha_ptr, t_ptr, grad_ptr, part_ptr, H, N, K, K_PER: tl.constexpr,
                      BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        # part (SPLIT, J, H, N, 2): grad v[j] = sum_k G[j] conj(r1) + conj(G[j]) r2 over this k range
        h, sp, j = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        offs_n = tl.arange(0, BLOCK_N)
        mn = offs_n < N
        lr = tl.load(lam_ptr + (h * N + offs_n) * 2, mask=mn, other=-1.0)  # -1 on padded modes: no 1/0
        li = tl.load(lam_ptr + (h * N + offs_n) * 2 + 1, mask=mn, other=0.0)
        accr = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        acci = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        for off in range(0, K_PER, BLOCK_K):
            offs_k = sp * K_PER + off + tl.arange(0, BLOCK_K)
            mk = offs_k < K
            ar_, ai, tr, ti = _load_nodes(alpha_ptr, t_ptr, h, offs_k, K)
            r1r, r1i, r2r, r2i = _recips(lr, li, ar_, ai, tr, ti)
            o = ((j * H + h) * K + offs_k) * 2
            g_r = tl.load(grad_ptr + o, mask=mk, other=0.0)[None, :]
            g_i = tl.load(grad_ptr + o + 1, mask=mk, other=0.0)[None, :]
            accr += g_r * (r1r + r2r) + g_i * (r1i + r2i)
            acci += g_i * (r1r - r2r) + g_r * (r2i - r1i)
        pb = (((sp * tl.num_programs(2) + j) * H + h) * N + offs_n) * 2
        tl.store(part_ptr + pb, tl.sum(accr, axis=1), mask=mn)
        tl.store(part_ptr + pb + 1, tl.sum(acci, axis=1), mask=mn)

    @triton.jit
    def _cauchy_bwd_lam(v_ptr, lam_ptr, alpha_ptr, t_ptr, grad_ptr, part_ptr, H, N, K, K_PER: tl.constexpr,
                        J: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        # part (SPLIT, H, N, 2): grad lam = sum_k sum_j conj(v[j]) (G[j] conj(t r1^2) + conj(G[j]) t r2^2)
        h, sp = tl.program_id(0), tl.program_id(1)
        offs_n = tl.arange(0, BLOCK_N)
        mn = offs_n < N
        lr = tl.load(lam_ptr + (h * N + offs_n) * 2, mask=mn, other=-1.0)
        li = tl.load(lam_ptr + (h * N + offs_n) * 2 + 1, mask=mn, other=0.0)
        accr = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        acci = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        for off in range(0, K_PER, BLOCK_K):
            offs_k = sp * K_PER + off + tl.arange(0, BLOCK_K)
            mk = offs_k < K
            ar_, ai, tr, ti = _load_nodes(alpha_ptr, t_ptr, h, offs_k, K)
            r1r, r1i, r2r, r2i = _recips(lr, li, ar_, ai, tr, ti)
            q1r, q1i = r1r * r1r - r1i * r1i, 2.0 * r1r * r1i
            q2r, q2i = r2r * r2r - r2i * r2i, 2.0 * r2r * r2i
            q1r, q1i = tr[None, :] * q1r - ti[None, :] * q1i, tr[None, :] * q1i + ti[None, :] * q1r  # t r1^2
            q2r, q2i = tr[None, :] * q2r - ti[None, :] * q2i, tr[None, :] * q2i + ti[None, :] * q2r  # t r2^2
            for j in tl.static_range(J):
                o = ((j * H + h) * K + offs_k) * 2
                g_r = tl.load(grad_ptr + o, mask=mk, other=0.0)[None, :]
                g_i = tl.load(grad_ptr + o + 1, mask=mk, other=0.0)[None, :]
                base = ((j * H + h) * N + offs_n) * 2
                vr = tl.load(v_ptr + base, mask=mn, other=0.0)[:, None]
                vi = -tl.load(v_ptr + base + 1, mask=mn, other=0.0)[:, None]  # conj(v)
                er = g_r * (q1r + q2r) + g_i * (q1i + q2i)  # G conj(q1) + conj(G) q2
                ei = g_i * (q1r - q2r) + g_r * (q2i - q1i)
                accr += vr * er - vi * ei
                acci += vr * ei + vi * er
        pb = ((sp * H + h) * N + offs_n) * 2
        tl.store(part_ptr + pb, tl.sum(accr, axis=1), mask=mn)
        tl.store(part_ptr + pb + 1, tl.sum(acci, axis=1), mask=mn)


BLOCK_K = 32
BWD_PROGRAMS = 1024


def _block_n(N: int) -> int:
    return max(16, triton.next_power_of_2(N))


def _ri(x: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(x.contiguous())


class _Cauchy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, lam, alpha, t):
        J, H, N = v.shape
        K = alpha.shape[-1]
        out = torch.empty(J, H, K, 2, device=v.device, dtype=torch.float32)
        _cauchy_fwd[(H, triton.cdiv(K, BLOCK_K))](_ri(v), _ri(lam), _ri(alpha), _ri(t), out, out, out, H, N, K,
                                                  J=J, BACKWARD=False, BLOCK_N=_block_n(N), BLOCK_K=BLOCK_K)
        ctx.save_for_backward(v, lam, alpha, t)
        return torch.view_as_complex(out)

    @staticmethod
    def backward(ctx, g):
        v, lam, alpha, t = ctx.saved_tensors
        J, H, N = v.shape
        K = alpha.shape[-1]
        g = _ri(g.to(torch.complex64))
        grad_v = grad_lam = grad_alpha = None
        blocks = triton.cdiv(K, BLOCK_K)
        split = max(1, min(blocks, math.ceil(BWD_PROGRAMS / H)))
        per = triton.cdiv(blocks, split) * BLOCK_K
        split = triton.cdiv(K, per)
        meta = dict(K_PER=per, BLOCK_N=_block_n(N), BLOCK_K=BLOCK_K)
        if ctx.needs_input_grad[0]:
            part = torch.empty(split, J, H, N, 2, device=v.device, dtype=torch.float32)
            _cauchy_bwd_v[(H, split, J)](_ri(lam), _ri(alpha), _ri(t), g, part, H, N, K, **meta)
            grad_v = torch.view_as_complex(part.sum(0))  # (J, H, N)
        if ctx.needs_input_grad[1]:
            part = torch.empty(split, H, N, 2, device=v.device, dtype=torch.float32)
            _cauchy_bwd_lam[(H, split)](_ri(v), _ri(lam), _ri(alpha), _ri(t), g, part, H, N, K, J=J, **meta)
            grad_lam = torch.view_as_complex(part.sum(0))  # (H, N)
        if ctx.needs_input_grad[2]:
            ga = torch.empty(H, K, 2, device=v.device, dtype=torch.float32)
            _cauchy_fwd[(H, triton.cdiv(K, BLOCK_K))](_ri(v), _ri(lam), _ri(alpha), _ri(t), ga, g, ga, H, N, K,
                                                      J=J, BACKWARD=True, BLOCK_N=_block_n(N), BLOCK_K=BLOCK_K)
            grad_alpha = torch.view_as_complex(ga)
        return grad_v, grad_lam, grad_alpha, None


def cauchy_fused(v: torch.Tensor, lam: torch.Tensor, alpha: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v (J, H, N), lam (H, N), alpha (H, K), t (K,) complex64 -> s (J, H, K) complex64; see `supported`."""
    with torch.autocast(device_type=v.device.type, enabled=False):
        return _Cauchy.apply(v, lam, alpha, t)
