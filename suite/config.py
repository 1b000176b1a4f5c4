"""Run configuration: typed dataclasses, loaded from YAML, validated once.

Resolution order (later wins):

    dataclass defaults < recipe `defaults` < recipe preset < --config FILE < --set key=value < CLI flags

The merged mapping is validated in one place (`from_dict`): an unknown key names the key and the
closest valid one, a wrong type names the field, the value and the expected type. Inner code only
ever sees the typed `RunConfig`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from suite.errors import ConfigError, UnknownNameError
from suite.paths import RECIPES_DIR

if TYPE_CHECKING:
    from tasks.bidmc import BidmcOptions
    from tasks.listops import ListOpsGeneratorOptions
    from tasks.pathfinder import PathfinderOptions
    from tasks.speech import SpeechOptions


@dataclass
class ModelConfig:
    """The options every model takes: the network around the SSM (encoder -> n_layers residual SSM blocks ->
    decoder, docs/models.md §6) and the SSM options S4, S4D and Liquid-S4 share. This class is also the options
    of `s4`; each other model's options are a subclass (below), named in its registry entry."""

    name: str = "s4d"
    d_model: int = 128
    n_layers: int = 4
    dropout: float = 0.0
    tie_dropout: bool = True  # one dropout mask per (batch, feature), shared along time
    prenorm: bool = True
    norm: Literal["batch", "layer"] = "batch"
    decoder: Literal["pool", "last", "retrieval"] = "pool"  # retrieval: document pairs (AAN)
    rate: float = 1.0  # step-size multiplier: Delta <- rate * Delta (e.g. 2 for 8 kHz input)
    # The SSM inside each block
    d_state: int = 64  # N; the kernels keep N // 2 complex modes (conjugate pairs)
    n_ssm: int | None = None  # independent (A, B) copies shared across features; None = d_model
    bidirectional: bool = False
    dt_min: float = 0.001
    dt_max: float = 0.1
    # the kernels the SSM runs on (models/ssm.py): triton (fused paths, Triton kernels where they apply; the
    # default), torch (fused paths, PyTorch kernels), plain (the plain twins the fast paths are tested against)
    backend: Literal["triton", "torch", "plain"] = "triton"

    def ssm_options(self) -> dict[str, Any]:
        """The keyword arguments of the model's SSM class: every field that is not a network option."""
        network = {f.name for f in dataclasses.fields(ModelConfig)} - SSM_FIELDS
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in network}


SSM_FIELDS = {"d_state", "n_ssm", "bidirectional", "dt_min", "dt_max", "backend"}


@dataclass
class S4DConfig(ModelConfig):
    """`s4d`: the S4D paper's initialisations and discretisations (docs/models.md §3)."""

    init: Literal["legs", "inv", "lin"] = "legs"  # S4D-LegS / S4D-Inv / S4D-Lin
    disc: Literal["zoh", "bilinear"] = "zoh"  # state-spaces/s4's S4D default is zoh


@dataclass
class LiquidConfig(ModelConfig):
    """Liquid-S4: S4 plus the liquid term of degrees 2..liquid_degree (docs/liquid.md)."""

    liquid_kernel: str = "kb"  # fixed per model below; `none` keeps the recipe and drops the term (ablation)
    liquid_degree: int = 2  # P: correlation terms of degrees 2..P
    liquid_mode: Literal["reference", "exact"] = "reference"  # reference = the public code's behaviour
    liquid_norm: Literal["none", "pole"] = "none"  # exact mode: pole = liquid term scaled to keep poles stable


@dataclass
class LiquidKBConfig(LiquidConfig):
    liquid_kernel: Literal["kb", "none"] = "kb"


@dataclass
class LiquidPBConfig(LiquidConfig):
    liquid_kernel: Literal["pb", "none"] = "pb"


