"""`suite run` throughput beside the training-step benchmark, in one command (issue 12, target 2: run >= 90 % of step).

    PYTHONPATH=$PWD python benchmarks/loop_overhead.py [--case pb_exact ...] [--n-train 24000] [--out DIR]
    PYTHONPATH=$PWD python benchmarks/loop_overhead.py --cpu      # the host side only, on any machine

On a GPU, for each case (model + overrides) it trains the ListOps network of the Liquid-S4 `paper` recipe (the
network `suite bench --train` times, for every model) through the real `suite.train.run.train` for one epoch of
generated ListOps with the default configuration (CUDA graphs auto, MLflow logging every 50 steps, checkpoints as
configured, validation and test at the epoch's end), and reports side by side:

- `epoch`: training samples per second of the whole epoch, validation and test included (what a user gets; the
  paper's split is 96k / 2k / 2k, kept here in proportion: --n-train, val and test each n_train / 48);
- `after warm-up`: the same from the end of --warmup steps (the training graphs' captures, paid once per run)
  to the end of the evaluation (its graphs' captures included);
- `steady`: samples/s of --steps training steps after --warmup (which covers the captures of the length buckets);
- `bench`: `suite.bench.bench_train` for the same case (CUDA graphs, batch 12 x 2048 at full length);
- the host-GPU synchronisations PyTorch's sync debug mode reports during 20 steady steps (none expected; the log
  point's reads, one per `trainer.log_every_n_steps`, when one falls in them), and the seconds the training thread
  spent in the loggers' `log_metrics` over the epoch (MLflow writes belong to a background thread).

`--profile` adds a cProfile of the training thread over the steady steps (host_profile_CASE_*.txt), `--trace` a
torch.profiler summary of 20 of them (trace_CASE.txt: the GPU's busy time per step, the host's time in each CUDA
runtime call and op), to say whether the host is busy or waiting; both slow the window they measure.

`--cpu` measures the host's share on a machine without a GPU, where the GPU's time cannot be measured: a tiny
network (d_model 8, one layer) so that the step is almost all host work, `suite run`'s milliseconds per training
step against the same network's bare step (forward, loss, backward, AdamW, schedule), the training thread's time in
`log_metrics` per log point, and every read of a tensor value by the host between log points
(suite.train.throughput.HostReads; on a GPU each is a wait). Writes loop_overhead.json and .md to DIR (default $OUT,
else ./loop_out) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = {
    "s4d": ("s4d", []),
    "s4d_network": ("s4d", ["trainer.cuda_graph_scope=network"]),  # the network in graphs, loss and AdamW eager
    "pb_reference_network": ("liquid_s4_pb", ["trainer.cuda_graph_scope=network"]),
    "s4d_torch_norm": ("s4d", []),  # the masked BatchNorm in PyTorch operations (SUITE_TRITON_NORM=0), not in
    "pb_reference_torch_norm": ("liquid_s4_pb", []),  # Triton kernels (models/ops/masked_norm_triton.py)
    "s4d_workers0": ("s4d", ["trainer.num_workers=0"]),  # batches made on the training thread
    "pb_reference_workers0": ("liquid_s4_pb", ["trainer.num_workers=0"]),
    "pb_exact": ("liquid_s4_pb", ["model.liquid_mode=exact"]),
    "pb_reference": ("liquid_s4_pb", []),
    "kb_reference": ("liquid_s4_kb", []),
}


class _LogTime:
    """Seconds the training thread spends in each logger's log_metrics (wrapped at fit start), and the calls."""

    def __init__(self):
        self.seconds, self.calls = 0.0, 0

    def wrap(self, trainer):
        for logger in trainer.loggers:
            inner = logger.log_metrics

            def timed(*args, _inner=inner, **kwargs):
                t0 = time.perf_counter()
                try:
                    return _inner(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - t0
                    self.calls += 1

            logger.log_metrics = timed


def _trace_summary(prof, steps: int, rows: int = 40) -> str:
    """What the host and the GPU did over `steps` steps: the GPU's busy time, and the host's time in each CUDA
    runtime call (a long cudaStreamSynchronize, cudaMemcpy or cudaEventSynchronize is a wait for the GPU) and in
    each op, by its own time."""
    from torch.autograd import DeviceType

    events = prof.key_averages()
    gpu = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA)
    host = [e for e in events if e.device_type == DeviceType.CPU]
    runtime = sorted((e for e in host if e.key.startswith("cuda")), key=lambda e: -e.self_cpu_time_total)
    ops = sorted((e for e in host if not e.key.startswith("cuda")), key=lambda e: -e.self_cpu_time_total)
    lines = [f"GPU busy: {gpu / steps / 1000:.2f} ms per step over {steps} steps", "",
             "CUDA runtime calls, host ms per step (calls per step):"]
    lines += [f"  {e.self_cpu_time_total / steps / 1000:7.3f}  ({e.count / steps:.1f})  {e.key}" for e in runtime[:15]]
    lines += ["", "ops by own host time, ms per step (calls per step):"]
    lines += [f"  {e.self_cpu_time_total / steps / 1000:7.3f}  ({e.count / steps:.1f})  {e.key[:90]}"
              for e in ops[:rows]]
    return "\n".join(lines) + "\n"


