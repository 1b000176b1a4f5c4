"""An Optuna sampler whose draws for trial n come from a sampler seeded `seed + n`.

Optuna seeds a sampler once, per process. Workers of one study that start with the same seed at the
same moment (one `suite sweep` command on each of several machines, all seeing an empty study) then
draw the same values, trial for trial. Trial numbers, by contrast, are handed out by the storage and
are unique across every worker of a study. Seeding each trial's draws by its number makes workers
never repeat each other, and makes a seeded sweep reproducible however its trials were spread over
workers: with the random sampler (and TPE's random start-up trials) trial n's values depend only on
`seed` and n.

Only the public sampler interface is used: `before_trial` receives the new trial, with its number,
before Optuna asks for any value, and builds the inner sampler for it; every other call is passed on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial


class TrialSeededSampler(BaseSampler):
    def __init__(self, build: Callable[[int], BaseSampler], seed: int):
        self._build = build  # seed -> a fresh sampler (TPE, random, grid, ...)
        self._seed = seed
        self._inner = build(seed)

    def __repr__(self) -> str:
        return f"TrialSeededSampler({self._inner!r}, seed={self._seed} + trial number)"

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._inner = self._build(self._seed + trial.number)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()
