"""One Triton kernel that writes the KB tap map of a zero-padded batch (models/liquid_reference.py `kb_tap_map_ref`,
its PyTorch twin, which the tests compare it with; the formula in docs/liquid.md, "Padded batches").

For the batch's true length L0 (a device scalar: a CUDA graph reads a new one at each replay) and a padded length
L, G (2L, L + 1) float64 with, for the 2L-grid tap j and the kernel tap n,

    d = j (j < L0),  2 L0 - (2L - j) (0 < 2L - j < L0),  else the row is zero;  q = d (L0 + 1) - 2 n L0
    G[j, n] = (sin((2 L0 - 1) pi q / 2P) / sin(pi q / 2P) + cos(pi q / (L0 + 1))) / (2 L0),   P = L0 (L0 + 1)

(2 L0 - 1 in place of the ratio where q = 0 mod 2P; zero for n > L0). Every sine's argument is reduced exactly in
integers to [-pi/2, pi/2] before the float64 step (`_sin_pi`), so that the ratio keeps its relative precision where
both sines vanish. One pass that writes 2L (L + 1) float64 (67 MB at L = 2048), against some forty passes of the
PyTorch twin over int64 and float64 tables of that size.

Runs where models/ops/_triton.py says (CUDA, or the CPU under Triton's interpreter).
"""

from __future__ import annotations

import torch

from models.ops._triton import INTERPRET, runs_on, tl, triton

BLOCK_N, NUM_WARPS = 256, 4  # two float64 entries per thread
MAX_L = 16384  # int32 phases: the largest intermediate, r + N / 2 < 5 L0 (L0 + 1) in _sin_pi, stays < 2^31
PI = tl.constexpr(3.141592653589793) if tl is not None else None


def supported(L0: torch.Tensor, L: int) -> bool:
    """Whether the kernel takes this length: one integer element, a padded length L <= MAX_L, where a Triton
    kernel may run."""
    return (L0.numel() == 1 and not L0.is_floating_point() and not L0.is_complex() and L <= MAX_L
            and runs_on(L0))


if triton is not None:
    from triton.language.extra import libdevice

    if INTERPRET:  # the interpreter has no libdevice; its tl.sin and tl.cos are numpy's, float64 in float64

        @triton.jit
        def _sin(x):
            return tl.sin(x)

        @triton.jit
        def _cos(x):
            return tl.cos(x)

    else:  # libdevice's float64 sine and cosine (tl.sin and tl.cos may lower to approximations)

        @triton.jit
        def _sin(x):
            return libdevice.sin(x)

        @triton.jit
        def _cos(x):
            return libdevice.cos(x)

    @triton.jit
    def _floor_mod(r, m):
        """r mod m in [0, m) for m > 0 (Triton's % keeps the dividend's sign, as C)."""
        r = r % m
        return tl.where(r < 0, r + m, r)

    @triton.jit
    def _sin_pi(r, N):
        """sin(pi r / N) for integers r and even N > 0, r reduced to s in [-N/2, N/2] first: sin(pi r / N) =
        (-1)^k sin(pi s / N) with r = k N + s."""
        r = _floor_mod(r, 2 * N)
        k = (r + N // 2) // N  # round(r / N) in {0, 1, 2} for even N; operands >= 0, so // is the floor
        s = r - k * N
        sign = 1.0 - 2.0 * (k % 2).to(tl.float64)
        return sign * _sin(PI * s.to(tl.float64) / N.to(tl.float64))

    @triton.jit
    def _kb_taps(G, L0_ptr, L, BLOCK_N: tl.constexpr):
        """One program per row j of G and block of BLOCK_N columns n: the row's quantities are scalars, the
        columns' vectors (a few float64 values per thread: no register spills)."""
        L0 = tl.load(L0_ptr).to(tl.int32)
        j = tl.program_id(0)  # int32: every intermediate below is < 2^31 for L <= MAX_L
        n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
        e = 2 * L - j
        d = tl.where(j < L0, j, 2 * L0 - e)
        keep_row = (j < L0) | ((e >= 1) & (e < L0))
        P = L0 * (L0 + 1)
        q = d * (L0 + 1) - 2 * n * L0  # theta = pi q / P
        half = _sin_pi(q, 2 * P)  # sin(theta / 2), reduced exactly: it divides
        a = PI * d.to(tl.float64) / (2 * L0).to(tl.float64)  # theta / 2 = a - b
        b = PI * n.to(tl.float64) / (L0 + 1).to(tl.float64)
        cos_half = _cos(a) * _cos(b) + _sin(a) * _sin(b)
        parity = 1.0 - 2.0 * _floor_mod(d, 2).to(tl.float64)  # L0 theta = pi d + 2 b
        cos_L0 = parity * _cos(2.0 * b)
        sin_L0 = parity * _sin(2.0 * b)
        num = sin_L0 * cos_half - cos_L0 * half  # sin((L0 - 1/2) theta)
        at_zero = _floor_mod(q, 2 * P) == 0
        ratio = tl.where(at_zero, (2 * L0 - 1).to(tl.float64), num / tl.where(at_zero, 1.0, half))
        g = (ratio + cos_L0) / (2 * L0).to(tl.float64)
        g = tl.where(keep_row & (n <= L0), g, 0.0)
        tl.store(G + j.to(tl.int64) * (L + 1) + n, g, mask=n <= L)


def kb_tap_map(L0: torch.Tensor, L: int, block_n: int = BLOCK_N, num_warps: int = NUM_WARPS) -> torch.Tensor:
    """G (2L, L + 1) float64 on L0's device (see the module's docstring); L0 a 0-dim or 1-element integer tensor,
    L <= MAX_L. `block_n`, `num_warps`: the launch configuration (benchmarks/kb_taps_bench.py compares some)."""
    G = torch.empty(2 * L, L + 1, dtype=torch.float64, device=L0.device)
    grid = (2 * L, triton.cdiv(L + 1, block_n))
    _kb_taps[grid](G, L0.reshape(1), L, BLOCK_N=block_n, num_warps=num_warps)
    return G
