"""Configuration: presets, overlays, overrides and the errors a user sees."""

from __future__ import annotations

import pytest

from suite import config
from suite.config import RunConfig, dump, from_dict, parse_override, resolve
from suite.errors import ConfigError, UnknownNameError
from tests.conftest import run_suite


def test_paper_preset_of_a_liquid_model_is_the_liquid_s4_recipe():
    """raminmh/liquid-s4 configs/experiment/lra/s4-lra-listops.yaml, with the public code's liquid behaviour."""
    cfg = resolve("listops", "liquid_s4_pb", "paper")
    assert isinstance(cfg, RunConfig) and cfg.recipe == "liquid_s4"
    m, o, t = cfg.model, cfg.optim, cfg.trainer
    assert (m.d_model, m.n_layers, m.d_state, m.norm, m.prenorm, m.bidirectional) == (128, 9, 7, "batch", True, False)
    assert (m.liquid_kernel, m.liquid_degree, m.liquid_mode) == ("pb", 2, "reference")
    assert (o.lr, o.weight_decay, o.ssm_lr, o.dt_lr, o.warmup_steps, o.schedule_steps) == (0.002, 0.03, 0.0009,
                                                                                          None, 1000, 80000)
    assert o.decay_bias_and_norm is True
    assert (t.batch_size, t.max_epochs, cfg.seed, cfg.data.l_max) == (12, 40, 2222, 2048)


@pytest.mark.parametrize("model", ["s4", "s4d"])
def test_paper_preset_of_s4_and_s4d_is_the_state_spaces_s4_recipe(model):
    """state-spaces/s4 configs/experiment/lra/s4-listops.yaml: 256 x 6, d_state 4, bidirectional, post-norm
    BatchNorm, lr 0.01, weight decay 0.05 (not on biases and norms), SSM lr 0.001, dt 0.001-0.1, batch 32,
    40 epochs, cosine with 12k warm-up steps over 120k, seed 3333."""
    cfg = resolve("listops", model, "paper")
    m, o, t = cfg.model, cfg.optim, cfg.trainer
    assert cfg.recipe == "s4"
    assert (m.d_model, m.n_layers, m.d_state, m.n_ssm, m.norm, m.prenorm, m.bidirectional) == (
        256, 6, 4, 1, "batch", False, True)
    assert (m.dt_min, m.dt_max, m.dropout) == (0.001, 0.1, 0.0)
    assert (o.lr, o.weight_decay, o.ssm_lr, o.dt_lr, o.warmup_steps, o.schedule_steps) == (0.01, 0.05, 0.001,
                                                                                          None, 12000, 120000)
    assert o.decay_bias_and_norm is False
    assert (t.batch_size, t.max_epochs, cfg.seed, cfg.data.l_max) == (32, 40, 3333, 2048)
    if model == "s4d":
        assert (m.init, m.disc) == ("legs", "zoh")  # S4D-LegS, state-spaces/s4's S4D discretisation


def test_overlay_order_file_then_set_then_flags(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("model:\n  d_state: 16\n  d_model: 64\noptim:\n  lr: 0.1\n")
    cfg = resolve("listops", "s4d", "smoke", [user], ["model.d_state=32", "optim.lr=0.002"],
                  {"trainer": {"max_epochs": 1}})
    assert (cfg.model.d_state, cfg.model.d_model, cfg.optim.lr, cfg.trainer.max_epochs) == (32, 64, 0.002, 1)


def test_override_values_are_parsed_as_yaml():
    assert parse_override("a.b=3") == {"a": {"b": 3}}
    assert parse_override("a=0.5") == {"a": 0.5}
    assert parse_override("a=true") == {"a": True}
    assert parse_override("a=null") == {"a": None}
    assert parse_override("a=[1, 2]") == {"a": [1, 2]}


def test_ints_widen_to_floats_but_not_the_reverse():
    assert resolve("listops", "s4d", overrides=["optim.lr=1"]).optim.lr == 1.0
    with pytest.raises(ConfigError, match=r"model.d_state = 3.5 \(float\) is not valid; expected int"):
        resolve("listops", "s4d", overrides=["model.d_state=3.5"])


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError) as err:
        resolve("listops", "s4d", overrides=["model.d_stat=3"])
    assert "unknown key 'model.d_stat'" in str(err.value) and "did you mean 'model.d_state'" in str(err.value).lower()


