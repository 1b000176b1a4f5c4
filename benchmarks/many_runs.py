"""Total throughput of K small runs sharing one GPU, with and without CUDA MPS (issue 12, target 5).

    PYTHONPATH=$PWD python benchmarks/many_runs.py [--model s4d] [--workers 1 4 8] [--steps 1500] [--out DIR]

Each configuration starts K real `suite run` processes at once (the ListOps `paper` network of the model, on
generated ListOps, seeds 1..K, CUDA graphs as by default), each training `--steps` optimizer steps, and
waits for all of them: K = 1 is the single run; K > 1 once time-sliced (`--mps off`) and once under the MPS
daemon the suite starts (`suite/mps.py`, what `suite batch --workers K` and `suite sweep --workers K` do).
Per configuration it reports:
  - aggregate samples/s: the sum over the K runs of each run's median `perf/samples_per_s` (logged every 50
    steps while training, validation excluded) - the runs start together, so their steady phases overlap;
  - makespan: seconds from the launch to the last exit (process start, data loading, graph capture included);
  - speed-up: aggregate samples/s over the single run's.
Writes many_runs.json and many_runs.md to DIR (default $OUT, else ./many_runs_out) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = ["data.generator.n_train=24000", "data.generator.n_val=240", "data.generator.n_test=240"]


def _sets(steps: int) -> list[str]:
    return ["data.source=generated", *SIZES, "trainer.max_epochs=1", f"trainer.limit_train_batches={steps}",
            "trainer.limit_val_batches=2", "trainer.progress_bar=false"]


def launch(k: int, mode: str, model: str, steps: int, store: str, data: Path, logs: Path) -> dict:
    """K `suite run` processes at once under `mps_for_workers(k, mode)`; their per-run rates from the store."""
    from suite.mps import mps_for_workers

    tag = f"k{k}-{mode}"
    procs = []
    with mps_for_workers(k, mode) as how:
        t0 = time.perf_counter()
        for i in range(1, k + 1):
            cmd = [sys.executable, "-m", "suite.cli", "run", "--task", "listops", "--model", model, "--preset",
                   "paper", "--seed", str(i), "--run-name", f"{tag}-{i}", "--tracking-uri", store,
                   "--experiment", "many_runs", "--data-dir", str(data)]
            cmd += [a for s in _sets(steps) for a in ("--set", s)]
            log = (logs / f"{tag}-{i}.log").open("w")
            procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), log))
        codes = [p.wait() for p, _ in procs]
        makespan = time.perf_counter() - t0
    for _, log in procs:
        log.close()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    exp = client.get_experiment_by_name("many_runs")
    rates = []
    for i in range(1, k + 1):
        runs = client.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{tag}-{i}'")
        history = [m.value for m in client.get_metric_history(runs[0].info.run_id, "perf/samples_per_s")] if runs else []
        rates.append(statistics.median(history[1:] or history) if history else float("nan"))
    return {"k": k, "mode": mode, "mps": how, "exit_codes": codes, "makespan_s": round(makespan, 1),
            "per_run_samples_per_s": [round(r, 1) for r in rates], "aggregate_samples_per_s": round(sum(rates), 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="s4d")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--modes", nargs="+", default=["on", "off"], choices=["on", "off", "auto"],
                   help="--mps modes to measure for K > 1, in this order (default: on off)")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "many_runs_out")))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "many_runs_logs"
    logs.mkdir(exist_ok=True)
    store = f"sqlite:///{(args.out / 'many_runs.db').resolve()}"
    data = (args.out / "data").resolve()
    gen = [sys.executable, "-m", "suite.cli", "data", "generate", "listops", "--data-dir", str(data)]
    subprocess.run(gen + [a for s in SIZES for a in ("--set", s)], check=True, cwd=ROOT)

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    rows = []
    for k in args.workers:
        for mode in (["off"] if k == 1 else args.modes):
            row = launch(k, mode, args.model, args.steps, store, data, logs)
            rows.append(row)
            print(json.dumps(row), flush=True)
    single = next((r["aggregate_samples_per_s"] for r in rows if r["k"] == 1), None)
    lines = [f"# Many runs on one GPU: {args.model}, {args.steps} steps each, {gpu}, "
             f"{time.strftime('%Y-%m-%d')}", "",
             f"Command: `PYTHONPATH=$PWD python benchmarks/many_runs.py --model {args.model} --workers "
             f"{' '.join(map(str, args.workers))} --steps {args.steps}`", "",
             "| K | MPS | aggregate samples/s | × single run | makespan s | per-run samples/s | exit codes |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['aggregate_samples_per_s'] / single:.2f}×" if single else "–"
        lines.append(f"| {r['k']} | {r['mps']} | {r['aggregate_samples_per_s']} | {ratio} | {r['makespan_s']} | "
                     f"{', '.join(map(str, r['per_run_samples_per_s']))} | {r['exit_codes']} |")
    table = "\n".join(lines)
    print(table)
    (args.out / "many_runs.md").write_text(table + "\n")
    (args.out / "many_runs.json").write_text(json.dumps({"gpu": gpu, "model": args.model, "steps": args.steps,
                                                         "rows": rows}, indent=1))
    return 0 if all(c == 0 for r in rows for c in r["exit_codes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
