"""ListOps generation time by number of workers, and the check that every worker count gives the same splits
(issue 12, target 6; docs/data.md "Parallel ListOps generation").

    PYTHONPATH=$PWD python benchmarks/listops_generation.py [--n-train 24000] [--workers 1 2 0]

The paper's parameters (lengths 501-1999, depth 10, 10 arguments, seed 0), n_train training samples and
n_train / 48 each for validation and test (the paper's 96k / 2k / 2k in proportion). Prints one line per
worker count (0 = every core) and the speed-up against the first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=24000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 0])
    args = p.parse_args()
    from tasks.generators import listops as gen

    n_eval = args.n_train // 48
    first = seconds0 = None
    print(f"{os.cpu_count()} cores; {args.n_train + 2 * n_eval} expressions at the paper's parameters, seed 0")
    for workers in args.workers:
        t0 = time.perf_counter()
        splits = gen.generate(args.n_train, n_eval, n_eval, seed=0, progress=False, workers=workers)
        seconds = time.perf_counter() - t0
        first, seconds0 = (splits, seconds) if first is None else (first, seconds0)
        same = "same splits" if splits == first else "DIFFERENT SPLITS"
        print(f"workers {workers or gen.default_workers()} ({workers}): {seconds:.1f} s, "
              f"{seconds0 / seconds:.2f}x the first, {same}", flush=True)
        if splits != first:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