@dataclass
class OptimConfig:
    """AdamW with separate groups for the SSM parameters (docs/models.md §5)."""

    lr: float = 0.01
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    dt_lr: float | None = None  # learning rate of log(dt); None = lr. Weight decay 0.
    ssm_lr: float | None = 0.001  # learning rate of A and B; None = lr. Weight decay 0.
    scheduler: Literal["cosine", "constant", "step"] = "cosine"  # step: x step_gamma every step_epochs epochs
    warmup_steps: int = 1000
    schedule_steps: int | None = None  # cosine horizon; None = the whole run
    clamp_schedule: bool = False  # False: the factor rises again past the horizon, as in the reference
    grad_clip: float = 0.0  # 0 = off
    # weight decay on the backbone's biases and normalisation parameters: the Liquid-S4 code decays them,
    # state-spaces/s4 does not (its train.optimizer_param_grouping)
    decay_bias_and_norm: bool = True
    step_epochs: int = 100  # scheduler 'step' (BIDMC: MultiStep x0.5 at epochs 100, 200, ...)
    step_gamma: float = 0.5


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    max_steps: int = -1  # -1 = no limit
    batch_size: int = 32
    eval_batch_size: int | None = None  # None = batch_size
    accelerator: str = "auto"
    devices: int | str = "auto"
    precision: str = "32-true"
    # data-loading processes per training process; auto: 2 when training on a GPU (batches are made while the GPU
    # trains, off the training thread), 0 on a CPU (suite/train/datamodule.py, loader_workers)
    num_workers: int | Literal["auto"] = "auto"
    limit_train_batches: int | float = 1.0  # a fraction of the epoch (float) or a number of batches (int)
    limit_val_batches: int | float = 1.0
    log_every_n_steps: int = 50
    num_nodes: int = 1
    strategy: str = "auto"  # auto, ddp, ddp_spawn, ... (Lightning strategies)
    progress_bar: bool = True
    progress_every_seconds: float = 30.0  # not a terminal: one progress line this often (suite/train/progress.py)
    deterministic: bool | Literal["warn"] = False
    # last.ckpt (what `suite run --resume` continues from) is also written mid-epoch: every N optimizer steps
    # and/or every M minutes (null = off for that trigger); it is always written at the end of each epoch.
    checkpoint_every_n_steps: int | None = None
    checkpoint_every_minutes: float | None = 10.0
    # replay the network's training forward and backward as CUDA graphs: far fewer kernel launches per step, the
    # same numbers (suite/train/cuda_graphs.py). auto: when training on one CUDA GPU at a precision they cover, else
    # eagerly with a one-line note; true: graphs or an error; false: eager (`suite run --eager`)
    cuda_graph: bool | Literal["auto"] = "auto"
    # what the graphs hold: step (the default: forward, loss, backward, clipping and the AdamW update, one graph per
    # batch shape, suite/train/step_graphs.py) or network (forward and backward only; loss, clipping and AdamW eager)
    cuda_graph_scope: Literal["step", "network"] = "step"
    # the training network through torch.compile (inductor fuses the elementwise chains around the FFT convolution;
    # inside the CUDA graphs when they apply): on an H200 the ListOps step of s4d 1.32x and s4 1.17x faster, after
    # 40-80 s of compilation per batch shape (BENCHMARKS.md, session 12); off by default until measured side by side
    compile: bool = False
    # stop cleanly before this much wall time since the process started (`8m`, `1h30m`, `90s` or seconds; null =
    # none): last.ckpt saved, run left resumable, exit code 75 (suite/train/timelimit.py, docs/reproduction.md)
    time_limit: str | float | None = None


def _task_options() -> dict[str, type]:
    """The options classes of the tasks that take a `data.` section, by class name. Each task module owns its
    class (tasks/listops.py, tasks/pathfinder.py, tasks/speech.py, tasks/bidmc.py); they are imported here on
    first use, not with this module, because the task modules import torch and `suite --help` / `suite list`
    read this module."""
    from tasks.bidmc import BidmcOptions
    from tasks.listops import ListOpsGeneratorOptions
    from tasks.pathfinder import PathfinderOptions
    from tasks.speech import SpeechOptions

    return {c.__name__: c for c in (ListOpsGeneratorOptions, PathfinderOptions, SpeechOptions, BidmcOptions)}


def _task_section(name: str) -> Any:
    """A DataConfig field holding the task options class `name`, made when a DataConfig is."""
    return field(default_factory=lambda: _task_options()[name]())


