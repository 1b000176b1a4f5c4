"""A study description (sweeps/*.yaml): typed, validated once, turned into Optuna objects.

A sweep file names what to tune and how:

    study: smoke-listops-s4d        # default study name (--study overrides)
    task: listops                   # or a list: then `task` is a categorical dimension of the space
    model: s4d                      # likewise
    preset: smoke                   # the recipe preset every trial starts from
    seed: 0                         # training seed of every trial (default: the recipe's)
    fixed:                          # overrides applied to every trial, dotted keys as in --set
      trainer.max_epochs: 3
    space:                          # what Optuna samples, any config key
      optim.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
      model.d_state: {type: int, low: 4, high: 16, step: 4}
      model.norm: {type: categorical, choices: [batch, layer]}
    objective: {metric: val/accuracy, direction: maximize}   # default: val/<task metric>, its direction
    sampler: {name: tpe, seed: 0, options: {n_startup_trials: 3}}      # tpe | random | grid
    pruner: {name: median, options: {n_startup_trials: 2}}             # median | percentile | hyperband | threshold | none
    trials: 6                       # budget: COMPLETE + PRUNED trials of the study
    max_failures: null              # failed trials one invocation tolerates before it stops (null = its budget)
    heartbeat: {interval: 30, grace: 90, max_retry: 1}

Every key is checked: an unknown one names the closest valid one, a wrong value names the fix
(errors are `ConfigError`, exit code 2). Config keys of `fixed` and `space` are checked against
`RunConfig` by resolving the configurations at the ends of the space (`check_configs`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite import registry
from suite.config import RunConfig, deep_merge, load_yaml, resolve
from suite.errors import ConfigError

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "threshold", "none")
PARAM_TYPES = ("float", "int", "categorical")
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Param:
    """One dimension of the search space; `key` is a dotted config key (or `task` / `model`)."""

    key: str
    type: str  # float | int | categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> list[Any]:
        """Values that exercise the config check: both ends, or every choice."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]

    def grid(self) -> list[Any]:
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int" and not self.log:
            return list(range(self.low, self.high + 1, self.step or 1))
        raise ConfigError(
            f"sweep: the grid sampler cannot enumerate '{self.key}' ({self.type}"
            f"{', log' if self.log else ''}).",
            hint="give grid dimensions as {type: categorical, choices: [...]} or an int range with a step",
        )


@dataclass(frozen=True)
class Named:
    """A sampler or pruner: a name and the keyword options of its Optuna class."""

    name: str
    options: dict = field(default_factory=dict)
    seed: int | None = None


@dataclass(frozen=True)
class Heartbeat:
    interval: int = 30  # seconds between a running trial's heartbeats
    grace: int = 90  # a RUNNING trial without a heartbeat for this long is failed (and retried)
    max_retry: int = 1  # copies of a failed (killed) trial re-queued for another worker


@dataclass(frozen=True)
class StudySpec:
    path: Path
    study: str
    tasks: tuple[str, ...]
    models: tuple[str, ...]
    preset: str
    seed: int | None
    fixed: dict  # nested mapping, merged into every trial's config
    space: tuple[Param, ...]
    metric: str
    direction: str
    sampler: Named
    pruner: Named
    trials: int
    max_failures: int | None
    heartbeat: Heartbeat
    experiment: str | None

    def grid_size(self) -> int | None:
        if self.sampler.name != "grid":
            return None
        size = 1
        for p in self.space:
            size *= len(p.grid())
        return size


# ------------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------------

_TOP_KEYS = ("study", "task", "model", "preset", "seed", "fixed", "space", "objective", "sampler", "pruner",
             "trials", "max_failures", "heartbeat", "experiment", "description")


def _unknown(where: str, key: str, valid: tuple[str, ...] | list[str], path: Path) -> ConfigError:
    close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.5)
    return ConfigError(
        f"sweep {path}: unknown key '{where}{key}'." + (f" Did you mean '{where}{close[0]}'?" if close else ""),
        hint=f"valid keys{' under ' + where.rstrip('.') if where else ''}: {', '.join(valid)}",
    )


def _check_keys(data: dict, valid: tuple[str, ...], where: str, path: Path) -> None:
    for k in data:
        if k not in valid:
            raise _unknown(where, k, valid, path)


