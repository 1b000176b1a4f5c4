"""Numerical checks of the fast paths against float64, shared by the tests and the GPU scripts.

Each check runs a fast path (fp32: fused FFT convolution, the fused KB degree-2 term, the Triton kernels)
and its plain PyTorch twin in fp32 and in float64 on the same inputs, and reports, per output and gradient,
(fast error, plain fp32 error), each max |diff| / max |float64 value|. A fast path is right when it adds no
error of its own beyond fp32 rounding: `within` for the layer, `triton_ok` for the kernels. The tests run
them on a CPU (tests/models/test_fast_paths.py; tests/models/test_triton_kernels.py under Triton's interpreter), the GPU
scripts (benchmarks/fast_path_check.py, benchmarks/triton_check.py) on the GPU, at full size.
"""

from __future__ import annotations

import copy
import inspect

import torch

TRITON_TOL = 1e-4  # a Triton kernel: relative to the largest float64 value of each tensor


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|, computed in b's precision."""
    return ((a.to(b.dtype) - b).abs().max() / b.abs().max().clamp(min=1e-30)).item()


def within(fast: float, plain: float) -> bool:
    """The fast path may be at most twice as far from float64 as the plain fp32 path, plus 5e-5 (a few
    hundred fp32 ulps: the two paths round differently, which matters where both errors are tiny)."""
    return fast <= 2 * plain + 5e-5


def triton_ok(triton: float, plain: float) -> bool:
    """A Triton kernel passes within TRITON_TOL of float64, or at most twice the fp32 PyTorch path's error."""
    return triton <= max(TRITON_TOL, 2 * plain)


def check_layer(ssm_class: type, B: int = 4, H: int = 32, L: int = 1024, device: str = "cuda") -> dict:
    """{tensor: (fast fp32 error, plain fp32 error)} of the SSM layer around `ssm_class` (d_state 64), each
    relative to the plain float64 layer: the output, the input gradient and every parameter gradient.

    A Liquid-S4 class is checked in `exact` mode, whose KB term the fused degree-2 path computes."""
    from models.block import SSMLayer

    torch.manual_seed(0)
    takes = inspect.signature(ssm_class).parameters
    kw = {"d_state": 64} | ({"l_max": L} if "l_max" in takes else {})
    kw |= {"liquid_mode": "exact"} if "liquid_mode" in takes else {}
    fast = SSMLayer(ssm_class(H, **kw)).to(device)
    plain = copy.deepcopy(fast)
    plain.ssm.fused = False
    exact = copy.deepcopy(plain).double()
    u = torch.randn(B, H, L, device=device) + 0.5  # a mean, as embeddings have
    g = torch.randn(B, H, L, device=device)
    results = []
    for layer in (fast, plain, exact):
        x = u.to(next(layer.parameters()).dtype).clone().requires_grad_()
        y = layer(x)
        (y * g.to(y.dtype)).sum().backward()
        results.append({"out": y, "grad u": x.grad} | {f"grad {n}": p.grad for n, p in layer.named_parameters()})
    return {name: (rel_err(results[0][name], t), rel_err(results[1][name], t)) for name, t in results[2].items()}


def kb2_long_error(L: int = 16384, H: int = 16, device: str = "cuda") -> float:
    """The fused KB degree-2 convolution in fp32 against float64 at a long length with inputs of mean 1 (the
    prefix sums' precision), relative to the largest float64 value."""
    from models.ops.kb_conv import conv_and_kb2

    torch.manual_seed(0)
    u = 1 + 0.3 * torch.randn(2, H, L, device=device, dtype=torch.float64)
    decay = torch.exp(-torch.arange(L, device=device) / 4000)
    k = torch.randn(H, L, device=device, dtype=torch.float64) * decay
    K2 = torch.randn(H, L, device=device, dtype=torch.float64) * decay
    return rel_err(conv_and_kb2(u.float(), k.float(), K2.float()), conv_and_kb2(u, k, K2))


# Triton kernels ----------------------------------------------------------------------------------


def vandermonde_inputs(kind: str, H: int, L: int, device: str):
    """(v (C, H, N), x (H, N)) complex64 from a fresh model: 's4d' (its kernel) or 'kb' (K_2, K_3)."""
    from models.liquid import LiquidS4
    from models.s4d import S4D

    torch.manual_seed(0)
    if kind == "s4d":
        m = S4D(H, 64).to(device)
        A_bar, B_bar = m.discretize()
        return (torch.view_as_complex(m.C) * B_bar).detach(), m.log_A_bar(A_bar, 1.0).detach()
    m = LiquidS4(H, 64, l_max=L, liquid_kernel="kb", liquid_degree=3, liquid_mode="exact").to(device)
    A_bar, B_bar, C = m.diagonal()
    p = torch.arange(2, 4, device=device).view(-1, 1, 1)
    return (C[0] * B_bar**p).detach(), torch.log(A_bar).detach()


