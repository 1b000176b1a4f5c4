"""`suite batch FAMILY`: every task of a benchmark family x the chosen models x seeds (`make FAMILY` adds its table).

Behind `make lra`, `make scifar`, `make speech`, `make bidmc`. Each run is its own `suite run`
process, so one failure (or an out-of-memory) does not end the batch: the rest go on and the
summary lists what failed. Tasks whose data is not on disk (and that the preset does not generate)
are skipped with the reason and the command that fixes it.

`--workers K` runs K of them at a time. Their output then goes to one log file per run (the parent prints
a line when each starts and ends, and the log's tail when one fails), and on one GPU the K processes share
it through a CUDA MPS daemon the suite starts and stops (suite/mps.py, `--mps`).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from suite import registry
from suite.errors import INTERRUPTED_EXIT_CODE as INTERRUPTED
from suite.errors import TimeLimitReached

# exit statuses of a run that stopped cleanly before its end: checkpoint saved, MLflow run KILLED and resumable
STOPPED = {INTERRUPTED: "interrupted", TimeLimitReached.exit_code: "time limit"}


@dataclass
class Planned:
    task: str
    model: str
    seed: int | None


def family_tasks(family: str) -> list[str]:
    return [name for name, e in registry.TASKS.items() if e.family == family and name != "speech8k"]


def _skip_reason(task: str, preset: str, data_dir: str | None) -> str | None:
    """Why `task` cannot run with `preset` here, or None when it can."""
    entry = registry.task(task)  # an unknown name is a clean error
    from suite.config import preset_names, resolve_data
    from suite.train.build import data_root

    if preset not in preset_names(task):
        return f"no preset '{preset}' (presets: {', '.join(preset_names(task))})"
    data = resolve_data(task, preset, flags={"data": {"root": data_dir}} if data_dir else {})
    if data.source == "generated":
        return None  # made on first use
    status = registry.resolve(entry).status(data_root(data), data)
    if status.present:
        return None
    return f"no data in {status.where} ({status.note}); run `suite data fetch {task}`"


def run(family: str, models: list[str] | None, preset: str, seeds: list[int], data_dir: str | None,
        tracking_uri: str | None, extra: list[str], workers: int = 1, mps: str = "auto") -> int:
    """Exit status: 0 when every planned run finished (tasks skipped for want of data are not failures),
    1 when a run failed, 130 when interrupted, 75 when a run stopped at its time limit (`_summary`).
    `models` empty or None: every model of the registry."""
    from suite.errors import ConfigError

    if workers < 1:
        raise ConfigError(f"batch: --workers {workers} must be >= 1.",
                          hint="use --workers 1 (one run at a time) or more")
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
    commands = [_command(p, preset, data_dir, tracking_uri, extra) for p in plan]
    if workers == 1 or len(plan) <= 1:
        unfinished = _one_at_a_time(plan, commands)
    else:
        from suite.mps import mps_for_workers

        with mps_for_workers(min(workers, len(plan)), mps):
            unfinished = _in_parallel(plan, commands, min(workers, len(plan)), _logs_dir(family, tracking_uri),
                                      spread=_one_device_each(extra))
    if unfinished is None:
        print("interrupted: the batch stops here", file=sys.stderr)
        return INTERRUPTED
    return _summary(plan, unfinished, skipped)


def _summary(plan: list[Planned], ended: list[tuple[Planned, int]], skipped: dict[str, str]) -> int:
    """Print what did not finish, and return the batch's exit status: 1 when a run failed; else 130 when a run was
    interrupted (SIGINT to that run alone) or 75 when one stopped at its time limit, both resumable; else 0."""
    stopped = [(p, code) for p, code in ended if code in STOPPED]
    failed = [(p, code) for p, code in ended if code not in STOPPED]
    print(f"\n{len(plan) - len(ended)} of {len(plan)} runs finished"
          + (f"; {len(stopped)} stopped, resumable" if stopped else "")
          + (f"; skipped: {', '.join(skipped)}" if skipped else ""), file=sys.stderr)
    for p, code in stopped:
        print(f"  STOPPED ({STOPPED[code]}, exit {code}): {p.task} {p.model} seed {p.seed}; resumable: its log "
              "ends with the `suite run --resume` command", file=sys.stderr)
    for p, code in failed:
        print(f"  FAILED (exit {code}): {p.task} {p.model} seed {p.seed}", file=sys.stderr)
    if failed:
        return 1
    return max((code for _, code in stopped), default=0)


def _command(p: Planned, preset: str, data_dir: str | None, tracking_uri: str | None, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "suite.cli", "run", "--task", p.task, "--model", p.model, "--preset", preset]
    if p.seed is not None:
        cmd += ["--seed", str(p.seed)]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    return cmd + for_task(p.task, extra)


def for_task(task: str, extra: list[str]) -> list[str]:
    """`extra` without the `--set data.<section>....` of sections that other tasks own (registry `data`): a batch's
    `--set data.generator.n_train=...` sizes ListOps and leaves the family's other tasks alone, where `suite run`
    of one of them would refuse it (config.check_task_data)."""
    from suite.config import other_sections

    others = other_sections(task)
    out, i = [], 0
    while i < len(extra):
        if extra[i] == "--set" and i + 1 < len(extra):
            key = extra[i + 1].split("=", 1)[0].strip()
            parts = key.split(".")
            if not (len(parts) > 2 and parts[0] == "data" and parts[1] in others):
                out += extra[i:i + 2]
            i += 2
        else:
            out.append(extra[i])
            i += 1
    return out


def _one_at_a_time(plan: list[Planned], commands: list[list[str]]) -> list[tuple[Planned, int]] | None:
    """Each run in the foreground, its output on this terminal; the runs that did not finish, with their exit
    status. None when interrupted (a Ctrl-C on the terminal reaches the run and this process alike)."""
    unfinished = []
    for i, (p, cmd) in enumerate(zip(plan, commands), 1):
        print(f"\n[{i}/{len(plan)}] {' '.join(cmd[3:])}", file=sys.stderr, flush=True)
        code = subprocess.call(cmd)
        if code == INTERRUPTED:
            return None
        if code != 0:
            unfinished.append((p, code))
    return unfinished


def _logs_dir(family: str, tracking_uri: str | None) -> Path:
    """logs/batch-FAMILY-TIME/ beside a SQLite store's file (results/ by default), else under results/."""
    from suite.paths import RESULTS_DIR
    from suite.tracking import uris

    db = uris.sqlite_path(uris.resolve_uri(tracking_uri))
    return (db.parent if db is not None else RESULTS_DIR) / "logs" / f"batch-{family}-{time.strftime('%Y%m%d-%H%M%S')}"