@dataclass
class DataConfig:
    """The data of a run: where, which source, how long; then one section per task that has options of its own
    (the registry's `data` of a task names the section it takes; any other one set is refused by `resolve`)."""

    root: str | None = None  # None = SUITE_DATA or <checkout>/data
    source: Literal["release", "generated"] = "release"
    l_max: int = 2048
    generator: ListOpsGeneratorOptions = _task_section("ListOpsGeneratorOptions")  # listops
    pathfinder: PathfinderOptions = _task_section("PathfinderOptions")  # pathfinder, pathx
    speech: SpeechOptions = _task_section("SpeechOptions")  # speech, speech8k
    bidmc: BidmcOptions = _task_section("BidmcOptions")  # bidmc_hr, bidmc_rr, bidmc_spo2


@dataclass
class TrackingConfig:
    uri: str | None = None  # None = MLFLOW_TRACKING_URI or sqlite:////<checkout>/results/mlflow.db
    experiment: str | None = None  # None = the task's benchmark family (lra, scifar, speech, bidmc)
    run_name: str | None = None


@dataclass
class RunConfig:
    task: str = "listops"
    preset: str = "paper"
    recipe: str = ""  # the recipe family the model trains with (registry: liquid_s4 or s4); set by resolve
    seed: int = 2222
    model: ModelConfig = field(default_factory=S4DConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


# --------------------------------------------------------------------------------------------
# Validation: mapping -> dataclass
# --------------------------------------------------------------------------------------------

_TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str", type(None): "null"}
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "list of " + ", ".join(_type_name(a) for a in typing.get_args(tp))
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Return `value` as type `tp`, or raise ConfigError naming field, value and expected type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
    elif origin is Literal:
        if any(type(value) is type(a) and value == a for a in typing.get_args(tp)):
            return value
    elif origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                pass
        elif isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is ModelConfig:
        if isinstance(value, dict):
            return model_from_dict(value, where)
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return from_dict(tp, value, where)
    if dataclasses.is_dataclass(tp):  # a whole section given a plain value (`model: 5`)
        keys = [f.name for f in dataclasses.fields(tp) if f.name != "name"]
        raise ConfigError(
            f"config: {where} = {value!r} ({type(value).__name__}) is not valid; '{where}' is a section, a mapping "
            f"of its keys ({', '.join(keys[:5])}, ...).",
            hint=f"write it as a mapping, e.g. '{where}: {{{keys[0]}: ...}}' in the YAML file, or --set {where}.{keys[0]}=...",
        )
    raise ConfigError(
        f"config: {where} = {value!r} ({type(value).__name__}) is not valid; expected {_type_name(tp)}.",
        hint=f"set it with e.g. --set {where}=<{_type_name(tp)}>, or fix the YAML file",
    )


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: {prefix or 'the top level'} must be a mapping, got {data!r}.")
    hints = _type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in hints:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            valid = ", ".join(names)
            raise ConfigError(
                f"config: unknown key '{where}'."
                + (f" Did you mean '{prefix + '.' if prefix else ''}{close[0]}'?" if close else ""),
                hint=f"valid keys{' under ' + prefix if prefix else ''}: {valid}",
            )
        kwargs[key] = _coerce(value, hints[key], where)
    return cls(**kwargs)


def _type_hints(cls: type) -> dict[str, Any]:
    """The field types of dataclass `cls`; DataConfig's name the task options classes, imported on first use."""
    return typing.get_type_hints(cls, localns=_task_options() if cls is DataConfig else None)


def model_from_dict(data: dict[str, Any], where: str = "model") -> ModelConfig:
    """The `model` section as the options class of the model it names (registry): a key that model does not
    take is refused, naming the model, its options and the models that do take the key."""
    from suite import registry

    name = data.get("name", ModelConfig.name)
    if not isinstance(name, str):
        raise ConfigError(f"config: {where}.name = {name!r} is not valid; expected a model name.",
                          hint=f"models: {', '.join(registry.MODELS)}")
    cls = registry.model(name).options
    taken = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key in taken:
            continue
        owners = [n for n, e in registry.MODELS.items() if key in {f.name for f in dataclasses.fields(e.options)}]
        if not owners:
            from_dict(cls, {key: data[key]}, where)  # unknown everywhere: the usual did-you-mean
        raise ConfigError(f"config: model {name} does not take '{where}.{key}' (an option of {', '.join(owners)}).",
                          hint=f"options of {name}: {', '.join(taken)}; drop '{key}', or choose --model "
                               f"{owners[0]}")
    try:
        return from_dict(cls, data, where)
    except ConfigError as exc:
        for key, value in data.items():  # a value another model takes: say which (e.g. liquid_kernel = kb)
            others = [n for n, e in registry.MODELS.items() if n != name and _accepts(e.options, key, value)]
            if others and not _accepts(cls, key, value):
                raise ConfigError(f"config: model {name} does not take {where}.{key} = {value!r} "
                                  f"(it takes {_type_name(typing.get_type_hints(cls)[key])}).",
                                  hint=f"for {key} = {value!r} use --model {others[0]}") from None
        raise exc


def _accepts(cls: type, key: str, value: Any) -> bool:
    hints = typing.get_type_hints(cls)
    if key not in hints:
        return False
    try:
        _coerce(value, hints[key], key)
        return True
    except ConfigError:
        return False


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain nested dict (tuples as lists), ready for YAML."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'model': {'d_state': 64}} -> {'model.d_state': 64}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


# Config keys a run does not log as MLflow params: the run's name is its MLflow name already, and as a param it
# would show as a difference between every pair of runs in the MLflow UI's run comparison (a sweep's trials).
NOT_PARAMS = ("tracking.run_name",)


def run_params(cfg: RunConfig) -> dict[str, Any]:
    """The MLflow params of a run of `cfg`: its flattened configuration, less NOT_PARAMS."""
    return {k: v for k, v in flatten(to_dict(cfg)).items() if k not in NOT_PARAMS}


# --------------------------------------------------------------------------------------------
# Merging: recipes, user files, --set overrides
# --------------------------------------------------------------------------------------------


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path: Path, given_as: str = "--config") -> dict[str, Any]:
    """Read a YAML mapping; a missing file, a folder or a syntax error is a ConfigError naming the file and
    `given_as`, where the user gave it (a flag, or e.g. "the sweep file argument")."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.y*ml"))[:5]
        raise ConfigError(f"config: {path} is a folder, not a YAML file.",
                          hint=f"give {given_as} one file" + (f", e.g. one of: {', '.join(inside)}" if inside else ""))
    if not path.is_file():
        raise ConfigError(f"config: file not found: {path}", hint=f"check the path given to {given_as}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config: {path} is not UTF-8 text (byte {exc.start}: {exc.reason}).",
                          hint="save the file as UTF-8 (plain text YAML)") from None
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror or exc}.",
                          hint="check the path and its permissions") from None
    except RecursionError:
        raise ConfigError(f"config: {path} is nested too deeply to be a configuration.",
                          hint="a config file is a mapping of sections (model, optim, trainer, data, tracking)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"config: {path} is not valid YAML{at}: {problem}.",
            hint="fix the YAML syntax (indentation, ':' after keys, quotes)",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping of keys to values, got {type(data).__name__}.")
    return data


def parse_override(text: str) -> dict[str, Any]:
    """'model.d_state=32' -> {'model': {'d_state': 32}}; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"config: --set {text!r} is not of the form key=value.", hint="e.g. --set model.d_state=32"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, RecursionError):
        value = raw
    node: dict[str, Any] = {}
    cur = node
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur[p] = {}
        cur = cur[p]
    cur[parts[-1]] = value
    return node