def _n_graphs(pl_module) -> int:
    graphed = pl_module._step or pl_module._graphed  # the whole step's graphs, or the network's
    return len(graphed.graphs) if graphed is not None else 0


def _probe(warmup: int, steps: int, record: dict, gpu: bool, profile: Path | None = None, trace: Path | None = None):
    import lightning.pytorch as L
    import torch

    sync = torch.cuda.synchronize if gpu else (lambda: None)
    log_time = _LogTime()

    class Probe(L.Callback):
        """Times the epoch (validation and test included) and steps warmup .. warmup + steps; on a GPU records the
        host-GPU syncs during 20 steps after warmup."""

        def on_fit_start(self, trainer, pl_module):
            log_time.wrap(trainer)

        def on_train_epoch_start(self, trainer, pl_module):
            sync()
            record["epoch_t0"] = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):  # after the epoch's validation and test
            sync()
            now = time.perf_counter()
            record["epoch_seconds"] = now - record["epoch_t0"]
            if "t0" in record:  # from the end of the warm-up (the training captures) to the end of the evaluation
                record["late_seconds"] = now - record["t0"]
            record["log_seconds"], record["log_calls"] = log_time.seconds, log_time.calls

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            step = trainer.global_step
            record["epoch_samples"] = record.get("epoch_samples", 0) + len(batch[1])
            if step > warmup:
                record["late_samples"] = record.get("late_samples", 0) + len(batch[1])
            if step == warmup:
                sync()
                record["t0"] = time.perf_counter()
                record["cpu0"] = time.thread_time()
                record["graphs_at_t0"] = _n_graphs(pl_module)
                record["syncs"] = []
                if gpu:
                    torch.cuda.set_sync_debug_mode("warn")
                    warnings.simplefilter("always")
                    self._show, warnings.showwarning = warnings.showwarning, self._record
            elif step == warmup + 20 and gpu:
                torch.cuda.set_sync_debug_mode(0)
                warnings.showwarning = self._show
                if trace is not None:  # the CUDA runtime calls and kernels of the next 20 steps
                    self._trace = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                                     torch.profiler.ProfilerActivity.CUDA])
                    self._trace.__enter__()
                else:
                    self._start_profile()
            elif step == warmup + 40 and getattr(self, "_trace", None) is not None:
                sync()
                self._trace.__exit__(None, None, None)
                trace.write_text(_trace_summary(self._trace, steps=20))
                self._trace = None
                self._start_profile()
            elif step == warmup + steps:
                sync()
                record["seconds"] = time.perf_counter() - record["t0"]
                record["thread_cpu_seconds"] = time.thread_time() - record["cpu0"]
                if getattr(self, "_profiler", None) is not None:
                    self._profiler.disable()
                    self._profiler.dump_stats(str(profile))
                    self._profiler = None
                record["steps"] = steps
                record["batch"] = len(batch[1])
                record["graphs"] = _n_graphs(pl_module)  # more than graphs_at_t0: captures inside the window

        def _start_profile(self):
            if profile is not None:  # the host's time by function over the rest of the steady steps
                import cProfile

                self._profiler = cProfile.Profile()
                self._profiler.enable()

        def _record(self, message, category, filename, lineno, file=None, line=None):
            stack = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}"
                     for f in traceback.extract_stack()[:-2][-12:]]
            record["syncs"].append({"message": str(message)[:120], "stack": stack})

    return Probe()


