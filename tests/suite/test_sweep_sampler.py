"""The sweep sampler: with `sampler.seed`, trial n draws from a sampler seeded `seed + n`.

Two "machines" here are two Optuna study objects on one SQLite storage, each with the sampler that
`suite sweep` builds from the same sweep file, asking for trials in turn as workers started together
would. Only the asking is simulated; the samplers, the storage and the sweep file are the real ones.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from suite.sweep import spec as sweep_spec
from tests.conftest import ROOT

optuna.logging.set_verbosity(optuna.logging.WARNING)


def spec_with(tmp_path: Path, sampler: dict, space: dict | None = None) -> sweep_spec.StudySpec:
    data = yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text())
    data["sampler"] = sampler
    if space is not None:
        data["space"] = space
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return sweep_spec.load(path)


def objective_value(values: dict) -> float:
    """A deterministic stand-in for a trial's metric, so that TPE has something to model."""
    return -abs(values["optim.lr"] - 5e-3) - 1e-3 * values.get("model.d_state", 0)


def run_trials(spec, storage: str, n_trials: int, workers: int) -> dict[int, tuple]:
    """`workers` study objects (machines) on one storage, each asking for a trial in turn, every trial
    RUNNING before any is told (they started together). Returns {trial number: sampled values}."""
    optuna.create_study(study_name="s", storage=storage, direction="maximize", load_if_exists=True)
    machines = [optuna.load_study(study_name="s", storage=storage, sampler=sweep_spec.make_sampler(spec))
                for _ in range(workers)]
    drawn: dict[int, tuple] = {}
    while len(drawn) < n_trials:
        running = []
        for study in machines[: n_trials - len(drawn)]:
            trial = study.ask()
            values = {p.key: p.suggest(trial) for p in spec.space}
            drawn[trial.number] = tuple(sorted(values.items()))
            running.append((study, trial, values))
        for study, trial, values in running:
            study.tell(trial, objective_value(values))
    return drawn


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_machines_started_together_with_one_seed_never_repeat_a_trial(tmp_path, name):
    spec = spec_with(tmp_path, {"name": name, "seed": 0, "options": {"n_startup_trials": 4} if name == "tpe" else {}})
    drawn = run_trials(spec, f"sqlite:///{tmp_path / 'optuna.db'}", n_trials=8, workers=2)
    assert sorted(drawn) == list(range(8))
    assert len(set(drawn.values())) == 8, drawn


def test_plain_optuna_samplers_with_one_seed_repeat_each_other(tmp_path):
    """The problem the trial seeding solves: two samplers seeded alike draw alike."""
    spec = spec_with(tmp_path, {"name": "random", "seed": 0})
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="s", storage=storage)
    a, b = (optuna.load_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
            for _ in range(2))
    ta, tb = a.ask(), b.ask()
    assert [p.suggest(ta) for p in spec.space] == [p.suggest(tb) for p in spec.space]


def test_a_seeded_random_sweep_gives_trial_n_the_same_values_however_many_workers_ran_it(tmp_path):
    spec = spec_with(tmp_path, {"name": "random", "seed": 7})
    alone = run_trials(spec, f"sqlite:///{tmp_path / 'one.db'}", n_trials=6, workers=1)
    shared = run_trials(spec, f"sqlite:///{tmp_path / 'three.db'}", n_trials=6, workers=3)
    assert alone == shared


def test_a_seeded_tpe_sweep_is_reproducible_past_its_random_start(tmp_path):
    spec = spec_with(tmp_path, {"name": "tpe", "seed": 3, "options": {"n_startup_trials": 3}})
    first = run_trials(spec, f"sqlite:///{tmp_path / 'a.db'}", n_trials=8, workers=1)
    second = run_trials(spec, f"sqlite:///{tmp_path / 'b.db'}", n_trials=8, workers=1)
    assert first == second
    other_seed = spec_with(tmp_path, {"name": "tpe", "seed": 4, "options": {"n_startup_trials": 3}})
    assert run_trials(other_seed, f"sqlite:///{tmp_path / 'c.db'}", n_trials=8, workers=1) != first


def test_two_machines_on_a_seeded_grid_never_repeat_a_point(tmp_path):
    # 9 points, 6 trials: the grid is not exhausted (GridSampler stops the study then, which only an
    # optimize loop allows; `suite sweep` runs one)
    space = {"optim.lr": {"type": "categorical", "choices": [1e-3, 3e-3, 1e-2]},
             "model.d_state": {"type": "categorical", "choices": [4, 8, 16]}}
    spec = spec_with(tmp_path, {"name": "grid", "seed": 0}, space)
    drawn = run_trials(spec, f"sqlite:///{tmp_path / 'optuna.db'}", n_trials=6, workers=2)
    assert len(set(drawn.values())) == 6


def test_without_a_seed_the_plain_optuna_sampler_is_used(tmp_path):
    spec = spec_with(tmp_path, {"name": "tpe", "seed": None})
    assert type(sweep_spec.make_sampler(spec)) is optuna.samplers.TPESampler