def recipe_path(task: str) -> Path:
    return RECIPES_DIR / f"{task}.yaml"


def load_recipe(task: str) -> dict[str, Any]:
    """A task's recipe file: `defaults` (every recipe of the task), `recipes` (one per model family, each with the
    public config file it `follows` and its `config`), `presets` (overlays: `paper` is empty, `smoke` is tiny)."""
    path = recipe_path(task)
    if not path.is_file():
        raise UnknownNameError(f"no recipe for task '{task}' ({path} is missing).")
    recipe = load_yaml(path)
    recipe.setdefault("presets", {})
    recipe.setdefault("recipes", {})
    return recipe


def preset_names(task: str) -> list[str]:
    return list(load_recipe(task)["presets"])


def recipe_source(task: str, recipe: str) -> str:
    """The public configuration file a task's recipe follows, e.g. 'state-spaces/s4 configs/experiment/...'."""
    return str(load_recipe(task)["recipes"].get(recipe, {}).get("follows", ""))


def _merge(task: str, preset: str, recipe: str | None, model: str | None, config_files: list[Path] | None,
           overrides: list[str] | None, flags: dict[str, Any] | None, drop_others: bool = False) -> dict[str, Any]:
    """The layers of a configuration merged (defaults < recipe < preset < model name < files < --set < flags),
    not yet validated; `recipe` or `model` None leaves that layer out. What the user set (files, --set, flags)
    is checked against the task's data options here (the recipes are checked by the tests); `drop_others`
    drops the sections of other tasks instead of refusing them (no recipe sets one)."""
    recipe_file = load_recipe(task)
    presets = recipe_file["presets"]
    if preset not in presets:
        close = difflib.get_close_matches(preset, list(presets), n=1)
        raise UnknownNameError(
            f"unknown preset '{preset}' for task '{task}'." + (f" Did you mean '{close[0]}'?" if close else ""),
            hint=f"presets of {task}: {', '.join(presets)}",
        )
    if recipe is not None and recipe not in recipe_file["recipes"]:
        raise UnknownNameError(f"task '{task}' has no '{recipe}' recipe.",
                               hint=f"recipes of {task}: {', '.join(recipe_file['recipes']) or 'none'}; add one to "
                                    f"{recipe_path(task)}")
    merged: dict[str, Any] = {"task": task, "preset": preset, "recipe": recipe or ""}
    merged = deep_merge(merged, recipe_file.get("defaults") or {})
    if recipe is not None:
        merged = deep_merge(merged, recipe_file["recipes"][recipe].get("config") or {})
    merged = deep_merge(merged, presets[preset] or {})
    if model is not None:
        merged = deep_merge(merged, {"model": {"name": model}})
    user: dict[str, Any] = {}
    for layer in [*(load_yaml(f) for f in config_files or []), *(parse_override(o) for o in overrides or []),
                  flags or {}]:
        merged, user = deep_merge(merged, layer), deep_merge(user, layer)
    if drop_others and isinstance(merged.get("data"), dict):
        merged["data"] = {k: v for k, v in merged["data"].items() if k not in other_sections(task)}
    check_task_data(task, user.get("data") if not drop_others else None)
    return merged


