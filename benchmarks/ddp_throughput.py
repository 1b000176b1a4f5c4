"""Training throughput on 1 and on 2 GPUs through Lightning DDP (the real `suite.train.run.train` path).

    PYTHONPATH=$PWD python benchmarks/ddp_throughput.py [--gpus 1,2] [--model s4d] [--steps 200] [--out DIR]
                                                        [--cuda-graph]   (one GPU: trainer.cuda_graph=true)

For each GPU count it starts one process (`... measure --devices N`; Lightning starts the other ranks
itself), trains the ListOps paper network (batch 12 per GPU, length up to 2048, generated data) for
`--warmup` + `--steps` optimizer steps, and times the last `--steps` on rank 0 between CUDA
synchronisations. Prints a Markdown table (samples/s, scaling) and writes it, with one JSON per GPU
count and the MLflow store of the runs, to DIR (default $OUT, else ./ddp_out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _sync() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _timer_callback(warmup: int, steps: int, result_file: Path):
    import lightning.pytorch as L
    import torch

    class Timer(L.Callback):
        """Wall time of optimizer steps warmup+1 .. warmup+steps, measured on rank 0."""

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == warmup:
                _sync()
                self.t0 = time.perf_counter()
            elif trainer.global_step == warmup + steps:
                _sync()
                seconds = time.perf_counter() - self.t0
                world = trainer.world_size
                batch_size = len(batch[1])
                if trainer.is_global_zero:
                    result_file.write_text(json.dumps({
                        "gpus": world, "steps": steps, "seconds": seconds, "batch_per_gpu": batch_size,
                        "samples_per_s": steps * batch_size * world / seconds, "steps_per_s": steps / seconds,
                        "device": torch.cuda.get_device_name(0) if trainer.strategy.root_device.type == "cuda" else "cpu",
                        "torch": torch.__version__,
                    }, indent=2))

    return Timer()


def measure(args) -> int:
    from suite.config import resolve
    from suite.train.run import train

    out = Path(args.out)
    sets = ["data.source=generated", f"data.generator.n_train={args.n_train}", "data.generator.n_val=240",
            "data.generator.n_test=240", "trainer.progress_bar=false", "trainer.limit_val_batches=2",
            "trainer.checkpoint_every_minutes=null"] + (["trainer.cuda_graph=true"] if args.cuda_graph else [])
    flags = {"trainer": {"accelerator": args.accelerator, "devices": args.devices, "strategy": "ddp" if args.devices > 1 else "auto",
                         "max_steps": args.warmup + args.steps, "max_epochs": 1, "precision": args.precision},
             "data": {"root": str(Path(args.data_dir).resolve())},
             "tracking": {"uri": f"sqlite:///{(out / 'mlflow.db').resolve()}", "experiment": "ddp-bench"}}
    cfg = resolve("listops", args.model, "paper", None, sets, flags)
    train(cfg, callbacks=[_timer_callback(args.warmup, args.steps, out / f"ddp_{args.devices}gpu.json")],
          extra_tags={"suite.kind": "ddp-bench"})
    return 0


def drive(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    counts = [int(g) for g in args.gpus.split(",")]
    n_train = 12 * max(counts) * (args.warmup + args.steps + 20)  # the same data for every count; one epoch outlasts
    for n in counts:
        cmd = [sys.executable, __file__, "measure", "--devices", str(n), "--model", args.model, "--steps",
               str(args.steps), "--warmup", str(args.warmup), "--precision", args.precision, "--out", str(out),
               "--accelerator", args.accelerator,
               "--data-dir", args.data_dir, "--n-train", str(n_train)] + (["--cuda-graph"] if args.cuda_graph else [])
        print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        with open(out / f"ddp_{n}gpu.log", "w") as log:
            code = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        result = out / f"ddp_{n}gpu.json"
        if code != 0 or not result.exists():
            print(f"{n} GPU(s): failed (exit {code}); see {out / f'ddp_{n}gpu.log'}", file=sys.stderr)
            continue
        rows.append(json.loads(result.read_text()))
    if not rows:
        return 1
    base = rows[0]["samples_per_s"] / rows[0]["gpus"]
    mode = "CUDA graphs (trainer.cuda_graph)" if args.cuda_graph else "eager"
    lines = [f"ListOps paper network ({args.model}, {mode}), batch {rows[0]['batch_per_gpu']} per GPU, {args.precision}, "
             f"{args.steps} timed steps after {args.warmup}; {rows[0]['device']}, torch {rows[0]['torch']}", "",
             "| GPUs | samples/s | steps/s | scaling vs 1 GPU (ideal = GPUs) |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['gpus']} | {r['samples_per_s']:.1f} | {r['steps_per_s']:.2f} | "
                     f"{r['samples_per_s'] / base:.2f} |")
    text = "\n".join(lines)
    print(text)
    (out / "ddp_throughput.md").write_text(text + "\n")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", default="drive", choices=["drive", "measure"])
    p.add_argument("--gpus", default="1,2", help="GPU counts to compare (drive)")
    p.add_argument("--devices", type=int, default=1, help="GPUs of this measurement (measure)")
    p.add_argument("--model", default="s4d")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--precision", default="32-true")
    p.add_argument("--cuda-graph", action="store_true", help="train with trainer.cuda_graph=true (one GPU)")
    p.add_argument("--accelerator", default="gpu", help="gpu (the benchmark) or cpu (a check of this script, gloo)")
    p.add_argument("--n-train", type=int, default=6000, help="generated training samples (measure; drive sets it)")
    p.add_argument("--out", default=os.environ.get("OUT") or "ddp_out")
    p.add_argument("--data-dir", default=os.environ.get("SUITE_DATA") or "/tmp/ddp_bench_data")
    args = p.parse_args()
    return measure(args) if args.mode == "measure" else drive(args)


if __name__ == "__main__":
    sys.exit(main())
