"""Weight decay on the backbone's biases and norms: on in the Liquid-S4 recipes, off in the state-spaces/s4 ones."""

from __future__ import annotations

import types

from suite.config import resolve
from suite.train.optim import make_optimizer
from suite.train.build import build_model

SHAPES = types.SimpleNamespace(d_input=18, d_output=10, encoder="embedding")


def _decay_of(model, optimizer):
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    return {name: decay[id(p)] for name, p in model.named_parameters()}


def test_state_spaces_s4_recipe_keeps_decay_off_backbone_biases_and_norms():
    cfg = resolve("listops", "s4d", "smoke")
    assert cfg.optim.decay_bias_and_norm is False
    net = build_model(cfg, SHAPES)
    decay = _decay_of(net, make_optimizer(net, cfg.optim, 100)[0])
    wd = cfg.optim.weight_decay
    assert decay["blocks.0.norm.norm.weight"] == 0.0 and decay["blocks.0.norm.norm.bias"] == 0.0
    assert all(v == 0.0 for k, v in decay.items() if k.startswith("blocks.") and k.endswith("bias"))
    assert decay["encoder.weight"] == wd and decay["decoder.linear.bias"] == wd  # outside the backbone, as there
    assert decay["blocks.0.layer.ssm.C"] == wd and decay["blocks.0.layer.ssm.log_dt"] == 0.0


def test_liquid_s4_recipe_decays_them():
    cfg = resolve("listops", "liquid_s4_pb", "smoke")
    net = build_model(cfg, SHAPES)
    decay = _decay_of(net, make_optimizer(net, cfg.optim, 100)[0])
    assert decay["blocks.0.norm.norm.weight"] == cfg.optim.weight_decay > 0