def _need(cond: bool, path: Path, message: str, hint: str | None = None) -> None:
    if not cond:
        raise ConfigError(f"sweep {path}: {message}", hint=hint)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _names(value: Any, what: str, path: Path) -> tuple[str, ...]:
    names = value if isinstance(value, list) else [value]
    _need(bool(names) and all(isinstance(n, str) for n in names), path,
          f"'{what}' must be a name or a list of names, got {value!r}.", hint=f"e.g. {what}: s4d")
    return tuple(names)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{'trainer.max_epochs': 3, 'model': {'d_state': 8}} -> nested mapping (dotted keys as in --set)."""
    out: dict[str, Any] = {}
    for k, v in flat.items():
        if isinstance(v, dict):
            v = nest(v)
        out = deep_merge(out, _path_dict(str(k), v))
    return out


def _path_dict(key: str, value: Any) -> dict[str, Any]:
    node: dict[str, Any] = {}
    cur = node
    parts = key.split(".")
    for p in parts[:-1]:
        cur[p] = {}
        cur = cur[p]
    cur[parts[-1]] = value
    return node


def _param(key: str, d: Any, path: Path) -> Param:
    where = f"space.{key}"
    _need(isinstance(d, dict), path, f"{where} must be a mapping such as {{type: float, low: 0.001, high: 0.01}}, "
                                     f"got {d!r}.")
    _check_keys(d, ("type", "low", "high", "log", "step", "choices"), f"{where}.", path)
    kind = d.get("type")
    if kind is None:
        kind = "categorical" if "choices" in d else None
    _need(kind in PARAM_TYPES, path, f"{where}.type = {kind!r} is not valid; expected one of {', '.join(PARAM_TYPES)}.",
          hint="float and int take low/high (log, step optional); categorical takes choices")
    if kind == "categorical":
        choices = d.get("choices")
        _need(isinstance(choices, list) and len(choices) > 0, path, f"{where}.choices must be a non-empty list.")
        _need(all(c is None or isinstance(c, (bool, int, float, str)) for c in choices), path,
              f"{where}.choices may hold only null, bool, int, float or str (Optuna stores them as such).")
        extra = [k for k in ("low", "high", "log", "step") if k in d]
        _need(not extra, path, f"{where}: a categorical parameter takes no {', '.join(extra)}.")
        return Param(key, kind, choices=tuple(choices))
    low, high, log, step = d.get("low"), d.get("high"), d.get("log", False), d.get("step")
    _need("choices" not in d, path, f"{where}: a {kind} parameter takes low/high, not choices.")
    _need(_is_num(low) and _is_num(high), path, f"{where} needs numeric low and high, got {low!r} and {high!r}.",
          hint="YAML reads 1e-3 as a string; write 1.0e-3")
    _need(low <= high, path, f"{where}: low = {low} is above high = {high}.")
    _need(isinstance(log, bool), path, f"{where}.log must be true or false.")
    _need(step is None or (_is_num(step) and step > 0), path, f"{where}.step must be a positive number.")
    _need(not (log and step is not None), path, f"{where}: log and step cannot be combined (Optuna's rule).")
    _need(not log or low > 0, path, f"{where}: a log scale needs low > 0.")
    if kind == "int":
        _need(all(isinstance(v, int) for v in (low, high) if v is not None)
              and (step is None or isinstance(step, int)), path, f"{where}: an int parameter needs int low/high/step.",
              hint="use type: float for real values")
    else:
        low, high = float(low), float(high)
    return Param(key, kind, low, high, log, step)


def _named(value: Any, where: str, allowed: tuple[str, ...], default: str, path: Path) -> Named:
    if value is None:
        return Named(default)
    if isinstance(value, str):
        value = {"name": value}
    _need(isinstance(value, dict), path, f"'{where}' must be a name or {{name: ..., options: {{...}}}}.")
    _check_keys(value, ("name", "options", "seed"), f"{where}.", path)
    name = value.get("name", default)
    if name not in allowed:
        close = difflib.get_close_matches(str(name), allowed, n=1)
        raise ConfigError(f"sweep {path}: unknown {where} '{name}'." + (f" Did you mean '{close[0]}'?" if close else ""),
                          hint=f"{where}s: {', '.join(allowed)}")
    options = value.get("options") or {}
    _need(isinstance(options, dict), path, f"{where}.options must be a mapping of keyword arguments.")
    seed = value.get("seed")
    _need(seed is None or (isinstance(seed, int) and not isinstance(seed, bool)), path, f"{where}.seed must be an int.")
    named = Named(name, dict(options), seed)
    cls = sampler_class(name) if where == "sampler" else pruner_class(name)
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "seed", "search_space")]
    for k in options:
        if k not in accepted:
            raise _unknown(f"{where}.options.", k, accepted, path)
    return named


def logged_metrics(tasks: tuple[str, ...], task_metric: str) -> list[str]:
    """The per-epoch metrics every run of `tasks` logs (suite/train/lightning_module.py): `<split>/loss` and
    `<split>/<task metric>` for train, val, test, and test8k for the Speech Commands family (tasks/speech.py
    scores the 8 kHz test in every speech run)."""
    splits = ["val", "train", "test"]
    if all(registry.task(t).family == "speech" for t in tasks):
        splits.append("test8k")
    return [f"{split}/{q}" for split in splits for q in (task_metric, "loss")]


def load(path: Path | str) -> StudySpec:
    """Read and validate a sweep file (schema, names, space); config keys are checked by `check_configs`."""
    path = Path(path)
    data = load_yaml(path, given_as="`suite sweep FILE`")
    _check_keys(data, _TOP_KEYS, "", path)
    _need("task" in data and "model" in data, path, "a sweep needs 'task' and 'model'.",
          hint="e.g. task: listops, model: s4d (a list makes it a dimension of the search)")
    tasks = _names(data["task"], "task", path)
    models = _names(data["model"], "model", path)
    for t in tasks:
        registry.task(t)  # unknown names: UnknownNameError with the closest one
    for m in models:
        registry.model(m)
    metrics = {registry.task(t).metric for t in tasks}
    _need(len(metrics) == 1, path, f"tasks {', '.join(tasks)} report different metrics ({', '.join(sorted(metrics))}); "
                                   "one study needs one objective.", hint="make one sweep per metric")
    task_metric = metrics.pop()

    fixed = data.get("fixed") or {}
    _need(isinstance(fixed, dict), path, "'fixed' must be a mapping of config keys to values.")
    space_raw = data.get("space") or {}
    _need(isinstance(space_raw, dict), path, "'space' must be a mapping of config keys to parameter definitions.")
    for k in space_raw:
        _need(k not in ("task", "model", "preset", "seed"), path, f"space.{k}: '{k}' is not searched this way.",
              hint="list several tasks or models under the top-level 'task' / 'model' key; seed and preset are fixed")
    space = [_param(str(k), v, path) for k, v in space_raw.items()]
    for name, values in (("model", models), ("task", tasks)):
        if len(values) > 1:
            space.insert(0, Param(name, "categorical", choices=values))

    objective = data.get("objective") or {}
    if isinstance(objective, str):
        objective = {"metric": objective}
    _need(isinstance(objective, dict), path, "'objective' must be a metric name or {metric: ..., direction: ...}.")
    _check_keys(objective, ("metric", "direction"), "objective.", path)
    metric = objective.get("metric") or f"val/{task_metric}"
    logged = logged_metrics(tasks, task_metric)
    if metric not in logged:
        close = difflib.get_close_matches(str(metric), logged, n=1, cutoff=0.5)
        _need(False, path, f"objective.metric = {metric!r} is not a metric {'these tasks log' if len(tasks) > 1 else 'the task logs'}"
                           + (f". Did you mean '{close[0]}'?" if close else "."),
              hint=f"one of: {', '.join(logged)} (choose on validation: val/{task_metric} or val/loss)")
    default_dir = "minimize" if metric.endswith(("loss", "rmse")) else "maximize"
    direction = objective.get("direction") or default_dir
    _need(direction in DIRECTIONS, path, f"objective.direction = {direction!r}; expected maximize or minimize.")

    trials = data.get("trials", 20)
    _need(isinstance(trials, int) and not isinstance(trials, bool) and trials >= 1, path,
          f"'trials' must be a positive int (the study's budget), got {trials!r}.")
    max_failures = data.get("max_failures")
    _need(max_failures is None or isinstance(max_failures, int) and max_failures >= 0, path,
          "'max_failures' must be null or an int >= 0.")
    seed = data.get("seed")
    _need(seed is None or isinstance(seed, int) and not isinstance(seed, bool), path, "'seed' must be an int.")
    hb = data.get("heartbeat") or {}
    _need(isinstance(hb, dict), path, "'heartbeat' must be a mapping {interval, grace, max_retry}.")
    _check_keys(hb, ("interval", "grace", "max_retry"), "heartbeat.", path)
    heartbeat = Heartbeat(**hb)
    _need(all(isinstance(v, int) and v >= (0 if k == "max_retry" else 1)
              for k, v in dataclasses.asdict(heartbeat).items()), path,
          "heartbeat.interval and grace must be positive ints (seconds), max_retry an int >= 0.")
    _need(heartbeat.grace > heartbeat.interval, path, "heartbeat.grace must exceed heartbeat.interval.",
          hint="Optuna fails a RUNNING trial whose last heartbeat is older than grace; keep grace >= 2 x interval")
    study = data.get("study") or path.stem
    _need(isinstance(study, str), path, "'study' must be a name.")
    experiment = data.get("experiment")
    _need(experiment is None or isinstance(experiment, str), path, "'experiment' must be a name.")
    preset = data.get("preset", "paper")
    _need(isinstance(preset, str), path, "'preset' must be a preset name such as paper or smoke.")

    spec = StudySpec(
        path=path, study=study, tasks=tasks, models=models, preset=preset, seed=seed, fixed=nest(fixed),
        space=tuple(space), metric=metric, direction=direction,
        sampler=_named(data.get("sampler"), "sampler", SAMPLERS, "tpe", path),
        pruner=_named(data.get("pruner"), "pruner", PRUNERS, "median", path),
        trials=trials, max_failures=max_failures, heartbeat=heartbeat, experiment=experiment,
    )
    spec.grid_size()  # the grid sampler can enumerate the space
    return spec


# ------------------------------------------------------------------------------------------------
# configurations of trials
# ------------------------------------------------------------------------------------------------


def trial_config(spec: StudySpec, values: dict[str, Any], flags: dict[str, Any] | None = None) -> RunConfig:
    """The RunConfig of one point of the space: recipe preset < fixed < sampled values < flags."""
    task = values.get("task", spec.tasks[0])
    model = values.get("model", spec.models[0])
    sampled = nest({k: v for k, v in values.items() if k not in ("task", "model")})
    over = deep_merge(spec.fixed, sampled)
    if spec.seed is not None:
        over = deep_merge(over, {"seed": spec.seed})
    return resolve(task, model, spec.preset, None, None, deep_merge(over, flags or {}))


def check_configs(spec: StudySpec, only_available: bool = False) -> list[RunConfig]:
    """Resolve the configs at the corners of the space: unknown keys and wrong types surface now, naming
    the sweep file, not in the middle of a trial. `only_available` skips tasks without a recipe yet."""
    from suite.config import recipe_path

    configs = []
    for task in spec.tasks:
        if only_available and not recipe_path(task).is_file():
            continue
        for model in spec.models:
            rows = [[(p.key, v) for v in p.corners()] for p in spec.space if p.key not in ("task", "model")]
            firsts = dict(r[0] for r in rows)
            points = [firsts] + [{**firsts, k: v} for r in rows for k, v in r[1:]]
            for point in points:
                try:
                    configs.append(trial_config(spec, {**point, "task": task, "model": model}))
                except ConfigError as exc:
                    raise ConfigError(f"sweep {spec.path}: {exc}", hint=exc.hint) from None
    return configs


# ------------------------------------------------------------------------------------------------
# Optuna objects
# ------------------------------------------------------------------------------------------------


def sampler_class(name: str):
    import optuna

    return {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
            "grid": optuna.samplers.GridSampler}[name]


def pruner_class(name: str):
    import optuna

    return {"median": optuna.pruners.MedianPruner, "percentile": optuna.pruners.PercentilePruner,
            "hyperband": optuna.pruners.HyperbandPruner, "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
            "threshold": optuna.pruners.ThresholdPruner, "none": optuna.pruners.NopPruner}[name]


def make_sampler(spec: StudySpec):
    """The study's sampler. With `sampler.seed`, trial n draws from a sampler seeded `seed + n`, so workers
    started together (several machines, `--workers K`) never repeat each other's draws."""
    s = spec.sampler
    grid = {p.key: p.grid() for p in spec.space} if s.name == "grid" else None  # built once, not per trial

    def build(seed: int | None):
        if grid is not None:
            return sampler_class("grid")(grid, seed=seed, **s.options)
        return sampler_class(s.name)(seed=seed, **s.options)

    if s.seed is None:
        return build(None)
    from suite.sweep.sampler import TrialSeededSampler

    return TrialSeededSampler(build, s.seed)


def make_pruner(spec: StudySpec):
    return pruner_class(spec.pruner.name)(**spec.pruner.options)


def describe_space(spec: StudySpec) -> dict[str, str]:
    """One line per dimension, for the study run's params."""
    out = {}
    for p in spec.space:
        if p.type == "categorical":
            out[p.key] = "categorical " + ", ".join(map(str, p.choices))
        else:
            out[p.key] = f"{p.type} [{p.low}, {p.high}]" + (" log" if p.log else "") + (f" step {p.step}" if p.step
                                                                                      else "")
    return out
