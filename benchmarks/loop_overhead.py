"""`suite run` throughput against the training-step benchmark, and the GPU reads left in its loop (issue 12, target 2).

    PYTHONPATH=$PWD python benchmarks/loop_overhead.py [--case s4d] [--steps 200] [--warmup 40] [--out DIR]

For each case (model + overrides) it trains the ListOps network of the Liquid-S4 `paper` recipe (the network
`suite bench --train` times, for every model) through the real `suite.run.train` on generated ListOps, with the
default configuration (CUDA graphs auto, progress bar on, MLflow logging every 50 steps, checkpoints as
configured), and times `--steps` optimizer steps after `--warmup` (which covers the captures of the length
buckets) between two CUDA synchronisations. During 20 steady steps it turns on PyTorch's sync debug mode and
records every operation that made the host wait for the GPU (there should be none; one per log interval at most).
Then it runs `suite.bench.bench_train` (CUDA graphs, batch 12 x 2048, full length) for the same case. Writes
loop_overhead.json and loop_overhead.md to DIR (default $OUT, else ./loop_out) and prints the table.
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
    "pb_exact": ("liquid_s4_pb", ["model.liquid_mode=exact"]),
    "pb_reference": ("liquid_s4_pb", []),
    "kb_reference": ("liquid_s4_kb", []),
}


def _probe(warmup: int, steps: int, record: dict):
    import lightning.pytorch as L
    import torch

    class Probe(L.Callback):
        """Times steps warmup .. warmup + steps; records host-GPU syncs during 20 steps after warmup."""

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            step = trainer.global_step
            if step == warmup:
                torch.cuda.synchronize()
                record["t0"] = time.perf_counter()
                record["syncs"] = []
                torch.cuda.set_sync_debug_mode("warn")
                warnings.simplefilter("always")
                self._show, warnings.showwarning = warnings.showwarning, self._record
            elif step == warmup + 20:
                torch.cuda.set_sync_debug_mode(0)
                warnings.showwarning = self._show
            elif step == warmup + steps:
                torch.cuda.synchronize()
                record["seconds"] = time.perf_counter() - record["t0"]
                record["steps"] = steps
                record["batch"] = len(batch[1])
                record["graphs"] = len(pl_module._graphed.graphs) if pl_module._graphed is not None else 0

        def _record(self, message, category, filename, lineno, file=None, line=None):
            stack = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}"
                     for f in traceback.extract_stack()[:-2][-12:]]
            record["syncs"].append({"message": str(message)[:120], "stack": stack})

    return Probe()


def run_case(name: str, args, out: Path) -> dict:
    import torch

    from suite.bench import bench_train
    from suite.config import resolve
    from suite.run import train

    model, overrides = CASES[name]
    n_train = 12 * (args.warmup + args.steps + 20)
    sets = ["data.source=generated", f"data.generator.n_train={n_train}", "data.generator.n_val=120",
            "data.generator.n_test=120", "trainer.limit_val_batches=2", *overrides]
    flags = {"trainer": {"max_steps": args.warmup + args.steps, "max_epochs": 1},
             "data": {"root": str(Path(args.data_dir).resolve())},
             "tracking": {"uri": f"sqlite:///{(out / 'mlflow.db').resolve()}", "experiment": "loop-overhead"}}
    cfg = resolve("listops", model, "paper", None, sets, flags, recipe="liquid_s4")
    record: dict = {"case": name, "model": model, "overrides": overrides}
    train(cfg, callbacks=[_probe(args.warmup, args.steps, record)], extra_tags={"suite.kind": "loop-overhead"})
    run_sps = record["steps"] * record["batch"] / record["seconds"]
    bench = bench_train(model, torch.device("cuda"), overrides=overrides, cuda_graph=True)
    return {**record, "run_samples_per_s": run_sps, "bench_samples_per_s": bench["samples_per_s"],
            "ratio": run_sps / bench["samples_per_s"], "n_syncs": len(record.get("syncs", []))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", action="append", choices=sorted(CASES), help="repeatable; default all")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--out", default=os.environ.get("OUT") or "loop_out")
    p.add_argument("--data-dir", default=os.environ.get("SUITE_DATA") or "/tmp/loop_data")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.case or list(CASES):
        try:
            rows.append(run_case(name, args, out))
        except Exception as exc:  # report and go on with the next case
            rows.append({"case": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "syncs"}), flush=True)
        (out / "loop_overhead.json").write_text(json.dumps(rows, indent=1))
    import torch

    lines = [f"`suite run` (default path) vs `suite bench --train` (CUDA graphs), ListOps network of the Liquid-S4 "
             f"paper recipe, batch 12; {torch.cuda.get_device_name(0)}, torch {torch.__version__}; {args.steps} "
             f"steps after {args.warmup}", "",
             "| case | suite run samples/s | bench samples/s | run / bench | host-GPU syncs in 20 steps |",
             "|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | error: {r['error'][:80]} | | | |")
        else:
            lines.append(f"| {r['case']} | {r['run_samples_per_s']:.1f} | {r['bench_samples_per_s']:.1f} | "
                         f"{r['ratio']:.2f} | {r['n_syncs']} |")
    text = "\n".join(lines)
    print(text)
    (out / "loop_overhead.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