def run_case(name: str, args, out: Path) -> dict:
    import torch

    from suite.bench import bench_train
    from suite.config import resolve
    from suite.train.run import train

    from models import padding

    model, overrides = CASES[name]
    padding.TRITON_NORM = not name.endswith("_torch_norm")  # for the run and its bench alike
    n_eval = max(args.n_train // 48, 12)
    sets = ["data.source=generated", f"data.generator.n_train={args.n_train}", f"data.generator.n_val={n_eval}",
            f"data.generator.n_test={n_eval}", *overrides]
    flags = {"trainer": {"max_epochs": 1},
             "data": {"root": str(Path(args.data_dir).resolve())},
             "tracking": {"uri": f"sqlite:///{(out / 'mlflow.db').resolve()}", "experiment": "loop-overhead"}}
    cfg = resolve("listops", model, "paper", None, sets, flags, recipe="liquid_s4")
    record: dict = {"case": name, "model": model, "overrides": overrides, "n_train": args.n_train, "n_eval": n_eval}
    profile = out / f"host_profile_{name}.prof" if args.profile else None
    trace = out / f"trace_{name}.txt" if args.trace else None
    train(cfg, callbacks=[_probe(args.warmup, args.steps, record, gpu=True, profile=profile, trace=trace)],
          extra_tags={"suite.kind": "loop-overhead"})
    if profile is not None:
        import io
        import pstats

        for order in ("cumulative", "tottime"):
            text = io.StringIO()
            pstats.Stats(str(profile), stream=text).sort_stats(order).print_stats(45)
            (out / f"host_profile_{name}_{order}.txt").write_text(text.getvalue())
    steady = record["steps"] * record["batch"] / record["seconds"]
    epoch = record["epoch_samples"] / record["epoch_seconds"]
    late = record["late_samples"] / record["late_seconds"]
    bench = bench_train(model, torch.device("cuda"), overrides=overrides, cuda_graph=True)["samples_per_s"]
    return {**record, "epoch_samples_per_s": epoch, "steady_samples_per_s": steady, "bench_samples_per_s": bench,
            "epoch_ratio": epoch / bench, "late_epoch_samples_per_s": late, "late_epoch_ratio": late / bench,
            "steady_ratio": steady / bench, "n_syncs": len(record.get("syncs", [])),
            "steady_ms_per_step": 1000 * record["seconds"] / record["steps"],
            "host_cpu_ms_per_step": 1000 * record["thread_cpu_seconds"] / record["steps"],
            "bench_ms_per_step": 1000 * record["batch"] / bench}


def run_cpu(args, out: Path) -> dict:
    """The host's share: `suite run` vs the bare step on a tiny network, on the CPU (see the module docstring)."""
    import lightning.pytorch as L  # noqa: F401
    import torch
    import torch.nn.functional as F

    from suite.config import resolve
    from suite.train.optim import make_optimizer
    from suite.train.build import build_model
    from suite.train.run import train
    try:
        from suite.train.throughput import HostReads
    except ImportError:  # a tree from before it (a before/after comparison)
        HostReads = None

    warmup, steps, every = 10, args.cpu_steps, 10
    tiny = ["model.d_model=8", "model.n_layers=1", "data.generator.max_length=40", "trainer.limit_val_batches=2",
            f"data.generator.n_train={32 * (warmup + steps + 2 * every + 5)}", f"trainer.log_every_n_steps={every}",
            "trainer.progress_bar=false"]
    flags = {"trainer": {"max_steps": warmup + steps + 2 * every, "max_epochs": 1, "accelerator": "cpu"},
             "data": {"root": str(Path(args.data_dir).resolve())},
             "tracking": {"uri": f"sqlite:///{(out / 'mlflow.db').resolve()}", "experiment": "loop-overhead"}}
    cfg = resolve("listops", "s4d", "smoke", None, tiny, flags)
    record: dict = {}
    # reads recorded after the timed steps: the recording slows every torch call
    reads = HostReads(warmup + steps, warmup + steps + 2 * every - 1) if HostReads else None
    train(cfg, callbacks=[_probe(warmup, steps, record, gpu=False), *([reads] if reads else [])])
    run_ms = 1000 * record["seconds"] / steps

    # the bare step of the same network on batches of the same shape
    from suite.train.build import load_task

    data = load_task(cfg)
    torch.manual_seed(0)
    net = build_model(cfg, data)
    opt, sched, _ = make_optimizer(net, cfg.optim, total_steps=10**6)
    x, y, lengths = data.collate([data.train[i] for i in range(cfg.trainer.batch_size)])

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x, lengths), y).backward()
        opt.step()
        sched.step()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    bare_ms = 1000 * (time.perf_counter() - t0) / steps

    def host_memory_anyway(r):
        # data loading and AdamW's step counters: host tensors on a GPU too; the divergence check reads the loss
        # at once on a CPU only (on a GPU at the log points: suite/train/guards.py)
        return any("torch/utils/data/" in f or "torch/optim/" in f for f in r["where"]) or (
            "suite/train/guards.py" in r["where"][-1] and "on_train_batch_end" in r["where"][-1])

    log_points = {s for s in reads.steps if (s + 1) % every == 0} if reads else set()
    device = [r for r in reads.reads if not host_memory_anyway(r)] if reads else []
    between = [r for r in device if r["step"] not in log_points]
    return {"case": "cpu", "steps": steps, "run_ms_per_step": run_ms, "bare_ms_per_step": bare_ms,
            "loop_ms_per_step": run_ms - bare_ms, "log_calls": record["log_calls"],
            "log_ms_per_call": 1000 * record["log_seconds"] / max(record["log_calls"], 1),
            "reads_between_log_points": len(between), "reads_at_log_points": len(device) - len(between),
            "read_sources": sorted({r["where"][-1] for r in device})}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", action="append", choices=sorted(CASES), help="repeatable; default all")
    p.add_argument("--n-train", type=int, default=24000, help="training samples (an epoch of n_train / 12 steps)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--profile", action="store_true",
                   help="cProfile the training thread over the steady steps after the first 20 (GPU cases): "
                        "host_profile_CASE_{cumulative,tottime}.txt in DIR; the timings then include its cost")
    p.add_argument("--trace", action="store_true",
                   help="torch.profiler over steps 20-40 of the steady window (GPU cases): the GPU's busy time and the "
                        "host's time in CUDA runtime calls and ops, trace_CASE.txt in DIR")
    p.add_argument("--cpu", action="store_true", help="the host's share on the CPU (automatic without a GPU)")
    p.add_argument("--cpu-steps", type=int, default=100)
    p.add_argument("--out", default=os.environ.get("OUT") or "loop_out")
    p.add_argument("--data-dir", default=os.environ.get("SUITE_DATA") or "/tmp/loop_data")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    if args.cpu or not torch.cuda.is_available():
        row = run_cpu(args, out)
        text = (f"`suite run` on the CPU, tiny ListOps network, {row['steps']} steps: {row['run_ms_per_step']:.1f} ms "
                f"per step against {row['bare_ms_per_step']:.1f} ms for the bare step (loop: "
                f"{row['loop_ms_per_step']:+.1f} ms); log_metrics on the training thread: {row['log_ms_per_call']:.2f} "
                f"ms per call ({row['log_calls']} calls); tensor reads by the host: {row['reads_between_log_points']} "
                f"between log points, {row['reads_at_log_points']} at them ({', '.join(row['read_sources'])})")
        print(json.dumps(row))
        print(text)
        (out / "loop_overhead.json").write_text(json.dumps([row], indent=1))
        (out / "loop_overhead.md").write_text(text + "\n")
        return 0
    rows = []
    for name in args.case or list(CASES):
        try:
            rows.append(run_case(name, args, out))
        except Exception as exc:  # report and go on with the next case
            rows.append({"case": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "syncs"}), flush=True)
        (out / "loop_overhead.json").write_text(json.dumps(rows, indent=1))
    lines = [f"`suite run` (default path) beside `suite bench --train` (CUDA graphs), ListOps network of the Liquid-S4 "
             f"paper recipe, batch 12; {torch.cuda.get_device_name(0)}, torch {torch.__version__}; one epoch of "
             f"{args.n_train} generated samples with validation and test; steady: {args.steps} steps after "
             f"{args.warmup}", "",
             "| case | bench samples/s | suite run epoch samples/s | epoch / bench | after warm-up, with eval | "
             "/ bench | steady samples/s | steady / bench | syncs in 20 steps | log_metrics s on the training thread |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | error: {r['error'][:80]} | | | | | | | | |")
        else:
            lines.append(f"| {r['case']} | {r['bench_samples_per_s']:.1f} | {r['epoch_samples_per_s']:.1f} | "
                         f"{r['epoch_ratio']:.2f} | {r['late_epoch_samples_per_s']:.1f} | {r['late_epoch_ratio']:.2f} | "
                         f"{r['steady_samples_per_s']:.1f} | {r['steady_ratio']:.2f} | "
                         f"{r['n_syncs']} | {r['log_seconds']:.2f} ({r['log_calls']} calls) |")
    text = "\n".join(lines)
    print(text)
    (out / "loop_overhead.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
