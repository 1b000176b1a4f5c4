"""How much more a GPU gives when one step carries more samples: the ceiling of any way of training K runs
as one (issue 12, target 5; docs/benchmarks.md).

    PYTHONPATH=$PWD python3 benchmarks/batch_scaling.py [--models s4d,liquid_s4_pb] [--batches 12,24,48,96]

For each model: the graphed ListOps training step (`suite.bench.bench_train`, the default path of `suite run`,
length 2048) at each batch size, and the throughput gain over the recipe's batch of 12. Seeds stacked into one
network (K copies of the channels, their own parameters) do at least the work of a batch of 12 K - each copy
also generates its own SSM kernels - so the gain at batch 12 K bounds what training K runs as one can give;
K processes under CUDA MPS (`benchmarks/many_runs.py`) share the same GPU and the same bound.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="s4d,liquid_s4_pb")
    ap.add_argument("--batches", default="12,24,48,96")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import torch

    from suite.bench import bench_train

    device = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}; graphed ListOps step, length 2048")
    print("| model | batch | samples/s | ms/step | peak GiB | gain over batch 12 |")
    print("|---|---|---|---|---|---|")
    for model in args.models.split(","):
        base = None
        for batch in map(int, args.batches.split(",")):
            r = bench_train(model, device, batch=batch, warmup=10, rounds=args.rounds, steps=20, cuda_graph=True)
            rate = r["samples_per_s"]
            base = base or rate
            print(f"| {model} | {batch} | {rate:.1f} | {1000 * batch / rate:.2f} | {r['peak_gib']:.2f} | "
                  f"{rate / base:.2f}x |", flush=True)
            print(json.dumps({"model": model, "batch": batch, "samples_per_s": round(rate, 1),
                              "peak_gib": round(r["peak_gib"], 3)}), file=sys.stderr, flush=True)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
