"""Property: whatever configuration text and --set overrides a user types, the loader returns a valid
RunConfig or raises a clean ConfigError / UnknownNameError (one paragraph, a hint) — never anything else."""

from __future__ import annotations

import math
import string
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from suite.config import RunConfig, check, dump, flatten, from_dict, load_yaml, resolve, to_dict
from suite.errors import ConfigError, UnknownNameError

KEYS = sorted(flatten(to_dict(RunConfig())))  # model.d_state, optim.lr, trainer.devices, ...
SECTIONS = sorted({k.split(".")[0] for k in KEYS})


def typo(key: str, data) -> str:
    """The key with one character dropped, doubled or swapped: what a user mistypes."""
    i = data.draw(st.integers(0, max(len(key) - 1, 0)))
    kind = data.draw(st.sampled_from(["drop", "double", "case", "swap"]))
    if kind == "drop":
        return key[:i] + key[i + 1:]
    if kind == "double":
        return key[:i] + key[i:i + 1] * 2 + key[i + 1:]
    if kind == "case":
        return key.upper()
    return key[:i] + key[i + 1:i + 2] + key[i:i + 1] + key[i + 2:]


# Values a range check must stop: non-finite, negative, zero, huge, numbers as text.
EDGES = [float("nan"), float("inf"), -float("inf"), 0, -1, 0.0, -0.5, 1.5, 2**63, -(2**70), 10**400, 1e308, "1e-3",
         "nan", "", "auto", "-1", "0,1", "ddp", "cpu", "bf16-mixed", True, False, None, [], {}, [0.9, 0.999], [2, -1]]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.integers(), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(EDGES), st.sampled_from(EDGES),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)


@st.composite
def keys(draw):
    kind = draw(st.sampled_from(["real", "real", "real", "section", "typo", "random", "deep"]))
    if kind == "real":
        return draw(st.sampled_from(KEYS))
    if kind == "section":
        return draw(st.sampled_from(SECTIONS))
    if kind == "typo":
        return typo(draw(st.sampled_from(KEYS)), draw(st.data()))
    if kind == "deep":
        return draw(st.sampled_from(KEYS)) + "." + draw(st.text(string.ascii_lowercase, min_size=1, max_size=5))
    return draw(st.text(max_size=15))


YAML_TOKENS = [".nan", ".inf", "-.inf", "1e400", "1e-3", "0x1F", "0o17", "1_000", "~", "null", "yes", "on", "2001-01-01",
               "[", "{a: 1", "*alias", "&a [1]", "!!python/object:os.system", "'quoted", "[" * 200, "- 1\n- 2", "a: b"]


@st.composite
def overrides(draw):
    """What follows --set: key=value with the value as YAML text, raw text, or nothing."""
    form = draw(st.sampled_from(["edge", "edge", "yaml", "text", "empty", "no-equals"]))
    if form == "edge":  # a real key with a value a range check must stop
        key, value = draw(st.sampled_from(KEYS)), draw(st.sampled_from(EDGES))
        return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
    key = draw(keys())
    if form == "yaml":
        return f"{key}={yaml.safe_dump(draw(values), default_flow_style=True).strip().removesuffix('...').strip()}"
    if form == "text":
        return f"{key}={draw(st.one_of(st.text(max_size=20), st.sampled_from(YAML_TOKENS)))}"
    if form == "empty":
        return f"{key}="
    return key


@st.composite
def config_texts(draw):
    """The text of a --config file: a YAML mapping of (mostly real) keys, or arbitrary text."""
    kind = draw(st.sampled_from(["mapping", "mapping", "text", "yaml-scalar"]))
    if kind == "text":
        return draw(st.text(max_size=80))
    if kind == "yaml-scalar":
        return yaml.safe_dump(draw(values))
    tree: dict = {}
    for key in draw(st.lists(keys(), max_size=5)):
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = draw(values)
    return yaml.safe_dump(tree, allow_unicode=True)


def assert_valid(cfg: RunConfig) -> None:
    """A config the loader accepted is usable: it passes check(), round-trips through YAML, has finite numbers."""
    assert isinstance(cfg, RunConfig)
    check(cfg)
    for key, v in flatten(to_dict(cfg)).items():
        if isinstance(v, float):
            assert math.isfinite(v), (key, v)
    assert from_dict(RunConfig, yaml.safe_load(dump(cfg))) == cfg


def assert_clean(exc: Exception) -> None:
    assert isinstance(exc, (ConfigError, UnknownNameError)), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    assert text and "Traceback" not in text and len(text) < 4000


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(sets=st.lists(overrides(), max_size=4), files=st.lists(config_texts(), max_size=2),
       preset=st.sampled_from(["smoke", "paper", "smoke", "smok", ""]))
@example(sets=["optim.ssm_lr=.nan"], files=[], preset="smoke")  # found by this test
@example(sets=["optim.lr=1e400"], files=[], preset="smoke")
@example(sets=["trainer.devices=0", "seed=-1"], files=[], preset="smoke")
@example(sets=["trainer.limit_train_batches=-1"], files=["trainer: {max_epochs: -1}"], preset="paper")
@example(sets=["model.d_model=" + "9" * 400], files=[], preset="smoke")
@example(sets=["optim.lr=" + "[" * 2000], files=["task: text"], preset="smoke")
def test_resolve_returns_a_valid_config_or_a_clean_error(sets, files, preset):
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, text in enumerate(files):
            paths.append(Path(tmp) / f"c{i}.yaml")
            paths[-1].write_text(text, encoding="utf-8")
        try:
            cfg = resolve("listops", "s4d", preset, paths, sets)
        except Exception as exc:  # noqa: BLE001 - the property is about which exceptions
            assert_clean(exc)
        else:
            assert_valid(cfg)


@FUZZ
@given(content=st.one_of(st.text(max_size=120).map(str.encode), st.binary(max_size=60),
                         config_texts().map(str.encode), st.sampled_from([t.encode() for t in YAML_TOKENS])))
@example(content=b"model:\n  d_state: \xff\xfe\n")  # not UTF-8
@example(content=b"[" * 5000)  # nested too deeply for the parser
def test_load_yaml_returns_a_mapping_or_a_clean_error(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(content)
        try:
            data = load_yaml(path)
        except Exception as exc:  # noqa: BLE001
            assert_clean(exc)
        else:
            assert isinstance(data, dict)


@FUZZ
@given(task=st.one_of(st.text(max_size=20), st.sampled_from(["listops", "LISTOPS", "../listops", "list\x00ops"])),
       model=st.text(max_size=10))
def test_unknown_tasks_and_presets_are_clean_errors(task, model):
    try:
        cfg = resolve(task, model or "s4d", "smoke")
    except Exception as exc:  # noqa: BLE001
        assert_clean(exc)
    else:
        assert_valid(cfg)
