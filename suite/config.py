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
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from suite.errors import ConfigError, UnknownNameError
from suite.paths import RECIPES_DIR


@dataclass
class ModelConfig:
    """The network: encoder -> n_layers residual SSM blocks -> decoder (models.md, section 5)."""

    name: str = "s4d"
    d_model: int = 128
    n_layers: int = 4
    d_state: int = 64  # N; diagonal kernels keep N // 2 complex modes (conjugate pairs)
    n_ssm: int | None = None  # independent (A, B) copies shared across features; None = d_model
    dropout: float = 0.0
    tie_dropout: bool = True  # one dropout mask per (batch, feature), shared along time
    prenorm: bool = True
    norm: Literal["batch", "layer"] = "batch"
    bidirectional: bool = False
    decoder: Literal["pool", "last"] = "pool"
    # Kernel options
    init: Literal["legs", "inv", "lin"] = "legs"  # S4D: S4D-LegS / S4D-Inv / S4D-Lin
    disc: Literal["zoh", "bilinear"] = "zoh"  # S4D discretisation (S4 and Liquid-S4 are bilinear)
    dt_min: float = 0.001
    dt_max: float = 0.1
    rate: float = 1.0  # step-size multiplier: Delta <- rate * Delta (e.g. 2 for 8 kHz input)
    # Liquid-S4 options (models liquid_s4_kb / liquid_s4_pb)
    liquid_kernel: Literal["kb", "pb", "none"] | None = None  # None = the model's own (kb or pb)
    liquid_degree: int = 2  # P: correlation terms of degrees 2..P
    liquid_mode: Literal["paper", "reference"] = "paper"  # reference = the public code's behaviour


@dataclass
class OptimConfig:
    """AdamW with separate groups for the SSM parameters (models.md, section 4)."""

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
    num_workers: int = 0
    limit_train_batches: float | int = 1.0
    limit_val_batches: float | int = 1.0
    log_every_n_steps: int = 50
    num_nodes: int = 1
    strategy: str = "auto"  # auto, ddp, ddp_spawn, ... (Lightning strategies)
    progress_bar: bool = True
    deterministic: bool | Literal["warn"] = False


@dataclass
class GeneratorConfig:
    """Procedural data, used when data.source = generated.

    ListOps follows LRA's generator (generators.md, section 1): lengths strictly between
    min_length and max_length, trees of depth <= max_depth with 2..max_args operands.
    """

    n_train: int = 96_000
    n_val: int = 2_000
    n_test: int = 2_000
    min_length: int = 500  # exclusive
    max_length: int = 2_000  # exclusive
    max_depth: int = 10
    max_args: int = 10
    seed: int = 0


@dataclass
class PathfinderConfig:
    """Pathfinder / Path-X: which difficulty to read, and the generator used when data.source = generated
    (generators.md, section 2; the resolution comes from the task: 32 for pathfinder, 128 for pathx)."""

    difficulty: Literal["curv_baseline", "curv_contour_length_9", "curv_contour_length_14"] = "curv_contour_length_14"
    split_seed: int = 42  # the reference's random 80/10/10 split
    n_images: int = 200_000  # generated images (the release has 200k per difficulty)
    seed: int = 0  # generator seed


@dataclass
class SpeechConfig:
    """Speech Commands: how the 8 kHz zero-shot input is made from the 16 kHz clips."""

    resample: Literal["decimate", "torchaudio"] = "decimate"  # decimate = x[::2] as the reference; torchaudio = filtered


@dataclass
class BidmcConfig:
    """BIDMC: the reference pools train+test and reshuffles 70/15/15; `official` keeps the Monash split."""

    split: Literal["reference", "official"] = "reference"
    split_seed: int = 0