def other_sections(task: str) -> set[str]:
    """The `data.` sections that tasks other than `task` own (registry `data`)."""
    from suite import registry

    own = registry.task(task).data
    return {e.data for e in registry.TASKS.values() if e.data and e.data != own}


def check_task_data(task: str, data: Any) -> None:
    """A `data.<section>` that another task owns (registry `data`), set for `task`: refused, naming the key, the
    task and the tasks that take it; the task would never read it, so the run would silently differ from what
    was asked. root, source, l_max and the task's own section are taken; other unknown keys are left to
    `from_dict` (did-you-mean)."""
    from suite import registry

    if not isinstance(data, dict):
        return
    own = registry.task(task).data
    for section, value in data.items():
        owners = [name for name, e in registry.TASKS.items() if e.data == section]
        if not owners or section == own:
            continue
        key = f"data.{section}" + (f".{next(iter(value))}" if isinstance(value, dict) and value else "")
        taken = "root, source, l_max" + (f", {own}.*" if own else "")
        raise ConfigError(f"config: task {task} does not take '{key}' (data.{section} is an option of "
                          f"{', '.join(owners)}).",
                          hint=f"data options of {task}: {taken}; drop '{key}', or choose --task {owners[0]}")


def _check_chosen(cfg: RunConfig, chosen: dict[str, str]) -> None:
    """A config file or --set that names another task, preset, recipe or model than the command chose."""
    for name, value in chosen.items():
        given = cfg.model.name if name == "model" else getattr(cfg, name)
        if given != value:
            where = "model.name" if name == "model" else name
            raise ConfigError(f"config: {where} = {given!r} in a config file or --set, but the run is for {name} "
                              f"{value!r}.",
                              hint=f"remove '{where}' from the file / --set" + (
                                  "; the recipe follows the model" if name == "recipe" else
                                  f"; choose the {name} with --{name} only"))


