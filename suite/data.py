"""`suite data status|fetch|prepare|generate`: the registry's tasks, each through its task module.

Every task module offers status / fetch / prepare (and generate where a generator exists); this
module only loops over the tasks the user named, with each task's DataConfig (`config.resolve_data`: the
data of a task does not depend on the model).
"""

from __future__ import annotations

import sys
from pathlib import Path

from suite import registry
from suite.errors import NotImplementedYet


def _config(task: str, preset: str, config_files, overrides, data_dir: str | None, drop_others: bool = False):
    from suite.config import resolve_data

    return resolve_data(task, preset, config_files, overrides, {"data": {"root": data_dir}} if data_dir else {},
                        drop_others)


def _module(task: str):
    return registry.resolve(registry.task(task))


def _root(data) -> Path:
    from suite.train.build import data_root

    return data_root(data)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _preset_for(task: str, preset: str) -> str:
    from suite.config import preset_names

    return preset if preset in preset_names(task) else "paper"


def status(tasks: list[str], preset: str, config_files, overrides, data_dir: str | None) -> int:
    """One line per task: where its data should be, present or not, cache verified or not, size; then every
    generated data set found (ListOps, Pathfinder, Path-X): parameters, examples, size, caches built from it.
    No task named: every task, each reading the data sections it takes of the options given (`--set
    data.generator.n_train=...` is ListOps's alone); a task named is refused another task's section."""
    from tabulate import tabulate

    rows, sets = [], {}
    for name in tasks or list(registry.TASKS):
        registry.task(name)  # an unknown name is a clean error
        data = _config(name, _preset_for(name, preset), config_files, overrides, data_dir, drop_others=not tasks)
        module, root = _module(name), _root(data)
        st = module.status(root, data)
        found = module.generated_sets(root) if hasattr(module, "generated_sets") else []
        sets.update({s.where: s for s in found})
        verified = {True: "yes", False: "CORRUPT (rebuilt on next use)", None: "not prepared"}[st.verified]
        present, note = ("yes" if st.present else "no"), st.note
        n_done = sum(s.complete for s in found)
        if not st.present and data.source == "release" and n_done:
            present = "generated only"
            note = (f"{n_done} generated set{'s' if n_done > 1 else ''} (below): train with --set data.source=generated;"
                    f" release files not fetched (suite data fetch {name})")
        rows.append([name, str(st.where), present, verified, _size(st.size_bytes), note])
    print(tabulate(rows, headers=["task", "where", "present", "cache verified", "size", "note"]))
    if sets:
        print()
        print("generated data sets:")
        print(tabulate([_generated_row(s) for s in sets.values()],
                       headers=["task", "parameters", "examples", "size", "cache (built from it)", "where"]))
    return 0


def _generated_row(s) -> list:
    if not s.complete:
        return [s.task, "interrupted: run `suite data generate` again", "-", _size(s.size_bytes), "-", str(s.where)]
    params = " ".join(f"{k}={v}" for k, v in s.params.items())
    caches = ", ".join(f"{path} ({_size(size)})" for path, size in s.caches) or "not prepared"
    return [s.task, params, s.examples, _size(s.size_bytes), caches, str(s.where)]


def fetch(tasks: list[str], data_dir: str | None) -> int:
    """Download each task's raw files from its real source."""
    for name in tasks:
        data = _config(name, "paper", None, None, data_dir)
        print(f"fetching {name} into {_root(data)}", file=sys.stderr)
        _module(name).fetch(_root(data), data, progress=True)
        print(f"{name}: raw files in place; next: suite data prepare {name}", file=sys.stderr)
    return 0


def prepare(tasks: list[str], preset: str, config_files, overrides, data_dir: str | None) -> int:
    """Convert each task's raw files into its cache (idempotent; a corrupt cache is rebuilt)."""
    for name in tasks:
        data = _config(name, _preset_for(name, preset), config_files, overrides, data_dir)
        entry = _module(name).prepare(_root(data), data, progress=True)
        print(f"{name}: prepared ({entry})")
    return 0


def generate(task: str, preset: str, config_files, overrides, data_dir: str | None) -> int:
    """Write a task's procedurally generated data in the release's on-disk format."""
    module = _module(task)
    if not hasattr(module, "generate"):
        generators = [n for n, e in registry.TASKS.items() if hasattr(registry.resolve(e), "generate")]
        raise NotImplementedYet(f"task '{task}' has no generator.", hint=f"generators: {', '.join(generators)}")
    data = _config(task, preset, config_files, overrides, data_dir)
    folder = module.generate(_root(data), data, progress=True)
    print(f"wrote {folder}")
    sets = " ".join(f"--set {s}" for s in overrides or [])
    print(f"train on it with: suite run --task {task} --model s4d --set data.source=generated {sets}".rstrip())
    return 0
