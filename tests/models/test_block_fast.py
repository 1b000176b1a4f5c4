"""The one-pass dropout and the fused dropout + residual of the block match their plain twins
(`TiedDropout.forward_ref`, `ResidualBlock.forward_ref`): same random numbers, outputs and gradients
within 1e-6 relative in fp32 (the only difference is where 1 / (1 - p) is rounded)."""

from __future__ import annotations

import pytest
import torch

from models.block import ResidualBlock, SSMLayer, TiedDropout
from models.s4d import S4D


def _out_and_grads(fn, module, x, seed):
    x = x.detach().clone().requires_grad_()
    torch.manual_seed(seed)
    y = fn(x)
    (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    grads = [x.grad] + [p.grad.clone() for p in module.parameters() if p.grad is not None]
    module.zero_grad(set_to_none=True)
    return y.detach(), grads


@pytest.mark.parametrize("tie", [True, False])
def test_one_pass_dropout_equals_the_plain_twin(tie):
    drop = TiedDropout(0.3, tie).train()
    x = torch.randn(4, 8, 32)
    y, (g,) = _out_and_grads(drop, drop, x, seed=1)
    y_ref, (g_ref,) = _out_and_grads(drop.forward_ref, drop, x, seed=1)
    assert (y == 0).any()  # the mask did drop something: the comparison is not between identities
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=0)


def test_dropout_is_the_identity_in_eval_mode():
    drop = TiedDropout(0.3).eval()
    x = torch.randn(2, 3, 5)
    assert drop(x) is x and drop.scaled_mask(x) is None


@pytest.mark.parametrize("prenorm", [True, False])
def test_block_with_fused_dropout_residual_equals_the_plain_twin(prenorm):
    torch.manual_seed(0)
    block = ResidualBlock(SSMLayer(S4D(8, d_state=4), dropout=0.2), "batch", prenorm, dropout=0.3).train()
    x = torch.randn(3, 8, 40)
    mask = (torch.arange(40)[None, :] < torch.tensor([40, 25, 9])[:, None]).unsqueeze(1).float()
    y, grads = _out_and_grads(lambda x: block(x, mask), block, x, seed=2)
    y_ref, grads_ref = _out_and_grads(lambda x: block.forward_ref(x, mask), block, x, seed=2)
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    assert len(grads) == len(grads_ref) > 5
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