def test_wrong_type_names_field_value_and_type():
    with pytest.raises(ConfigError, match=r"model.norm = 'group' .* expected one of 'batch', 'layer'"):
        resolve("listops", "s4d", overrides=["model.norm=group"])
    with pytest.raises(ConfigError, match=r"trainer.batch_size = 'many'"):
        resolve("listops", "s4d", overrides=["trainer.batch_size=many"])


def test_booleans_are_not_numbers():
    with pytest.raises(ConfigError, match="expected int"):
        from_dict(RunConfig, {"model": {"d_model": True}})


def test_liquid_options_are_config_values():
    cfg = resolve("listops", "liquid_s4_kb", overrides=["model.liquid_kernel=none", "model.liquid_degree=3"])
    assert (cfg.model.liquid_kernel, cfg.model.liquid_degree, cfg.model.liquid_mode) == ("none", 3, "reference")
    with pytest.raises(ConfigError, match="liquid_degree = 1 must be at least 2"):
        resolve("listops", "liquid_s4_kb", overrides=["model.liquid_degree=1"])


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="n_ssm = 3 must divide"):
        resolve("listops", "s4d", overrides=["model.n_ssm=3"])
    with pytest.raises(ConfigError, match="dt_min"):
        resolve("listops", "s4d", overrides=["model.dt_min=0.5", "model.dt_max=0.1"])


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  d_state: 4\n   n_layers: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML at line 3"):
        resolve("listops", "s4d", config_files=[bad])


def test_unknown_preset():
    with pytest.raises(UnknownNameError, match="unknown preset 'smok' for task 'listops'. Did you mean 'smoke'"):
        resolve("listops", "s4d", "smok")


def test_dump_round_trips():
    import yaml

    cfg = resolve("listops", "s4d", "smoke")
    assert from_dict(RunConfig, yaml.safe_load(dump(cfg))) == cfg


# Through the real entry point -------------------------------------------------------------------


def test_cli_config_error_exit_code_2_without_traceback():
    r = run_suite("run", "--task", "listops", "--model", "s4d", "--set", "model.d_stat=32", "--print-config")
    assert r.returncode == 2
    assert "did you mean 'model.d_state'" in r.stderr.lower() and "Traceback" not in r.stderr


def test_cli_unknown_names_and_missing_data():
    r = run_suite("run", "--task", "listop", "--model", "s4d")
    assert r.returncode == 2 and "Did you mean 'listops'" in r.stderr and "Traceback" not in r.stderr
    r = run_suite("run", "--task", "listops", "--model", "liquid_s4")
    assert r.returncode == 2 and "unknown model 'liquid_s4'" in r.stderr and "Traceback" not in r.stderr
    r = run_suite("run", "--task", "speech", "--model", "s4d", "--max-steps", "1")
    assert r.returncode == 4 and "speech_commands_v0.02" in r.stderr and "Traceback" not in r.stderr


def test_cli_print_config_applies_set_and_flags():
    r = run_suite("run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--set", "model.d_state=32",
                  "--set", "optim.lr=0.002", "--max-epochs", "7", "--seed", "5", "--print-config")
    assert r.returncode == 0, r.stderr
    import yaml

    cfg = yaml.safe_load(r.stdout)
    assert (cfg["model"]["d_state"], cfg["optim"]["lr"], cfg["trainer"]["max_epochs"], cfg["seed"]) == (32, 0.002, 7, 5)


def test_run_params_are_the_flat_config_without_the_run_name():
    """The run's name is MLflow's run name; as a param it would differ between every two trials of a sweep."""
    cfg = config.resolve("listops", "s4d", "smoke", flags={"tracking": {"run_name": "trial-7"}})
    params = config.run_params(cfg)
    assert "tracking.run_name" not in params
    assert params["model.d_model"] == cfg.model.d_model and params["seed"] == cfg.seed
    assert set(params) == set(config.flatten(config.to_dict(cfg))) - {"tracking.run_name"}