def resolve(
    task: str,
    model: str,
    preset: str = "paper",
    config_files: list[Path] | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
    recipe: str | None = None,
) -> RunConfig:
    """Merge defaults, the model's recipe, preset, files, --set overrides and flags; validate once.

    The recipe is the model's family's (registry: `liquid_s4` for the Liquid-S4 models, `s4` for S4 and S4D),
    so every model trains with the published recipe of its own row; `recipe` picks another one (an ablation,
    or one network for every model in a benchmark)."""
    from suite import registry

    recipe_name = recipe or registry.model(model).recipe
    cfg = from_dict(RunConfig, _merge(task, preset, recipe_name, model, config_files, overrides, flags))
    _check_chosen(cfg, {"task": task, "preset": preset, "recipe": recipe_name, "model": model})
    check(cfg)
    return cfg


def resolve_data(
    task: str,
    preset: str = "paper",
    config_files: list[Path] | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
    drop_others: bool = False,
) -> DataConfig:
    """The data configuration of `task` alone, for the data commands (`suite data`, `suite batch`'s data check):
    the same as every model's run of that preset gets (no recipe sets `data`). The layers are merged and
    validated as by `resolve`, so a file written for `suite run` serves as is and a typo anywhere is refused;
    only the `model` section is not read: it needs a model, and it does not change the data. `drop_others`: one
    set of options for many tasks (`suite data status` of every task), each task keeps the sections it takes."""
    merged = _merge(task, preset, None, None, config_files, overrides, flags, drop_others)
    merged.pop("model", None)
    cfg = from_dict(RunConfig, merged)
    _check_chosen(cfg, {"task": task, "preset": preset})
    check(cfg)
    return cfg.data


def from_stored(data: dict[str, Any]) -> RunConfig:
    """A configuration stored by a run (config.yaml artifact, checkpoint), also by an earlier version of the suite:
    model options the model never took are dropped (they were ignored then), liquid_mode 'paper' is 'exact'."""
    from suite import registry

    data = dict(data)
    model = dict(data.get("model") or {})
    try:
        taken = {f.name for f in dataclasses.fields(registry.model(model.get("name", ModelConfig.name)).options)}
    except Exception:
        taken = set(model)
    data["model"] = {k: v for k, v in model.items() if k in taken}
    if data["model"].get("liquid_mode") == "paper":
        data["model"]["liquid_mode"] = "exact"
    cfg = from_dict(RunConfig, data)
    check(cfg)
    return cfg


GRAPHED_PRECISIONS = ("32-true", "32")  # trainer.cuda_graph covers these (suite/train/cuda_graphs.py)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")
PRECISIONS = ("32-true", "32", "64-true", "64", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true",
              "transformer-engine", "transformer-engine-float16")
STRATEGY_PREFIXES = ("auto", "ddp", "fsdp", "deepspeed", "single_device", "xla", "single_xla")


def _bad(where: str, value: Any, rule: str, hint: str | None = None) -> ConfigError:
    return ConfigError(f"config: {where} = {value!r} {rule}.", hint=hint or f"e.g. --set {where}=<value>")


def _check_numbers(cfg: RunConfig) -> None:
    """Every number finite and within 64 bits."""
    for where, value in flatten(to_dict(cfg)).items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                raise _bad(where, v, "must be a finite number")
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**63:
                raise _bad(where, v, "is out of range")


