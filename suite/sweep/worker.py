"""The workers: `--workers K` processes here (the same command on other machines) share the storage and run
trials until the study reaches its target.

Before each trial a worker, under the study's lock, fails stale trials (Optuna heartbeat) and starts a trial only
while COMPLETE + PRUNED + RUNNING + WAITING trials are below the target, so K local workers stop exactly at the
budget. A trial killed with its worker is failed by the heartbeat check and re-queued for another worker.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from suite.sweep.context import Context
from suite.sweep.runs import FAILURE_ATTR, fmt
from suite.sweep.spec import StudySpec, load, make_pruner, make_sampler
from suite.sweep.storage import lock_path, open_storage, trial_counts
from tasks.filelock import FileLock


def _report(tag: str, spec: StudySpec, target: int):
    """The Optuna callback that prints one line per finished trial: its state, its values, the study's progress."""
    def report(study, trial) -> None:
        c = trial_counts(study)
        done = c["COMPLETE"] + c["PRUNED"]
        shown = ", ".join(f"{k}={fmt(v)}" for k, v in trial.params.items())
        if trial.state.name == "COMPLETE":
            what = f"COMPLETE {spec.metric} {trial.value:.4f}"
        elif trial.state.name == "PRUNED":
            what = f"PRUNED at epoch {trial.last_step}"
        else:
            what = f"FAILED: {trial.user_attrs.get(FAILURE_ATTR, 'see the log above')}"
        print(f"{tag}trial {trial.number} {what}  ({shown})  [{done}/{target} done]", file=sys.stderr, flush=True)

    return report


class _AnticipatedFailures(logging.Filter):
    """Optuna logs every failed trial with its traceback, then "failed with value None". For a failure the suite
    anticipates (a HintedError: divergence, out of memory, a refused configuration) the `trial N FAILED: ...`
    line says it all; an unexpected exception (a bug) keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from suite.errors import USER_ERRORS

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, USER_ERRORS):
            self.last_was_anticipated = True
            return False
        if getattr(self, "last_was_anticipated", False) and "failed with value None" in record.getMessage():
            self.last_was_anticipated = False
            return False
        self.last_was_anticipated = False
        return True


def run_worker(ctx: Context, tag: str = "") -> int:
    """Run trials until COMPLETE + PRUNED reaches the target (or too many failures). Returns trials run."""
    import optuna

    from suite.sweep.objective import make_objective  # brings Lightning: only in a process that runs trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optimize_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _AnticipatedFailures) for f in optimize_log.filters):
        optimize_log.addFilter(_AnticipatedFailures())
    spec = load(ctx.file)
    storage = open_storage(ctx.storage, spec, ctx.uri)
    study = optuna.load_study(study_name=ctx.study, storage=storage, sampler=None, pruner=make_pruner(spec))
    study.sampler = make_sampler(spec)
    lock = FileLock(lock_path(ctx.storage, ctx.study))
    objective = make_objective(spec, ctx, lock)
    report = _report(tag, spec, ctx.target)
    ran, waiting_said = 0, False
    while True:
        lock.acquire()
        try:
            optuna.storages.fail_stale_trials(study)
            c = trial_counts(study)
            done = c["COMPLETE"] + c["PRUNED"]
            if done >= ctx.target:
                break
            failed = sum(1 for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
                         if t.number >= ctx.first_number)
            if failed > ctx.max_failures:
                print(f"{tag}stopping: {failed} trials failed in this invocation (max_failures {ctx.max_failures})",
                      file=sys.stderr)
                break
            if c["WAITING"] == 0 and done + c["RUNNING"] >= ctx.target:
                lock.release()
                if not waiting_said:
                    print(f"{tag}waiting for {c['RUNNING']} running trial(s) of other workers", file=sys.stderr)
                    waiting_said = True
                time.sleep(min(5, spec.heartbeat.interval))
                continue
            waiting_said = False
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[report], gc_after_trial=True)
            ran += 1
        finally:
            lock.release()
    return ran


def _worker_entry(ctx: Context, index: int, env: dict[str, str] | None = None) -> None:
    """Body of a spawned worker process; `env`: its environment when the workers are spread over several GPUs
    (suite/gpus.py `worker_env`), set before anything here initialises CUDA."""
    from suite.errors import USER_ERRORS

    if env is not None:
        os.environ.update(env)
    try:
        run_worker(ctx, tag=f"[worker {index}] ")
    except KeyboardInterrupt:
        sys.exit(130)
    except USER_ERRORS as exc:
        print(f"error: [worker {index}] {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def one_device_per_trial(spec: StudySpec) -> bool:
    """Whether every trial trains on one device (`trainer.devices`: auto or 1, not searched), so that the workers
    can be spread over the GPUs (suite/gpus.py)."""
    from suite.gpus import one_device

    devices = spec.fixed.get("trainer", {}).get("devices", "auto")
    return one_device(devices) and not any(p.key == "trainer.devices" for p in spec.space)


def run_workers(ctx: Context, workers: int) -> None:
    """One worker in this process, or `workers` spawned processes (each with its own CUDA context)."""
    if workers <= 1:
        run_worker(ctx)
        return
    import multiprocessing as mp

    from suite import gpus

    ids = gpus.visible_gpu_ids() if one_device_per_trial(load(ctx.file)) else []
    spawn = mp.get_context("spawn")
    procs = [spawn.Process(target=_worker_entry, args=(ctx, i, gpus.worker_env(i, ids)),
                           name=f"suite-sweep-worker-{i}") for i in range(workers)]
    for p in procs:
        p.start()
    print(f"started {workers} worker processes: pids {', '.join(str(p.pid) for p in procs)}", file=sys.stderr)
    note = gpus.spread_note(workers, ids)
    if note:
        print(note, file=sys.stderr)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
        raise
    bad = [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
    if bad:
        print("note: " + ", ".join(f"{n} exited with {code}" for n, code in bad)
              + " (their trials are failed by the heartbeat check and re-queued)", file=sys.stderr)