def _run_vandermonde(fn, v, x, L, g):
    v = v.clone().requires_grad_()
    x = x.clone().requires_grad_()
    K = fn(v, x, L)
    (K * g.to(K.dtype)).sum().backward()
    return {"K": K.detach(), "grad v": v.grad, "grad x": x.grad}


def check_vandermonde(kind: str, H: int, L: int, device: str = "cuda") -> dict:
    """{tensor: (triton error, fp32 PyTorch error)} relative to float64 on the same inputs."""
    from models.ops.vandermonde import vandermonde
    from models.ops.vandermonde_triton import vandermonde_fused

    v, x = vandermonde_inputs(kind, H, L, device)
    g = torch.randn(v.shape[0], H, L, device=device)
    tri = _run_vandermonde(vandermonde_fused, v, x, L, g)
    plain = _run_vandermonde(vandermonde, v, x, L, g)
    exact = _run_vandermonde(vandermonde, v.to(torch.complex128), x.to(torch.complex128), L, g.double())
    return {k: (rel_err(tri[k], t), rel_err(plain[k], t)) for k, t in exact.items()}


def cauchy_inputs(H: int, L: int, device: str):
    """(left, right, lam, alpha, t) of a fresh S4 layer's kernel at length L, complex64."""
    from models.s4 import S4

    torch.manual_seed(0)
    m = S4(H, 64, l_max=L).to(device)
    dt, Lam, P, B, Ct = m.system()
    w, t = m.nodes(L, dt)
    alpha = (2 / dt).unsqueeze(-1) * (1 - w)
    left = torch.cat([Ct, P.conj().unsqueeze(0)], 0)
    return [x.detach() for x in (left, torch.stack([B, P], 0), Lam, alpha)] + [t]


def _run_cauchy(use_triton: bool, xs, t, g):
    from models.ops.cauchy import cauchy_pairs

    xs = [x.clone().requires_grad_() for x in xs]
    s = cauchy_pairs(*xs, t, use_triton=use_triton)
    (torch.view_as_real(s) * g.to(s.real.dtype)).sum().backward()
    return {"s": s.detach()} | {f"grad {n}": x.grad for n, x in zip(("left", "right", "lam", "alpha"), xs)}


def check_cauchy(H: int, L: int, device: str = "cuda") -> dict:
    """{tensor: (triton error, fp32 PyTorch error)} relative to float64 on the same inputs."""
    *xs, t = cauchy_inputs(H, L, device)
    g = torch.randn(2, 2, H, L // 2 + 1, 2, device=device)  # (channels + 1, 2, H, K, re/im)
    tri = _run_cauchy(True, xs, t, g)
    plain = _run_cauchy(False, xs, t, g)
    exact = _run_cauchy(False, [x.to(torch.complex128) for x in xs], t.to(torch.complex128), g.double())
    return {k: (rel_err(tri[k], v), rel_err(plain[k], v)) for k, v in exact.items()}


def check_kb_conv(B: int, H: int, L: int, device: str = "cuda") -> dict:
    """The fused KB degree-2 convolution with its Triton spectral products against float64: output and
    the gradients of u, k, K2, as (Triton error, fp32 PyTorch error) relative to the largest value."""
    from models.ops.kb_conv import conv_and_kb2

    torch.manual_seed(0)
    decay = torch.exp(-torch.arange(L, device=device, dtype=torch.float64) / (L / 4))
    u = 0.5 + torch.randn(B, H, L, device=device, dtype=torch.float64)
    k, K2 = (torch.randn(H, L, device=device, dtype=torch.float64) * decay for _ in range(2))
    g = torch.randn(B, H, L, device=device, dtype=torch.float64)
    results = []
    for dtype, use_triton in ((torch.float32, True), (torch.float32, False), (torch.float64, False)):
        xs = [t.to(dtype).clone().requires_grad_() for t in (u, k, K2)]
        y = conv_and_kb2(*xs, use_triton=use_triton)
        (y * g.to(dtype)).sum().backward()
        results.append([y.detach()] + [x.grad for x in xs])
    names = ["y", "grad u", "grad k", "grad K2"]
    return {n: (rel_err(a, c), rel_err(b, c)) for n, a, b, c in zip(names, *results)}