def _one_device_each(extra: list[str]) -> bool:
    """Whether the runs train on one device each (`trainer.devices`, as the batch's --set gives it; auto is one),
    so that they can be spread over the GPUs, one per worker slot."""
    from suite.gpus import one_device

    value = "auto"
    for flag, kv in zip(extra, extra[1:]):
        if flag == "--set" and kv.split("=", 1)[0].strip() == "trainer.devices":
            value = kv.split("=", 1)[-1].strip()
    return one_device(value)


def _in_parallel(plan: list[Planned], commands: list[list[str]], workers: int,
                 logs: Path, spread: bool = True) -> list[tuple[Planned, int]] | None:
    """`workers` runs at a time, each writing to its own log file in `logs`; the runs that did not finish, with
    their exit status. None when interrupted (the running ones are sent SIGINT, so they stop as after Ctrl-C:
    checkpoint saved, run resumable). With several GPUs and `spread` (runs of one device each), worker slot k
    trains on GPU k mod N (suite/gpus.py)."""
    from suite import gpus

    logs.mkdir(parents=True, exist_ok=True)
    print(f"{workers} runs at a time; one log per run in {logs}", file=sys.stderr, flush=True)
    ids = gpus.visible_gpu_ids() if spread else []
    note = gpus.spread_note(workers, ids)
    if note:
        print(note, file=sys.stderr, flush=True)
    waiting = list(enumerate(zip(plan, commands), 1))
    free = list(range(workers))  # worker slots
    running: dict[int, tuple[subprocess.Popen, Planned, Path, float, int]] = {}
    unfinished = []
    try:
        while waiting or running:
            while waiting and free:
                i, (p, cmd) = waiting.pop(0)
                slot = free.pop(0)
                gpu = gpus.worker_gpu(slot, ids)
                log = logs / f"{i:03d}-{p.task}-{p.model}" f"{'' if p.seed is None else f'-seed{p.seed}'}.log"
                with log.open("w") as f:
                    # a session of its own: a Ctrl-C on the terminal reaches only this process, which passes
                    # one SIGINT on below (a second one would stop a run at once, without its checkpoint)
                    proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, env=gpus.worker_env(slot, ids))
                running[i] = (proc, p, log, time.monotonic(), slot)
                print(f"[{i}/{len(plan)}] started{'' if gpu is None else f' on GPU {gpu}'}: {' '.join(cmd[3:])}",
                      file=sys.stderr, flush=True)
            time.sleep(0.5)
            for i, (proc, p, log, t0, slot) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[i]
                free.append(slot)
                free.sort()
                took = time.monotonic() - t0
                state = "finished" if code == 0 else f"{STOPPED.get(code, 'FAILED').upper()} (exit {code})"
                print(f"[{i}/{len(plan)}] {state} after "
                      f"{took / 60:.1f} min: {p.task} {p.model}" + ("" if p.seed is None else f" seed {p.seed}")
                      + f" (log: {log})", file=sys.stderr, flush=True)
                if code != 0:
                    unfinished.append((p, code))
                    tail = log.read_text(errors="replace").splitlines()[-(4 if code in STOPPED else 15):]
                    print("\n".join("    " + line for line in tail), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        for proc, *_ in running.values():
            proc.send_signal(signal.SIGINT)
        for proc, *_ in running.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        return None
    return unfinished
