"""The fused Triton kernels (Vandermonde of S4D and the KB liquid kernels, Cauchy sums of S4, the
spectral products of the KB degree-2 convolution): when the models dispatch to them, and that their outputs and gradients match float64.

On a CPU the kernels run under Triton's interpreter (TRITON_INTERPRET=1, in a subprocess, since the
variable must be set before triton is imported); benchmarks/triton_check.py runs the same checks (models/checks.py)
compiled on the GPU. Tolerance, as there: the Triton error relative to the largest float64 value is
at most 1e-4 or at most twice the fp32 PyTorch path's.
"""

from __future__ import annotations

import pytest
import torch

from models.checks import triton_ok
from models.ops import cauchy_triton, vandermonde_triton
from models.ops.cauchy import cauchy_pairs
from models.ops.vandermonde import vandermonde
from models.liquid import LiquidS4
from models.s4 import S4
from models.s4d import S4D
from tests.models.triton_interpreter import run_interpreted

needs_triton = pytest.mark.skipif(vandermonde_triton.triton is None, reason="triton is not installed")


def test_cpu_tensors_take_the_pytorch_path_even_when_triton_is_asked_for():
    torch.manual_seed(0)
    v = torch.randn(2, 3, 4, dtype=torch.complex64)
    x = torch.complex(-torch.rand(3, 4), torch.randn(3, 4))
    if not vandermonde_triton.INTERPRET:
        assert not vandermonde_triton.supported(v, x)
    assert torch.equal(vandermonde(v, x, 50, use_triton=True), vandermonde(v, x, 50))


def test_unsupported_inputs_are_refused():
    x = torch.zeros(3, 4, dtype=torch.complex128)
    assert not vandermonde_triton.supported(x.unsqueeze(0), x)  # float64 stays on the PyTorch path
    big = torch.zeros(3, vandermonde_triton.MAX_N + 1, dtype=torch.complex64)
    assert not vandermonde_triton.supported(big.unsqueeze(0), big)
    t = torch.zeros(5, dtype=torch.complex64, requires_grad=True)  # trainable nodes: no gradient there
    lam = torch.zeros(3, 4, dtype=torch.complex64)
    assert not cauchy_triton.supported(lam.unsqueeze(0), lam, torch.zeros(3, 5, dtype=torch.complex64), t)


class _Spy:
    """Stands in for a fused kernel: records the call, returns the PyTorch twin's result."""

    def __init__(self, twin):
        self.calls, self.twin = 0, twin

    def __call__(self, *args):
        self.calls += 1
        return self.twin(*args)


@pytest.fixture
def fake_gpu(monkeypatch):
    """Every input counts as supported; the fused kernels are spies around the PyTorch paths."""
    vdm = _Spy(lambda v, x, L: vandermonde(v, x, L))
    cau = _Spy(lambda v, lam, alpha, t: cauchy_pairs(v / 2, torch.ones_like(v[:1]), lam, alpha, t)[:, 0])
    monkeypatch.setattr(vandermonde_triton, "supported", lambda *a: True)
    monkeypatch.setattr(vandermonde_triton, "vandermonde_fused", vdm)
    monkeypatch.setattr(cauchy_triton, "supported", lambda *a: True)
    monkeypatch.setattr(cauchy_triton, "cauchy_fused", cau)
    return vdm, cau


def _seeded(cls, *args, **kw):
    torch.manual_seed(0)
    return cls(*args, **kw)


def test_s4d_kernel_dispatches_on_the_triton_backend_only(fake_gpu):
    vdm, _ = fake_gpu
    k = _seeded(S4D, 4, 8).kernel(32)  # backend "triton", the default
    assert vdm.calls == 1
    torch.testing.assert_close(_seeded(S4D, 4, 8, backend="plain").kernel(32), k)
    _seeded(S4D, 4, 8, backend="torch").kernel(32)
    assert vdm.calls == 1
    with pytest.raises(ValueError, match="unknown backend 'cuda'; expected one of triton, torch, plain"):
        S4D(4, 8, backend="cuda")


def test_kb_liquid_kernels_and_s4_cauchy_dispatch_on_the_triton_backend_only(fake_gpu):
    vdm, cau = fake_gpu
    u = torch.randn(2, 4, 32)
    kw = {"l_max": 32, "liquid_kernel": "kb", "liquid_mode": "exact"}
    y = _seeded(LiquidS4, 4, 8, backend="torch", **kw)(u)
    assert (vdm.calls, cau.calls) == (0, 0)  # PyTorch Vandermonde and Cauchy sums
    torch.testing.assert_close(_seeded(LiquidS4, 4, 8, **kw)(u), y)  # the spies' results, reassembled
    assert (vdm.calls, cau.calls) == (1, 1)
    _seeded(S4, 4, 8, l_max=32, backend="torch").kernel(32)
    assert cau.calls == 1


INTERPRETED_CHECK = """
import json
from models.checks import check_cauchy, check_kb_conv, check_vandermonde
out = {"vandermonde s4d": check_vandermonde("s4d", 3, 128, "cpu"),
       "vandermonde kb": check_vandermonde("kb", 3, 128, "cpu"),
       "cauchy": check_cauchy(4, 64, "cpu"),
       "kb_conv spectra": check_kb_conv(3, 2, 700, "cpu")}
print(json.dumps(out))
"""


@needs_triton
def test_triton_kernels_match_float64_under_the_interpreter():
    results = run_interpreted(INTERPRETED_CHECK)
    for kernel, errs in results.items():
        for tensor, (tri, plain) in errs.items():
            assert triton_ok(tri, plain), (kernel, tensor, tri, plain)
    # the Vandermonde kernel reduces the phase in float64: far closer to float64 than the fp32 twin
    assert results["vandermonde s4d"]["K"][0] < 1e-6
