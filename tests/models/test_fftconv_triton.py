"""The Triton kernel of the FFT convolution's backward (models/ops/fftconv_triton.py) against its
PyTorch twin and float64.

On a CPU it runs under Triton's interpreter (TRITON_INTERPRET=1, in a subprocess: the variable must be
set before triton is imported). Tolerance: every output and gradient of the fp32 convolution with the
kernel within 1e-5 of float64 relative to the largest float64 value, and no more than twice the fp32
PyTorch path's error + 1e-7 (the kernel adds no error of its own).
"""

from __future__ import annotations

import pytest
import torch

from models.ops import fftconv_triton
from models.ops.fftconv import fft_conv
from tests.models.triton_interpreter import run_interpreted

CHECK = """
import json, torch
from models.ops import fftconv_triton
from models.ops.fftconv import fft_conv, fft_conv_autograd, two_sided

def grads(fn, u, k):
    u, k = u.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
    y = fn(u, k)
    (y * torch.cos(torch.arange(y.numel(), dtype=y.dtype)).reshape(y.shape)).sum().backward()
    return y.detach(), u.grad, k.grad

out = {}
for two in (False, True):
    torch.manual_seed(0)
    u, k = torch.randn(3, 5, 300), torch.randn(5, 300) / 10
    if two:
        k = two_sided(k, torch.randn(5, 300) / 10)
    ref = grads(fft_conv_autograd, u.double(), k.double())
    calls = []
    real = fftconv_triton.conv_backward
    fftconv_triton.conv_backward = lambda *a: calls.append(1) or real(*a)
    tri = grads(lambda u, k: fft_conv(u, k, use_triton=True), u, k)
    fftconv_triton.conv_backward = real
    plain = grads(lambda u, k: fft_conv(u, k, use_triton=False), u, k)
    err = lambda a, r: float((a.double() - r).abs().max() / r.abs().max())
    out[f"two_sided={two}"] = {"calls": len(calls), **{name: [err(t, r), err(p, r)]
                               for name, t, p, r in zip(("y", "grad u", "grad k"), tri, plain, ref)}}
print(json.dumps(out))
"""


@pytest.mark.skipif(fftconv_triton.triton is None, reason="triton is not installed")
def test_backward_kernel_matches_float64_under_the_interpreter():
    results = run_interpreted(CHECK)
    for case, errs in results.items():
        assert errs.pop("calls") == 1, case  # the backward did run the kernel
        for tensor, (tri, plain) in errs.items():
            assert tri <= 1e-5 and tri <= 2 * plain + 1e-7, (case, tensor, tri, plain)


def test_cpu_tensors_take_the_pytorch_path():
    u, k = torch.randn(2, 3, 16), torch.randn(3, 16)
    if not fftconv_triton.INTERPRET:
        assert not fftconv_triton.supported(torch.fft.rfft(u), torch.fft.rfft(k))
    assert not fftconv_triton.supported(torch.fft.rfft(u.double()))  # complex128 stays on PyTorch
    torch.testing.assert_close(fft_conv(u, k, use_triton=True), fft_conv(u, k, use_triton=False), rtol=0, atol=0)
