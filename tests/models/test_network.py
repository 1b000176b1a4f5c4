"""The full network: padding is invisible, heads read the right positions."""

from __future__ import annotations

import math

import pytest
import torch

from models.network import SequenceModel
from models.s4d import S4D


@pytest.mark.parametrize("decoder", ["pool", "last"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_predictions(decoder, bidirectional):
    """A sequence padded with arbitrary tokens gives the same output as the sequence alone (eval mode)."""
    torch.manual_seed(0)
    model = SequenceModel(S4D, dict(d_state=8, bidirectional=bidirectional), d_input=12, d_output=5,
                          d_model=16, n_layers=2, decoder=decoder, norm="batch").double().eval()
    x = torch.randint(1, 12, (1, 20))
    alone = model(x, torch.tensor([20]))
    padded = torch.cat([x, torch.randint(0, 12, (1, 13))], dim=1)
    torch.testing.assert_close(model(padded, torch.tensor([20])), alone, rtol=1e-9, atol=1e-9)


def test_linear_encoder_and_regression_shape():
    model = SequenceModel(S4D, dict(d_state=4), d_input=2, d_output=1, encoder="linear", d_model=8,
                          n_layers=1, norm="layer")
    assert model(torch.randn(3, 50, 2)).shape == (3, 1)


def test_rate_reaches_every_layer():
    torch.manual_seed(1)
    model = SequenceModel(S4D, dict(d_state=4), d_input=6, d_output=2, d_model=8, n_layers=2).eval()
    x = torch.randint(0, 6, (2, 30))
    assert not torch.allclose(model(x, rate=1.0), model(x, rate=2.0))


@pytest.mark.parametrize("n_layers", [2, 3])
def test_rate_scales_the_step_size_of_every_block(n_layers):
    """rate r is the same network with every SSM's step size multiplied by r (dt <- r dt, docs/models.md §2.4):
    the output at rate 2 equals the output at rate 1 after log(dt) += log 2 in every block. A rate that reached
    only some blocks would give a third, different output."""
    torch.manual_seed(1)
    model = SequenceModel(S4D, dict(d_state=4), d_input=6, d_output=2, d_model=8,
                          n_layers=n_layers).double().eval()
    x = torch.randint(0, 6, (2, 30))
    at_rate_2 = model(x, rate=2.0)
    with torch.no_grad():
        for block in model.blocks:
            block.layer.ssm.log_dt += math.log(2.0)
    torch.testing.assert_close(at_rate_2, model(x, rate=1.0), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(at_rate_2, model(x, rate=2.0))  # and the rate does change the output


def test_the_models_own_rate_is_the_default():
    """SequenceModel(rate=r) without a rate at call time runs at r (what `model.rate` in a config sets)."""
    torch.manual_seed(2)
    model = SequenceModel(S4D, dict(d_state=4), d_input=6, d_output=2, d_model=8, n_layers=2,
                          rate=0.5).double().eval()
    x = torch.randint(0, 6, (2, 30))
    torch.testing.assert_close(model(x), model(x, rate=0.5), rtol=0, atol=0)
    assert not torch.allclose(model(x), model(x, rate=1.0))
