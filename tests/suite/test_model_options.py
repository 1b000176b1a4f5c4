"""Each model takes its own options: a model name can never train another model, and an option the chosen model
does not take is refused before anything runs (exit 2), naming the model and the options it does take."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from suite import registry
from suite.config import ModelConfig, recipe_source, resolve
from suite.errors import ConfigError
from tests.conftest import run_suite

TASKS = list(registry.TASKS)


@pytest.mark.parametrize(("model", "override", "message"), [
    ("liquid_s4_pb", "model.liquid_kernel=kb", "model liquid_s4_pb does not take model.liquid_kernel = 'kb'"),
    ("liquid_s4_kb", "model.liquid_kernel=pb", "model liquid_s4_kb does not take model.liquid_kernel = 'pb'"),
    ("s4", "model.disc=zoh", "model s4 does not take 'model.disc' (an option of s4d)"),
    ("s4", "model.init=lin", "model s4 does not take 'model.init' (an option of s4d)"),
    ("s4d", "model.liquid_degree=5", "model s4d does not take 'model.liquid_degree' (an option of liquid_s4_kb"),
    ("s4d", "model.liquid_mode=exact", "model s4d does not take 'model.liquid_mode'"),
])
def test_an_option_the_model_does_not_take_is_refused(model, override, message):
    with pytest.raises(ConfigError) as err:
        resolve("listops", model, "smoke", overrides=[override])
    assert message in str(err.value)


def test_the_refusal_names_the_fix():
    with pytest.raises(ConfigError) as err:
        resolve("listops", "liquid_s4_pb", "smoke", overrides=["model.liquid_kernel=kb"])
    assert "use --model liquid_s4_kb" in err.value.hint
    with pytest.raises(ConfigError) as err:
        resolve("listops", "s4", "smoke", overrides=["model.init=inv"])
    assert "options of s4:" in err.value.hint and "choose --model s4d" in err.value.hint


def test_the_liquid_term_can_be_switched_off_but_not_swapped():
    """`liquid_kernel: none` keeps a Liquid-S4 model's recipe and drops the term: the ablation of issue 13."""
    cfg = resolve("listops", "liquid_s4_pb", overrides=["model.liquid_kernel=none"])
    assert (cfg.model.name, cfg.model.liquid_kernel, cfg.recipe) == ("liquid_s4_pb", "none", "liquid_s4")


@pytest.mark.parametrize("model", list(registry.MODELS))
def test_every_declared_option_reaches_the_ssm_constructor(model):
    """The model's options class and its SSM class agree: nothing declared is dropped, nothing is filtered."""
    cls = registry.resolve(registry.model(model))
    accepted = set(inspect.signature(cls).parameters) - {"d_model", "l_max"}
    options = registry.model(model).options(name=model).ssm_options()
    assert set(options) == accepted


def test_the_kernel_backend_is_a_config_option_that_reaches_every_layer():
    """model.backend chooses the kernels per network, by constructor argument (nothing process-wide)."""
    import types

    from suite.config import resolve
    from suite.train.build import build_model

    shapes = types.SimpleNamespace(d_input=18, d_output=10, encoder="embedding")
    plain = build_model(resolve("listops", "s4", "smoke", overrides=["model.backend=plain"]), shapes)
    default = build_model(resolve("listops", "s4", "smoke"), shapes)
    ssms = lambda net: [m for m in net.modules() if hasattr(m, "backend")]  # noqa: E731
    assert ssms(plain) and {(m.backend, m.fused, m.triton_kernels) for m in ssms(plain)} == {("plain", False, False)}
    assert {(m.backend, m.fused, m.triton_kernels) for m in ssms(default)} == {("triton", True, True)}


@pytest.mark.parametrize("model", list(registry.MODELS))
def test_print_config_shows_only_the_models_own_options(model):
    cfg = resolve("listops", model, "smoke")
    fields = {f.name for f in dataclasses.fields(cfg.model)}
    assert fields == {f.name for f in dataclasses.fields(registry.model(model).options)}
    assert ("init" in fields) == (model == "s4d") and ("liquid_degree" in fields) == model.startswith("liquid")


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model", list(registry.MODELS))
def test_every_task_has_a_recipe_for_every_model_and_names_its_source(task, model):
    for preset in ("paper", "smoke"):
        cfg = resolve(task, model, preset)
        assert cfg.recipe == registry.model(model).recipe
    source = recipe_source(task, cfg.recipe)
    expected = "raminmh/liquid-s4" if cfg.recipe == "liquid_s4" else "state-spaces/s4"
    assert source.startswith(expected) and "configs/experiment/" in source


def test_an_ablation_can_borrow_another_recipe():
    cfg = resolve("listops", "s4d", "paper", recipe="liquid_s4")
    assert (cfg.recipe, cfg.model.d_model, cfg.model.n_layers, cfg.optim.lr) == ("liquid_s4", 128, 9, 0.002)


def test_the_base_options_are_those_of_s4():
    assert registry.model("s4").options is ModelConfig


# Through the real entry point -------------------------------------------------------------------


def test_cli_refuses_a_swapped_kernel_with_exit_2_and_no_traceback():
    r = run_suite("run", "--task", "listops", "--model", "liquid_s4_pb", "--set", "model.liquid_kernel=kb",
                  "--print-config")
    assert r.returncode == 2, r.stderr
    assert "model liquid_s4_pb does not take model.liquid_kernel = 'kb'" in r.stderr
    assert "Traceback" not in r.stderr


def test_half_precision_weights_are_refused_with_the_fix():
    r = run_suite("run", "--task", "listops", "--model", "s4d", "--precision", "bf16-true", "--print-config")
    assert r.returncode == 2 and "bf16-mixed" in r.stderr