@dataclass
class DataConfig:
    root: str | None = None  # None = SUITE_DATA or <checkout>/data
    source: Literal["release", "generated"] = "release"
    l_max: int = 2048
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)  # ListOps generator
    pathfinder: PathfinderConfig = field(default_factory=PathfinderConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    bidmc: BidmcConfig = field(default_factory=BidmcConfig)


@dataclass
class TrackingConfig:
    uri: str | None = None  # None = MLFLOW_TRACKING_URI or sqlite:////<checkout>/results/mlflow.db
    experiment: str | None = None  # None = the task's benchmark family (lra, scifar, speech, bidmc)
    run_name: str | None = None


@dataclass
class RunConfig:
    task: str = "listops"
    preset: str = "paper"
    seed: int = 2222
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


# --------------------------------------------------------------------------------------------
# Validation: mapping -> dataclass
# --------------------------------------------------------------------------------------------

_TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str", type(None): "null"}


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
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return from_dict(tp, value, where)
    raise ConfigError(
        f"config: {where} = {value!r} ({type(value).__name__}) is not valid; expected {_type_name(tp)}.",
        hint=f"set it with e.g. --set {where}=<{_type_name(tp)}>, or fix the YAML file",
    )


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: {prefix or 'the top level'} must be a mapping, got {data!r}.")
    hints = typing.get_type_hints(cls)
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


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a syntax error is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config: file not found: {path}", hint="check the path given to --config")
    try:
        data = yaml.safe_load(path.read_text())
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
    except yaml.YAMLError:
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
    path = recipe_path(task)
    if not path.is_file():
        raise UnknownNameError(f"no recipe for task '{task}' ({path} is missing).")
    recipe = load_yaml(path)
    recipe.setdefault("presets", {})
    return recipe


def preset_names(task: str) -> list[str]:
    return list(load_recipe(task)["presets"])


def resolve(
    task: str,
    model: str,
    preset: str = "paper",
    config_files: list[Path] | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
) -> RunConfig:
    """Merge defaults, recipe, preset, files, --set overrides and flags; validate once."""
    recipe = load_recipe(task)
    presets = recipe["presets"]
    if preset not in presets:
        close = difflib.get_close_matches(preset, list(presets), n=1)
        raise UnknownNameError(
            f"unknown preset '{preset}' for task '{task}'." + (f" Did you mean '{close[0]}'?" if close else ""),
            hint=f"presets of {task}: {', '.join(presets)}",
        )
    merged: dict[str, Any] = {"task": task, "preset": preset}
    merged = deep_merge(merged, recipe.get("defaults") or {})
    merged = deep_merge(merged, presets[preset] or {})
    merged = deep_merge(merged, {"model": {"name": model}})
    for f in config_files or []:
        merged = deep_merge(merged, load_yaml(f))
    for o in overrides or []:
        merged = deep_merge(merged, parse_override(o))
    merged = deep_merge(merged, flags or {})
    cfg = from_dict(RunConfig, merged)
    check(cfg)
    return cfg


def check(cfg: RunConfig) -> None:
    """Cross-field checks that types alone cannot express."""
    m = cfg.model
    positive = {
        "model.d_model": m.d_model,
        "model.n_layers": m.n_layers,
        "model.d_state": m.d_state,
        "trainer.batch_size": cfg.trainer.batch_size,
        "data.l_max": cfg.data.l_max,
    }
    for where, value in positive.items():
        if value < 1:
            raise ConfigError(f"config: {where} = {value} must be at least 1.")
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
    if m.liquid_degree < 2:
        raise ConfigError(f"config: model.liquid_degree = {m.liquid_degree} must be at least 2.")
    if m.rate <= 0:
        raise ConfigError(f"config: model.rate = {m.rate} must be positive.")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"config: optim.lr = {cfg.optim.lr} must be positive.")
    g = cfg.data.generator
    if not 0 <= g.min_length < g.max_length:
        raise ConfigError(
            f"config: need data.generator.min_length < max_length, got {g.min_length} and {g.max_length}."
        )


def dump(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
