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
layer benchmark of s4 and liquid_s4_kb (the Triton Cauchy kernel is the default, `model.backend: triton`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.checks import (TRITON_TOL as TOL, cauchy_inputs, check_cauchy, check_kb_conv,  # noqa: E402
                           check_vandermonde, triton_ok, vandermonde_inputs)


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
    from models.ops.vandermonde import vandermonde
    from models.ops.vandermonde_triton import vandermonde_fused

    v, x = vandermonde_inputs(kind, H, L, device)
    v.requires_grad_(), x.requires_grad_()
    out = {}
    for name, fn in (("triton", vandermonde_fused), ("torch", vandermonde)):
        out[f"{name} fwd"] = time_ms(lambda: fn(v.detach(), x.detach(), L))
        out[f"{name} fwd+bwd"] = time_ms(lambda: fn(v, x, L).sum().backward())
    return out


def time_cauchy(H: int, L: int) -> dict:
    from models.ops.cauchy import cauchy_pairs

    *xs, t = cauchy_inputs(H, L, "cuda")
    xs = [x.requires_grad_() for x in xs]
    out = {}
    for name, use in (("triton", True), ("torch", False)):
        out[f"{name} fwd"] = time_ms(lambda: cauchy_pairs(*[x.detach() for x in xs], t, use_triton=use))
        out[f"{name} fwd+bwd"] = time_ms(lambda: cauchy_pairs(*xs, t, use_triton=use).abs().sum().backward())
    return out


CAUCHY_CASES = [(128, 2048), (512, 1024), (256, 4096), (256, 16384)]
KB_CONV_CASES = [(50, 128, 2048), (16, 256, 4096)]


CASES = [("s4d", 128, 2048), ("s4d", 512, 1024), ("s4d", 256, 4096), ("s4d", 256, 16384),
         ("kb", 128, 2048), ("kb", 256, 4096), ("kb", 256, 16384)]


def main(timing: bool = True, device: str = "cuda") -> None:
    failures = []
    for kind, H, L in CASES:
        errs = check_vandermonde(kind, H, L, device)
        line = ", ".join(f"{k} {a:.2e} (torch fp32 {b:.2e})" for k, (a, b) in errs.items())
        print(f"triton check vandermonde {kind} H={H} L={L}: {line}")
        failures += [f"{kind} {H}x{L} {k}: {a:.2e}" for k, (a, b) in errs.items() if not triton_ok(a, b)]
        if timing and device == "cuda":
            t = time_vandermonde(kind, H, L, device)
            print(f"triton time  vandermonde {kind} H={H} L={L}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in t.items()))
    for H, L in CAUCHY_CASES:
        errs = check_cauchy(H, L, device)
        line = ", ".join(f"{k} {a:.2e} (torch fp32 {b:.2e})" for k, (a, b) in errs.items())
        print(f"triton check cauchy H={H} L={L}: {line}")
        failures += [f"cauchy {H}x{L} {k}: {a:.2e}" for k, (a, b) in errs.items() if not triton_ok(a, b)]
        if timing and device == "cuda":
            t = time_cauchy(H, L)
            print(f"triton time  cauchy H={H} L={L}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in t.items()))
    for B, H, L in KB_CONV_CASES:
        errs = check_kb_conv(B, H, L, device)
        line = ", ".join(f"{k} {a:.2e} (torch fp32 {b:.2e})" for k, (a, b) in errs.items())
        print(f"triton check kb_conv B={B} H={H} L={L}: {line}")
        failures += [f"kb_conv {B}x{H}x{L} {k}: {a:.2e}" for k, (a, b) in errs.items() if not triton_ok(a, b)]
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
        from suite.bench import run

        print("layer benchmark with the Triton Cauchy kernel (model.backend=triton, the default):")
        run(models=["s4", "liquid_s4_kb"], track=False)
