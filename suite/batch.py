"""`suite batch FAMILY`: every task of a benchmark family x the chosen models x seeds (`make FAMILY` adds its table).

Behind `make lra`, `make scifar`, `make speech`, `make bidmc`. Each run is its own `suite run`
process, so one failure (or an out-of-memory) does not end the batch: the rest go on and the
summary lists what failed. Tasks whose data is not on disk (and that the preset does not generate)
are skipped with the reason and the command that fixes it.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from suite import registry


@dataclass
class Planned:
    task: str
    model: str
    seed: int | None


def family_tasks(family: str) -> list[str]:
    return [name for name, e in registry.TASKS.items() if e.family == family and name != "speech8k"]


def _skip_reason(task: str, preset: str, data_dir: str | None) -> str | None:
    """Why `task` cannot run with `preset` here, or None when it can."""
    registry.task(task)  # an unknown name is a clean error
    from suite.config import preset_names, resolve
    from suite.run import data_root

    if preset not in preset_names(task):
        return f"no preset '{preset}' (presets: {', '.join(preset_names(task))})"
    cfg = resolve(task, "s4d", preset, flags={"data": {"root": data_dir}} if data_dir else {})
    if cfg.data.source == "generated":
        return None  # made on first use
    status = registry.resolve(entry).status(data_root(cfg), cfg.data)
    if status.present:
        return None
    return f"no data in {status.where} ({status.note}); run `suite data fetch {task}`"


def run(family: str, models: list[str] | None, preset: str, seeds: list[int], data_dir: str | None,
        tracking_uri: str | None, extra: list[str]) -> int:
    """Exit status: 0 when every planned run finished (tasks skipped for want of data are not failures),
    1 when a run failed, 130 when interrupted. `models` empty or None: every model of the registry."""
    models = list(models or registry.MODELS)
    for m in models:
        registry.model(m)  # unknown names fail before anything runs
    plan, skipped = [], {}
    for task in family_tasks(family):
        reason = _skip_reason(task, preset, data_dir)
        if reason:
            skipped[task] = reason
            continue
        plan += [Planned(task, m, s) for m in models for s in (seeds or [None])]
    for task, reason in skipped.items():
        print(f"skip {task}: {reason}", file=sys.stderr)
    print(f"{len(plan)} runs: {len(models)} model(s) x {len({p.task for p in plan})} task(s) x "
          f"{len(seeds) or 1} seed(s), preset {preset}", file=sys.stderr)
    failed = []
    for i, p in enumerate(plan, 1):
        cmd = [sys.executable, "-m", "suite.cli", "run", "--task", p.task, "--model", p.model, "--preset", preset]
        if p.seed is not None:
            cmd += ["--seed", str(p.seed)]
        if data_dir:
            cmd += ["--data-dir", data_dir]
        if tracking_uri:
            cmd += ["--tracking-uri", tracking_uri]
        cmd += extra
        print(f"\n[{i}/{len(plan)}] {' '.join(cmd[3:])}", file=sys.stderr, flush=True)
        code = subprocess.call(cmd)
        if code == 130:
            print("interrupted: the batch stops here", file=sys.stderr)
            return 130
        if code != 0:
            failed.append((p, code))
    print(f"\n{len(plan) - len(failed)} of {len(plan)} runs finished"
          + (f"; skipped: {', '.join(skipped)}" if skipped else ""), file=sys.stderr)
    for p, code in failed:
        print(f"  FAILED (exit {code}): {p.task} {p.model} seed {p.seed}", file=sys.stderr)
    return 1 if failed else 0
