"""Triton kernel-generation kernels against float64, and their speed against the PyTorch twins.

    PYTHONPATH=$PWD python3 benchmarks/triton_check.py [--no-time] [--bench-cauchy]

For each kernel (Vandermonde of S4D, of the KB liquid kernels at degrees 2..3; the Cauchy sums of
S4) at the benchmark sizes, with the coefficients of a freshly initialised model: the fp32 Triton
output and the gradients of its complex inputs against the float64 PyTorch path on the same
(fp32-rounded) inputs, as
max |diff| / max |float64 value|, beside the same error of the fp32 PyTorch path. Passes when the
Triton error is at most TOL (absolute, relative to the largest value) or at most twice the fp32
PyTorch path's error. Then times forward and forward+backward of both paths (CUDA events, median
of 20). Prints one line per case; raises on a failure. `--bench-cauchy`: after the checks pass, the
layer benchmark of s4 and liquid_s4_kb with the Triton Cauchy kernel switched on (`S4.triton_cauchy`,
off by default until this has passed on a GPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOL = 1e-4  # relative to the largest float64 value of each tensor


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.to(b.dtype) - b).abs().max() / b.abs().max().clamp(min=1e-30)).item()


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


def _run(fn, v, x, L, g):
    v = v.clone().requires_grad_()
    x = x.clone().requires_grad_()
    K = fn(v, x, L)
    (K * g.to(K.dtype)).sum().backward()
    return {"K": K.detach(), "grad v": v.grad, "grad x": x.grad}


def check_vandermonde(kind: str, H: int, L: int, device: str = "cuda") -> dict:
    """{tensor: (triton error, fp32 PyTorch error)} relative to float64 on the same inputs."""
    from models.kernels.vandermonde import vandermonde
    from models.kernels.vandermonde_triton import vandermonde_fused

    v, x = vandermonde_inputs(kind, H, L, device)
    g = torch.randn(v.shape[0], H, L, device=device)
    tri = _run(vandermonde_fused, v, x, L, g)
    plain = _run(vandermonde, v, x, L, g)
    exact = _run(vandermonde, v.to(torch.complex128), x.to(torch.complex128), L, g.double())
    return {k: (rel_err(tri[k], t), rel_err(plain[k], t)) for k, t in exact.items()}


def time_ms(fn, repeats: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def time_vandermonde(kind: str, H: int, L: int, device: str = "cuda") -> dict:
    from models.kernels.vandermonde import vandermonde
    from models.kernels.vandermonde_triton import vandermonde_fused

    v, x = vandermonde_inputs(kind, H, L, device)
    v.requires_grad_(), x.requires_grad_()
    out = {}
    for name, fn in (("triton", vandermonde_fused), ("torch", vandermonde)):
        out[f"{name} fwd"] = time_ms(lambda: fn(v.detach(), x.detach(), L))
        out[f"{name} fwd+bwd"] = time_ms(lambda: fn(v, x, L).sum().backward())
    return out


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
    from models.kernels.cauchy import cauchy_pairs

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


def time_cauchy(H: int, L: int) -> dict:
    from models.kernels.cauchy import cauchy_pairs

    *xs, t = cauchy_inputs(H, L, "cuda")
    xs = [x.requires_grad_() for x in xs]
    out = {}
    for name, use in (("triton", True), ("torch", False)):
        out[f"{name} fwd"] = time_ms(lambda: cauchy_pairs(*[x.detach() for x in xs], t, use_triton=use))
        out[f"{name} fwd+bwd"] = time_ms(lambda: cauchy_pairs(*xs, t, use_triton=use).abs().sum().backward())
    return out


CAUCHY_CASES = [(128, 2048), (512, 1024), (256, 4096), (256, 16384)]
def check_kb_conv(B: int, H: int, L: int, device: str = "cuda") -> dict:
    """The fused KB degree-2 convolution with its Triton spectral products against float64: output and
    the gradients of u, k, K2, as (Triton error, fp32 PyTorch error) relative to the largest value."""
    from models.kernels.kb_conv import conv_and_kb2

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


KB_CONV_CASES = [(50, 128, 2048), (16, 256, 4096)]


CASES = [("s4d", 128, 2048), ("s4d", 512, 1024), ("s4d", 256, 4096), ("s4d", 256, 16384),
         ("kb", 128, 2048), ("kb", 256, 4096), ("kb", 256, 16384)]


def main(timing: bool = True, device: str = "cuda") -> None:
    failures = []
    for kind, H, L in CASES:
        errs = check_vandermonde(kind, H, L, device)
        line = ", ".join(f"{k} {a:.2e} (torch fp32 {b:.2e})" for k, (a, b) in errs.items())
        print(f"triton check vandermonde {kind} H={H} L={L}: {line}")
        failures += [f"{kind} {H}x{L} {k}: {a:.2e}" for k, (a, b) in errs.items() if a > max(TOL, 2 * b)]
        if timing and device == "cuda":
            t = time_vandermonde(kind, H, L, device)
            print(f"triton time  vandermonde {kind} H={H} L={L}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in t.items()))
    for H, L in CAUCHY_CASES:
        errs = check_cauchy(H, L, device)
        line = ", ".join(f"{k} {a:.2e} (torch fp32 {b:.2e})" for k, (a, b) in errs.items())
        print(f"triton check cauchy H={H} L={L}: {line}")
        failures += [f"cauchy {H}x{L} {k}: {a:.2e}" for k, (a, b) in errs.items() if a > max(TOL, 2 * b)]
        if timing and device == "cuda":
            t = time_cauchy(H, L)
            print(f"triton time  cauchy H={H} L={L}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in t.items()))
    for B, H, L in KB_CONV_CASES:
        errs = check_kb_conv(B, H, L, device)
        line = ", ".join(f"{k} {a:.2e} (torch fp32 {b:.2e})" for k, (a, b) in errs.items())
        print(f"triton check kb_conv B={B} H={H} L={L}: {line}")
        failures += [f"kb_conv {B}x{H}x{L} {k}: {a:.2e}" for k, (a, b) in errs.items() if a > max(TOL, 2 * b)]
    if failures:
        raise AssertionError("triton kernels off: " + "; ".join(failures))
    print(f"triton check: all within tolerance ({TOL:.0e} or twice the fp32 PyTorch path)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-time", action="store_true")
    ap.add_argument("--bench-cauchy", action="store_true")
    args = ap.parse_args()
    main(timing=not args.no_time)
    if args.bench_cauchy:
        from models.s4 import S4
        from suite.bench import run

        S4.triton_cauchy = True
        print("layer benchmark with the Triton Cauchy kernel on (S4.triton_cauchy = True):")
        run(models=["s4", "liquid_s4_kb"], track=False)
