"""The task and model registries: plain tables from a short name to where its code lives.

Adding a task or a model is one module plus one line here. Targets are import paths, resolved
only when used, so `suite list` stays instant.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from suite.config import LiquidKBConfig, LiquidPBConfig, ModelConfig, S4DConfig
from suite.errors import UnknownNameError


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    target: str  # "package.module" or "package.module:attribute"
    family: str = ""  # tasks only: the benchmark family, used as the default MLflow experiment
    metric: str = "accuracy"  # tasks only: the headline metric (accuracy, higher is better; rmse, lower)
    split: str = "test"  # tasks only: the split of the headline metric (speech8k: test8k, the 8 kHz test)
    data: str = ""  # tasks only: the `data.` section of its own options (a DataConfig field); "" = none
    options: type | None = None  # models only: the options dataclass (suite/config.py) the model takes
    recipe: str = ""  # models only: the recipe family its `paper` preset follows (suite/recipes/<task>.yaml)


def _table(*entries: Entry) -> dict[str, Entry]:
    return {e.name: e for e in entries}


TASKS = _table(
    Entry("listops", "LRA ListOps: value of a nested MIN/MAX/MED/SM expression, 10 classes, <= 2048 tokens",
          "tasks.listops", "lra", data="generator"),
    Entry("text", "LRA Text: IMDB sentiment from characters, 2 classes, <= 4096 characters", "tasks.text", "lra"),
    Entry("retrieval", "LRA Retrieval: do two AAN papers cite each other, 2 x 4000 characters", "tasks.retrieval",
          "lra"),
    Entry("image", "LRA Image: CIFAR-10 as 1024 grayscale pixels, 10 classes", "tasks.cifar:IMAGE", "lra"),
    Entry("pathfinder", "LRA Pathfinder: are two dots connected, 32x32 = 1024 pixels", "tasks.pathfinder", "lra",
          data="pathfinder"),
    Entry("pathx", "LRA Path-X: Pathfinder at 128x128 = 16384 pixels", "tasks.pathx", "lra", data="pathfinder"),
    Entry("scifar", "Sequential CIFAR-10: 1024 RGB pixels, 10 classes", "tasks.cifar:SCIFAR", "scifar"),
    Entry("speech", "Speech Commands v0.02: 35 words from raw 16 kHz audio, 16000 samples", "tasks.speech", "speech",
          data="speech"),
    Entry("speech8k", "Speech Commands zero-shot at 8 kHz: a 16 kHz model tested on 8000 samples", "tasks.speech8k",
          "speech", split="test8k", data="speech"),
    Entry("bidmc_hr", "BIDMC heart rate from PPG + ECG, 2 x 4000 samples, RMSE", "tasks.bidmc:HR", "bidmc", "rmse",
          data="bidmc"),
    Entry("bidmc_rr", "BIDMC respiratory rate from PPG + ECG, 2 x 4000 samples, RMSE", "tasks.bidmc:RR", "bidmc",
          "rmse", data="bidmc"),
    Entry("bidmc_spo2", "BIDMC blood oxygen (SpO2) from PPG + ECG, 2 x 4000 samples, RMSE", "tasks.bidmc:SPO2", "bidmc",
          "rmse", data="bidmc"),
)

# The recipe families: `s4` = the state-spaces/s4 experiment configs (the published S4 and S4D rows),
# `liquid_s4` = the raminmh/liquid-s4 configs (the published Liquid-S4 rows).
MODELS = _table(
    Entry("s4", "S4: diagonal-plus-low-rank SSM, HiPPO-LegS init, Cauchy kernel with Woodbury correction",
          "models.s4:S4", options=ModelConfig, recipe="s4"),
    Entry("s4d", "S4D: diagonal SSM, Vandermonde kernel, LegS/Inv/Lin init, ZOH or bilinear", "models.s4d:S4D",
          options=S4DConfig, recipe="s4"),
    Entry("liquid_s4_kb", "Liquid-S4, KB liquid kernel: liquid kernels from the S4 kernel for input correlations",
          "models.liquid:LiquidS4KB", options=LiquidKBConfig, recipe="liquid_s4"),
    Entry("liquid_s4_pb", "Liquid-S4, PB liquid kernel: coefficients C B^p on input correlations, no extra FFT",
          "models.liquid:LiquidS4PB", options=LiquidPBConfig, recipe="liquid_s4"),
)


# The benchmark families, in the order of their tables: every family a task belongs to, once.
FAMILIES = tuple(dict.fromkeys(e.family for e in TASKS.values()))


def _lookup(table: dict[str, Entry], kind: str, name: str) -> Entry:
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=1)
    raise UnknownNameError(
        f"unknown {kind} '{name}'." + (f" Did you mean '{close[0]}'?" if close else ""),
        hint=f"{kind}s: {', '.join(table)} (see `suite list`)",
    )


def task(name: str) -> Entry:
    return _lookup(TASKS, "task", name)


def model(name: str) -> Entry:
    return _lookup(MODELS, "model", name)


def resolve(entry: Entry) -> Any:
    """Import the entry's target: a module, or an attribute of one."""
    module, _, attr = entry.target.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj
