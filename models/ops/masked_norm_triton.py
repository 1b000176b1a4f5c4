"""Fused Triton kernels of BatchNorm over the first L0 positions of a zero-padded batch (models/padding.py).

For x (B, H, L) float32 and the batch's true length L0, a device scalar (a CUDA graph reads a new one at each
replay), with n = B L0, v_l = [l < L0] and r = (var + eps)^(-1/2), one program per channel h:

    forward   mean = sum v x / n,   var = sum v (x - mean)^2 / n,   y = (w r (x - mean) + b) v
    backward  d = sum v g,   e = r sum v g (x - mean),   dx = w r (g - d / n) v - w r^2 (e / n) (x - mean) v

(models.padding._MaskedBatchNorm writes the same formulas with PyTorch operations, and is the twin the tests
compare with). Forward reads x three times and writes y once; backward reads x and g twice and writes dx once;
the channel sums need no atomics. B and L are compile-time constants (a graph's shape; Triton's interpreter
takes no runtime loop bounds). models.padding uses them by default (SUITE_TRITON_NORM=0 turns them off).

Runs where models/ops/_triton.py says (CUDA, or the CPU under Triton's interpreter).
"""

from __future__ import annotations

import torch

from models.ops._triton import runs_on, tl, triton


def supported(x: torch.Tensor, L0: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the kernels take these inputs: x (B, H, L) float32, one weight per channel, L0 one element on x's
    device, where a Triton kernel may run."""
    return (x.dim() == 3 and x.dtype == torch.float32 and weight.shape == (x.shape[1],) and L0.numel() == 1
            and L0.device == x.device and runs_on(x, weight))


def _block(L: int) -> int:
    return min(triton.next_power_of_2(L), 2048)


def _warps(L: int) -> int:
    """8 warps for long rows: one program streams a whole channel, so the loads in flight per program set the
    bandwidth (H programs, about one per SM at H = 128)."""
    return 8 if L >= 1024 else 4


if triton is not None:

    @triton.jit
    def _norm_fwd(X, Y, W, Bias, L0, MEAN, VAR, H, eps, B: tl.constexpr, L: tl.constexpr, BLOCK: tl.constexpr):
        h = tl.program_id(0)
        l0 = tl.load(L0)
        n = (B * l0).to(tl.float32)
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for b in range(B):
            for start in range(0, L, BLOCK):
                offs = start + tl.arange(0, BLOCK)
                acc += tl.load(X + (b * H + h) * L + offs, mask=offs < l0, other=0.0)
        mean = tl.sum(acc, 0) / n
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for b in range(B):
            for start in range(0, L, BLOCK):
                offs = start + tl.arange(0, BLOCK)
                x = tl.load(X + (b * H + h) * L + offs, mask=offs < l0, other=0.0)
                c = tl.where(offs < l0, x - mean, 0.0)
                acc += c * c
        var = tl.sum(acc, 0) / n
        scale = tl.load(W + h) / tl.sqrt(var + eps)
        shift = tl.load(Bias + h)
        for b in range(B):
            for start in range(0, L, BLOCK):
                offs = start + tl.arange(0, BLOCK)
                x = tl.load(X + (b * H + h) * L + offs, mask=offs < L, other=0.0)
                y = tl.where(offs < l0, (x - mean) * scale + shift, 0.0)
                tl.store(Y + (b * H + h) * L + offs, y, mask=offs < L)
        tl.store(MEAN + h, mean)
        tl.store(VAR + h, var)

    @triton.jit
    def _norm_bwd(X, G, DX, W, L0, MEAN, VAR, DW, DB, H, eps, B: tl.constexpr, L: tl.constexpr,
                  BLOCK: tl.constexpr):
        h = tl.program_id(0)
        l0 = tl.load(L0)
        n = (B * l0).to(tl.float32)
        mean = tl.load(MEAN + h)
        r = 1.0 / tl.sqrt(tl.load(VAR + h) + eps)
        w = tl.load(W + h)
        acc_d = tl.zeros([BLOCK], dtype=tl.float32)
        acc_e = tl.zeros([BLOCK], dtype=tl.float32)
        for b in range(B):
            for start in range(0, L, BLOCK):
                offs = start + tl.arange(0, BLOCK)
                x = tl.load(X + (b * H + h) * L + offs, mask=offs < l0, other=0.0)
                g = tl.load(G + (b * H + h) * L + offs, mask=offs < l0, other=0.0)
                acc_d += g
                acc_e += g * tl.where(offs < l0, x - mean, 0.0)
        d = tl.sum(acc_d, 0)
        e = tl.sum(acc_e, 0) * r
        for b in range(B):
            for start in range(0, L, BLOCK):
                offs = start + tl.arange(0, BLOCK)
                x = tl.load(X + (b * H + h) * L + offs, mask=offs < L, other=0.0)
                g = tl.load(G + (b * H + h) * L + offs, mask=offs < L, other=0.0)
                dx = w * r * (g - d / n) - w * r * r * (e / n) * (x - mean)
                tl.store(DX + (b * H + h) * L + offs, tl.where(offs < l0, dx, 0.0), mask=offs < L)
        tl.store(DW + h, e)
        tl.store(DB + h, d)


class MaskedBatchNorm(torch.autograd.Function):
    """(y, mean, var) = BatchNorm of x (B, H, L) over its first L0 positions, zero past them; mean and the biased
    var (H,) for the running statistics, without gradient."""

    @staticmethod
    def forward(ctx, x, L0, weight, bias, eps):
        B, H, L = x.shape
        x = x.contiguous()
        y = torch.empty_like(x)
        mean = torch.empty(H, device=x.device, dtype=torch.float32)
        var = torch.empty_like(mean)
        _norm_fwd[(H,)](x, y, weight, bias, L0, mean, var, H, eps, B=B, L=L, BLOCK=_block(L), num_warps=_warps(L))
        ctx.save_for_backward(x, L0, weight, mean, var)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, g, _mean, _var):
        x, L0, weight, mean, var = ctx.saved_tensors
        B, H, L = x.shape
        dx = torch.empty_like(x)
        dw, db = torch.empty_like(mean), torch.empty_like(mean)
        _norm_bwd[(H,)](x, g.contiguous(), dx, weight, L0, mean, var, dw, db, H, ctx.eps, B=B, L=L,
                        BLOCK=_block(L), num_warps=_warps(L))
        return dx, None, dw, db, None
