"""What a configuration names, built: the task's data, the SSM layer and the network.

The one place that turns a `RunConfig` into objects: `suite run`, `suite eval`, `suite bench`, the sweeps and the
benchmarks all build through here, so a network trained, scored or timed is the same network.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from suite import registry
from suite.config import DataConfig, ModelConfig, RunConfig
from suite.paths import default_data_root


def ssm_spec(m: ModelConfig, l_max: int) -> tuple[type, dict]:
    """The model's SSM class and its options: exactly the options the model declares (suite/config.py; validation
    refused any other) plus the data's length where the SSM takes it (S4's C~ is set up for it)."""
    ssm_cls = registry.resolve(registry.model(m.name))
    kwargs = m.ssm_options()
    if "l_max" in inspect.signature(ssm_cls).parameters:
        kwargs["l_max"] = l_max
    return ssm_cls, kwargs


def build_ssm(m: ModelConfig, l_max: int, d_model: int):
    """One SSM layer of the model at width d_model (the layer benchmarks time it alone)."""
    ssm_cls, kwargs = ssm_spec(m, l_max)
    return ssm_cls(d_model, **kwargs)


def build_model(cfg: RunConfig, data):
    """The network for `cfg.model` on a task's `TaskData`, with the SSM class from the model registry."""
    from models.network import SequenceModel

    m = cfg.model
    return SequenceModel(
        *ssm_spec(m, cfg.data.l_max),
        d_input=data.d_input,
        d_output=data.d_output,
        encoder=data.encoder,
        d_model=m.d_model,
        n_layers=m.n_layers,
        dropout=m.dropout,
        tie_dropout=m.tie_dropout,
        prenorm=m.prenorm,
        norm=m.norm,
        decoder=m.decoder,
        rate=m.rate,
    )


def data_root(data: DataConfig) -> Path:
    """The data root: data.root (--data-dir), else SUITE_DATA or data/ of this checkout. A DataError (exit 4)
    when it exists but is not a folder."""
    from tasks.errors import DataError

    root = Path(data.root).expanduser().resolve() if data.root else default_data_root()
    if root.exists() and not root.is_dir():
        given = "--data-dir (data.root)" if data.root else "SUITE_DATA"
        raise DataError(f"the data root {root} is a file, not a folder.",
                        hint=f"point {given} at a folder (the one holding lra_release/, speech_commands_v0.02/, ...; "
                             "a missing one is created)")
    return root


def load_task(cfg: RunConfig):
    """Prepare (generate, verify, cache) and load the task's data; a DataError for a fixed length other than
    data.l_max, an empty split or a label outside the task's classes (tasks.base.check_splits)."""
    from tasks.base import check_splits

    task_module = registry.resolve(registry.task(cfg.task))
    root = data_root(cfg.data)
    task_module.prepare(root, cfg.data)
    data = task_module.load(root, cfg.data)
    check_splits(cfg.task, data, root, cfg.data.l_max)
    return data
