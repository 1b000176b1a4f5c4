"""Each task takes its own data options: a `data.` section the chosen task does not read (the ListOps generator
set for Text, say) is refused before anything runs (exit 2), naming the key, the task and the tasks that take it,
instead of being ignored. Recipes and defaults never trip it; the data commands resolve a task's data alone."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from suite import registry
from suite.config import DataConfig, load_recipe, preset_names, resolve, resolve_data
from suite.errors import ConfigError
from tests.conftest import run_suite

TASKS = list(registry.TASKS)
SECTIONS = {"generator": "listops", "pathfinder": "pathfinder", "speech": "speech", "bidmc": "bidmc_hr"}


def test_every_task_section_is_a_data_field_holding_its_tasks_options():
    fields = {f.name for f in dataclasses.fields(DataConfig)}
    taken = {e.data for e in registry.TASKS.values() if e.data}
    assert taken == set(SECTIONS) and taken <= fields
    assert {registry.task(t).data for t in ("pathfinder", "pathx")} == {"pathfinder"}
    assert {registry.task(t).data for t in ("speech", "speech8k")} == {"speech"}
    assert {registry.task(t).data for t in ("text", "retrieval", "image", "scifar")} == {""}
    for section, task in SECTIONS.items():  # the options class is the task module's own
        options = type(getattr(DataConfig(), section))
        assert options.__module__ == registry.task(task).target.partition(":")[0], section


@pytest.mark.parametrize(("task", "override", "owners"), [
    ("text", "data.generator.n_train=10", "listops"),
    ("listops", "data.pathfinder.difficulty=curv_baseline", "pathfinder, pathx"),
    ("pathx", "data.speech.resample=torchaudio", "speech, speech8k"),
    ("speech", "data.bidmc.split=official", "bidmc_hr, bidmc_rr, bidmc_spo2"),
    ("bidmc_rr", "data.generator.seed=3", "listops"),
])
def test_a_data_section_the_task_does_not_take_is_refused(task, override, owners):
    key = override.partition("=")[0]
    section = ".".join(key.split(".")[:2])
    with pytest.raises(ConfigError) as err:
        resolve(task, "s4d", "smoke", overrides=[override])
    assert f"task {task} does not take '{key}' ({section} is an option of {owners})" in str(err.value)
    assert f"drop '{key}'" in err.value.hint and f"choose --task {owners.split(',')[0]}" in err.value.hint


def test_the_refusal_names_the_tasks_own_data_options():
    with pytest.raises(ConfigError) as err:
        resolve("pathfinder", "s4d", overrides=["data.generator.n_train=10"])
    assert "data options of pathfinder: root, source, l_max, pathfinder.*" in err.value.hint
    with pytest.raises(ConfigError) as err:
        resolve("text", "s4d", overrides=["data.bidmc.split=official"])
    assert "data options of text: root, source, l_max;" in err.value.hint


def test_a_config_file_setting_another_tasks_section_is_refused_too(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("data:\n  source: generated\n  generator:\n    n_train: 10\n")
    assert resolve("listops", "s4d", config_files=[user]).data.generator.n_train == 10
    with pytest.raises(ConfigError, match=r"task image does not take 'data.generator.n_train'"):
        resolve("image", "s4d", config_files=[user])
    with pytest.raises(ConfigError, match=r"task scifar does not take 'data.speech'"):
        resolve("scifar", "s4d", flags={"data": {"speech": {}}})


def test_the_tasks_own_section_and_the_shared_data_options_are_taken():
    cfg = resolve("pathx", "s4d", "smoke", overrides=["data.pathfinder.split_seed=7", "data.l_max=16384"])
    assert cfg.data.pathfinder.split_seed == 7
    cfg = resolve("text", "s4d", overrides=["data.source=release", "data.l_max=1024", "data.root=/tmp/d"])
    assert (cfg.data.l_max, cfg.data.root) == (1024, "/tmp/d")


@pytest.mark.parametrize("task", TASKS)
def test_recipes_and_defaults_never_trip_it(task):
    """Every recipe sets only the section its task takes; every preset of every model resolves (the defaults of
    every other section are in the configuration, unset, as a stored run has them)."""
    recipe = load_recipe(task)
    layers = [recipe.get("defaults") or {}, *(r.get("config") or {} for r in recipe["recipes"].values()),
              *(p or {} for p in recipe["presets"].values())]
    own = registry.task(task).data
    for layer in layers:
        assert set((layer.get("data") or {})) - {"root", "source", "l_max", own} == set()
    for preset in preset_names(task):
        for model in registry.MODELS:
            cfg = resolve(task, model, preset)
            assert set(dataclasses.asdict(cfg.data)) >= set(SECTIONS)


@pytest.mark.parametrize("task", TASKS)
def test_the_data_of_a_task_resolves_without_a_model(task):
    """What the data commands read: the same data configuration every model's run of that preset gets."""
    for preset in preset_names(task):
        data = resolve_data(task, preset)
        assert isinstance(data, DataConfig)
        assert all(resolve(task, m, preset).data == data for m in registry.MODELS)


def test_resolve_data_takes_files_overrides_and_flags_and_refuses_the_same_mistakes(tmp_path):
    user = tmp_path / "run.yaml"
    user.write_text("model:\n  d_state: 16\noptim:\n  lr: 0.1\ndata:\n  generator:\n    n_train: 50\n")
    data = resolve_data("listops", "smoke", [user], ["data.generator.n_val=6"], {"data": {"root": "/tmp/x"}})
    assert (data.generator.n_train, data.generator.n_val, data.root, data.source) == (50, 6, "/tmp/x", "generated")
    with pytest.raises(ConfigError, match="task text does not take 'data.generator.n_train'"):
        resolve_data("text", "paper", [user])
    with pytest.raises(ConfigError, match="Did you mean 'data.source'"):
        resolve_data("listops", "paper", overrides=["data.sorce=generated"])
    with pytest.raises(ConfigError, match="data.generator.n_train = 0 must be at least 1"):
        resolve_data("listops", "smoke", overrides=["data.generator.n_train=0"])
    with pytest.raises(ConfigError, match="unknown key 'optm'"):
        resolve_data("listops", "smoke", overrides=["optm.lr=1"])


# Through the real entry point -------------------------------------------------------------------


def test_cli_refuses_another_tasks_section_with_exit_2_and_no_traceback(tmp_path):
    r = run_suite("run", "--task", "text", "--model", "s4d", "--set", "data.generator.n_train=10", "--print-config")
    assert r.returncode == 2, r.stderr
    assert "task text does not take 'data.generator.n_train'" in r.stderr and "choose --task listops" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_suite("data", "status", "text", "--set", "data.generator.n_train=10", "--data-dir", str(tmp_path))
    assert r.returncode == 2 and "task text does not take 'data.generator.n_train'" in r.stderr


def test_cli_print_config_keeps_every_section_and_its_keys():
    """Stored runs, bundles and tables read every data section: the YAML keys stay data.generator.*, ..."""
    r = run_suite("run", "--task", "text", "--model", "s4d", "--print-config")
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load(r.stdout)["data"]
    assert set(data) == {"root", "source", "l_max", *SECTIONS}
    assert data["generator"]["n_train"] == 96_000 and data["bidmc"] == {"split": "reference", "split_seed": 0}


def test_data_status_of_every_task_gives_each_the_sections_it_takes(tmp_path):
    r = run_suite("data", "status", "--set", "data.generator.n_train=10", "--set", "data.bidmc.split=official",
                  "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0] for line in r.stdout.splitlines()[2:] if line.strip()}
    assert rows == set(TASKS)
    assert resolve_data("text", drop_others=True, overrides=["data.generator.n_train=10"]) == resolve_data("text")
    assert resolve_data("listops", drop_others=True, overrides=["data.generator.n_train=10"]).generator.n_train == 10
