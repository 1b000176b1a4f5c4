"""Optimiser groups and the learning-rate schedule."""

from __future__ import annotations

import math

import pytest

from models.network import SequenceModel
from models.s4d import S4D
from suite.config import OptimConfig
from suite.train.optim import cosine_factor, make_optimizer, param_groups


def small_model():
    return SequenceModel(S4D, dict(d_state=4), d_input=10, d_output=3, d_model=8, n_layers=2)


def test_ssm_parameters_get_their_own_lr_and_no_weight_decay():
    model = small_model()
    groups = {g["name"]: g for g in param_groups(model, lr=0.01, weight_decay=0.05, dt_lr=0.002, ssm_lr=0.001)}
    ssm = model.blocks[0].layer.ssm
    ids = lambda g: {id(p) for p in groups[g]["params"]}  # noqa: E731
    assert ids("dt") == {id(b.layer.ssm.log_dt) for b in model.blocks}
    assert {id(ssm.A_log_re), id(ssm.A_im), id(ssm.B)} <= ids("ssm")
    assert {id(ssm.C), id(ssm.D)} <= ids("default")
    assert (groups["dt"]["lr"], groups["dt"]["weight_decay"]) == (0.002, 0.0)
    assert (groups["ssm"]["lr"], groups["ssm"]["weight_decay"]) == (0.001, 0.0)
    assert (groups["default"]["lr"], groups["default"]["weight_decay"]) == (0.01, 0.05)
    n_grouped = sum(len(g["params"]) for g in groups.values())
    assert n_grouped == len(list(model.parameters()))


def test_none_means_the_global_lr():
    groups = {g["name"]: g for g in param_groups(small_model(), 0.01, 0.0, None, None)}
    assert groups["dt"]["lr"] == groups["ssm"]["lr"] == 0.01


def test_cosine_with_warmup():
    assert cosine_factor(0, 10, 110) == pytest.approx(0.1)
    assert cosine_factor(9, 10, 110) == pytest.approx(1.0)
    assert cosine_factor(10, 10, 110) == pytest.approx(1.0)
    assert cosine_factor(60, 10, 110) == pytest.approx(0.5)
    assert cosine_factor(110, 10, 110) == pytest.approx(0.0, abs=1e-12)
    # past the horizon: the reference's schedule rises again; clamped it stays at zero
    assert cosine_factor(160, 10, 110) == pytest.approx(0.5)
    assert cosine_factor(160, 10, 110, clamp=True) == pytest.approx(0.0, abs=1e-12)


def test_scheduler_scales_every_group():
    model = small_model()
    opt, sched, interval = make_optimizer(model, OptimConfig(lr=0.01, ssm_lr=0.001, warmup_steps=2, schedule_steps=10), 100)
    assert interval == "step"
    base = [g["initial_lr"] for g in opt.param_groups]
    for _ in range(6):
        opt.step()
        sched.step()
    factor = cosine_factor(6, 2, 10)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([b * factor for b in base])
    assert math.isclose(factor, 0.5 * (1 + math.cos(math.pi * 4 / 8)))


def test_without_schedule_steps_the_cosine_spans_the_whole_run():
    """schedule_steps None: the horizon is `total_steps` (the whole run, every epoch), not one epoch of it. The lr
    of the default group, lr 0.01, warm-up 10 of 120 steps: 0.5 (1 + cos(pi (s - 10) / 110)) x 0.01."""
    model = small_model()
    opt, sched, _ = make_optimizer(model, OptimConfig(lr=0.01, ssm_lr=None, warmup_steps=10, schedule_steps=None), 120)
    seen = {}
    for step in range(120):
        seen[step] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(0.001) and seen[9] == pytest.approx(0.01)
    assert seen[20] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 10 / 110)))  # 0.00980, still near the top
    assert seen[65] == pytest.approx(0.005)  # half-way down at the middle of the cosine
    assert 0 < seen[119] < 0.0001  # the bottom only at the end of the run
    assert all(seen[s + 1] < seen[s] for s in range(10, 119))  # decreasing all the way: no restart
