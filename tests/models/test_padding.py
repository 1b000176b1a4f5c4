"""models/padding.py: BatchNorm over the first L0 positions of a zero-padded batch, the fast op against its plain
twin and against BatchNorm on the unpadded batch (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.padding import batch_norm_first, batch_norm_first_ref
from tests.models.triton_interpreter import run_interpreted


def _bn(affine: bool, momentum: float | None = 0.1, channels: int = 5) -> nn.BatchNorm1d:
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(channels, affine=affine, momentum=momentum).double().train()
    if affine:
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return bn


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_masked_batch_norm_is_its_plain_twin_in_output_gradients_and_running_statistics(affine, momentum):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 40, generator=g, dtype=torch.float64) * 2 + 1
    L0 = torch.tensor(29)
    up = torch.randn(3, 5, 40, generator=g, dtype=torch.float64)
    results = []
    for fn in (batch_norm_first, batch_norm_first_ref):
        bn, xi = _bn(affine, momentum), x.clone().requires_grad_()
        for _ in range(2):  # the running statistics after two batches (num_batches_tracked, cumulative average)
            y = fn(xi, bn, L0)
        (y * up).sum().backward()
        grads = [xi.grad] + ([bn.weight.grad, bn.bias.grad] if affine else [])
        results.append([y.detach(), *grads, bn.running_mean, bn.running_var, bn.num_batches_tracked])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_masked_batch_norm_is_batch_norm_on_the_unpadded_batch_zero_extended():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 5, 23, generator=g, dtype=torch.float64)
    padded = torch.cat([x, torch.randn(4, 5, 9, generator=g, dtype=torch.float64)], -1)  # junk past L0
    bn_a, bn_b = _bn(True), _bn(True)
    xa, xb = x.clone().requires_grad_(), padded.clone().requires_grad_()
    ya, yb = bn_a(xa), batch_norm_first(xb, bn_b, torch.tensor(23))
    torch.testing.assert_close(yb[..., :23], ya)
    assert not yb[..., 23:].any()
    up = torch.randn_like(ya)
    (ya * up).sum().backward()
    (yb[..., :23] * up).sum().backward()
    torch.testing.assert_close(xb.grad[..., :23], xa.grad)
    assert not xb.grad[..., 23:].any()
    for p, q in zip(bn_a.parameters(), bn_b.parameters()):
        torch.testing.assert_close(q.grad, p.grad)
    torch.testing.assert_close(bn_b.running_mean, bn_a.running_mean)
    torch.testing.assert_close(bn_b.running_var, bn_a.running_var)


def test_masked_batch_norm_passes_gradcheck():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 11, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, generator=g, dtype=torch.float64).add(0.5).requires_grad_()
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    from models.padding import _MaskedBatchNorm

    valid = (torch.arange(11) < 7).double()
    n = torch.tensor(14.0, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, w, b: _MaskedBatchNorm.apply(x, valid, n, w, b, 1e-5)[0], (x, w, b))


TRITON_CHECK = """
import json, torch
from torch import nn
from models import padding
from models.padding import batch_norm_first, batch_norm_first_ref
from models.ops import masked_norm_triton

padding.TRITON_NORM = True
out = {}
for B, L, L0, affine in ((3, 40, 29, True), (2, 300, 300, True), (4, 37, 5, False)):
    torch.manual_seed(0)
    x = torch.randn(B, 6, L) * 2 + 1
    up = torch.randn(B, 6, L)
    res = []
    for fn in (batch_norm_first, batch_norm_first_ref):
        torch.manual_seed(1)  # the same weights for both
        bn = nn.BatchNorm1d(6, affine=affine).train()
        if affine:
            with torch.no_grad():
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)
        xi = x.clone().requires_grad_()
        y = fn(xi, bn, torch.tensor(L0))
        (y * up).sum().backward()
        res.append([y.detach(), xi.grad] + ([bn.weight.grad, bn.bias.grad] if affine else [])
                   + [bn.running_mean, bn.running_var])
    err = [float((a - b).abs().max() / b.abs().max().clamp(min=1e-12)) for a, b in zip(*res)]
    supported = masked_norm_triton.supported(x, torch.tensor(L0), torch.ones(6))
    out[f"{B}x{L}/{L0}"] = {"supported": supported, "err": max(err)}
print(json.dumps(out))
"""


@pytest.mark.skipif(__import__("models.ops._triton", fromlist=["triton"]).triton is None,
                    reason="triton is not installed")
def test_the_triton_kernels_are_the_masked_batch_norm_under_the_interpreter():
    """models/ops/masked_norm_triton.py against the plain twin in float32 (output, input and parameter gradients,
    running statistics): within 1e-5 of the largest value, batch lengths shorter than, equal to and far below L."""
    for case, got in run_interpreted(TRITON_CHECK, timeout=600).items():
        assert got["supported"], case
        assert got["err"] < 1e-5, (case, got)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("L,L0", [(2048, 1800), (768, 768), (512, 3)])
def test_the_triton_kernels_are_the_masked_batch_norm_on_the_gpu(L, L0, monkeypatch):
    """At the ListOps network's sizes (12 x 128 x L), float32: output, gradients and running statistics within
    1e-5 of the largest value of the PyTorch formulas."""
    from models import padding
    from models.ops import _triton

    if _triton.triton is None:
        pytest.skip("triton is not installed")
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(12, 128, L, device="cuda", generator=g) * 2 + 1
    up = torch.randn(12, 128, L, device="cuda", generator=g)
    results = []
    for fused in (True, False):
        monkeypatch.setattr(padding, "TRITON_NORM", fused)
        torch.manual_seed(0)
        bn = _bn(True, channels=128).float().cuda()
        xi = x.clone().requires_grad_()
        y = batch_norm_first(xi, bn, torch.tensor(L0, device="cuda"))
        (y * up).sum().backward()
        results.append([y.detach(), xi.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var])
    for a, b in zip(*results):
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-5


@pytest.mark.parametrize("backend,fused", [("triton", True), ("torch", False), ("plain", False)])
def test_the_norms_follow_the_ssms_backend(backend, fused):
    """`model.backend` torch or plain keeps every Triton kernel out, the masked BatchNorm's too."""
    from models.network import SequenceModel
    from models.s4d import S4D

    net = SequenceModel(S4D, {"d_state": 4, "backend": backend}, d_input=3, d_output=2, d_model=4,
                        n_layers=2)
    norms = [m for m in net.modules() if hasattr(m, "batch_length")]
    assert len(norms) == 3 and all(m.triton is fused for m in norms)