def check(cfg: RunConfig) -> None:
    """Cross-field and range checks that types alone cannot express; a ConfigError names the field, the value
    and the fix."""
    _check_numbers(cfg)
    _check_ranges(cfg)
    _check_model(cfg.model)
    _check_optim(cfg.optim)
    _check_trainer(cfg.trainer)
    _check_generator(cfg.data.generator)


def _check_ranges(cfg: RunConfig) -> None:
    """The counts that must be at least 1 and the amounts that must not be negative."""
    m, o, t, g = cfg.model, cfg.optim, cfg.trainer, cfg.data.generator
    at_least_1 = {
        "model.d_model": m.d_model,
        "model.n_layers": m.n_layers,
        "model.d_state": m.d_state,
        "trainer.batch_size": t.batch_size,
        "trainer.eval_batch_size": t.eval_batch_size or 1,
        "trainer.log_every_n_steps": t.log_every_n_steps,
        "trainer.progress_every_seconds": t.progress_every_seconds,
        "trainer.num_nodes": t.num_nodes,
        "trainer.checkpoint_every_n_steps": t.checkpoint_every_n_steps or 1,
        "data.l_max": cfg.data.l_max,
        "optim.schedule_steps": 1 if o.schedule_steps is None else o.schedule_steps,
        "optim.step_epochs": o.step_epochs,
        "data.generator.n_train": g.n_train,
        "data.generator.n_val": g.n_val,
        "data.generator.n_test": g.n_test,
        "data.generator.max_depth": g.max_depth,
        "data.pathfinder.n_images": cfg.data.pathfinder.n_images,
    }
    for where, value in at_least_1.items():
        if value < 1:
            raise _bad(where, value, "must be at least 1")
    at_least_0 = {
        "seed": cfg.seed,
        "optim.weight_decay": o.weight_decay,
        "optim.grad_clip": o.grad_clip,
        "optim.warmup_steps": o.warmup_steps,
        "trainer.num_workers": 0 if t.num_workers == "auto" else t.num_workers,
        "data.generator.seed": g.seed,
        "data.generator.workers": g.workers,
    }
    for where, value in at_least_0.items():
        if value < 0:
            raise _bad(where, value, "must not be negative")
    if cfg.seed >= 2**32:
        raise _bad("seed", cfg.seed, "must be below 2**32 (numpy's seed range)")


def _check_model(m: ModelConfig) -> None:
    """The SSM's sizes, time-step range, dropout and rate; the liquid options that go together."""
    if m.d_state < 2:
        raise ConfigError(f"config: model.d_state = {m.d_state} must be at least 2 (N // 2 complex modes).")
    if m.n_ssm is not None and (m.n_ssm < 1 or m.d_model % m.n_ssm):
        raise ConfigError(
            f"config: model.n_ssm = {m.n_ssm} must divide model.d_model = {m.d_model}.",
            hint="use a divisor of d_model, or null for one SSM per feature",
        )
    if not 0 < m.dt_min <= m.dt_max:
        raise ConfigError(f"config: need 0 < model.dt_min <= model.dt_max, got {m.dt_min} and {m.dt_max}.")
    if not 0.0 <= m.dropout < 1.0:
        raise ConfigError(f"config: model.dropout = {m.dropout} must lie in [0, 1).")
    if isinstance(m, LiquidConfig) and m.liquid_degree < 2:
        raise ConfigError(f"config: model.liquid_degree = {m.liquid_degree} must be at least 2.")
    if isinstance(m, LiquidConfig) and m.liquid_norm != "none" and m.liquid_mode != "exact":
        raise ConfigError(f"config: model.liquid_norm = {m.liquid_norm!r} applies to liquid_mode 'exact' only "
                          f"(the reference term is the public code's, fixed).",
                          hint="add --set model.liquid_mode=exact, or drop model.liquid_norm")
    if m.rate <= 0:
        raise ConfigError(f"config: model.rate = {m.rate} must be positive.")


def _check_optim(o: OptimConfig) -> None:
    """Learning rates, Adam's betas and the step schedule."""
    for where, lr in (("optim.lr", o.lr), ("optim.dt_lr", o.dt_lr), ("optim.ssm_lr", o.ssm_lr)):
        if lr is not None and lr <= 0:
            raise ConfigError(f"config: {where} = {lr} must be positive.")
    if not all(0.0 <= b < 1.0 for b in o.betas):
        raise _bad("optim.betas", list(o.betas), "must lie in [0, 1)", "e.g. --set optim.betas=[0.9,0.999]")
    if o.step_gamma <= 0:
        raise _bad("optim.step_gamma", o.step_gamma, "must be positive")


def _check_trainer(t: TrainerConfig) -> None:
    """The run's length, batch limits, time limit, devices, accelerator, precision and strategy."""
    if t.max_epochs < 1 and t.max_epochs != -1:
        raise _bad("trainer.max_epochs", t.max_epochs, "must be at least 1 (or -1: no limit, with max_steps)")
    if t.max_steps < 1 and t.max_steps != -1:
        raise _bad("trainer.max_steps", t.max_steps, "must be at least 1 (or -1: no limit)")
    if t.max_epochs == -1 and t.max_steps == -1:
        raise ConfigError("config: trainer.max_epochs and trainer.max_steps are both -1 (no limit): the run never ends.",
                          hint="set one of them, e.g. --max-epochs 10")
    for where, limit in (("trainer.limit_train_batches", t.limit_train_batches),
                         ("trainer.limit_val_batches", t.limit_val_batches)):
        if isinstance(limit, float) and not 0.0 < limit <= 1.0 or isinstance(limit, int) and limit < 1:
            raise _bad(where, limit, "must be a fraction in (0, 1] or a number of batches >= 1")
    if t.time_limit is not None:
        from suite.train.timelimit import parse_duration

        try:
            parse_duration(t.time_limit)
        except ValueError as exc:
            raise ConfigError(f"config: {exc}.", hint="e.g. --time-limit 8m, 1h30m or 90s") from None
    if t.checkpoint_every_minutes is not None and t.checkpoint_every_minutes <= 0:
        raise _bad("trainer.checkpoint_every_minutes", t.checkpoint_every_minutes, "must be positive (or null: off)")
    devices = t.devices
    if isinstance(devices, int) and devices < 1 and devices != -1 or isinstance(devices, str) and not (
            devices == "auto" or re.fullmatch(r"\d+(\s*,\s*\d+)*,?|-1", devices.strip())):
        raise _bad("trainer.devices", devices, "must be a number of devices >= 1, -1 (all), 'auto' or a list like '0,1'")
    for where, value, choices in (("trainer.accelerator", t.accelerator, ACCELERATORS),
                                  ("trainer.precision", t.precision, PRECISIONS)):
        if value not in choices:
            close = difflib.get_close_matches(value, choices, n=1)
            raise _bad(where, value, "is not known" + (f" (did you mean {close[0]!r}?)" if close else ""),
                       f"one of: {', '.join(choices)}")
    if t.precision in ("16-true", "bf16-true"):
        raise _bad("trainer.precision", t.precision, "is not supported: the SSM kernels need float32 parameters "
                   "(complex half precision has no FFT or Cauchy kernels)",
                   "use --precision bf16-mixed (or 16-mixed): float32 weights, half-precision matrix products")
    if t.cuda_graph is True and t.precision not in GRAPHED_PRECISIONS:
        raise _bad("trainer.precision", t.precision, "cannot be combined with trainer.cuda_graph = true",
                   "use --precision 32-true with CUDA graphs, or drop --set trainer.cuda_graph=true")
    if not t.strategy.startswith(STRATEGY_PREFIXES):
        raise _bad("trainer.strategy", t.strategy, "is not a Lightning strategy",
                   "e.g. auto, ddp, ddp_spawn, ddp_find_unused_parameters_true, fsdp")


def _check_generator(g: ListOpsGeneratorOptions) -> None:
    """The ListOps generator's lengths and arity."""
    if not 0 <= g.min_length < g.max_length:
        raise ConfigError(
            f"config: need data.generator.min_length < max_length, got {g.min_length} and {g.max_length}."
        )
    if g.max_args < 2:
        raise _bad("data.generator.max_args", g.max_args, "must be at least 2 (an operator takes 2+ operands)")


def dump(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
