"""One time-limited job of the ListOps reproduction (issue 13, docs/reproduction.md), for a GPU machine whose
commands are limited in time (a SLURM allocation, the device tool's 10-minute commands).

    PYTHONPATH=$PWD python3 benchmarks/reproduction_job.py RUN [RUN ...] --deadline SECONDS --out DIR

For each RUN (a name from RUNS below), one after the other on the same GPU:
  - a run of that name in the local store that is not finished is continued (`suite run --resume`);
  - else, with a bundle of it under results/reproduction/listops/RUN/, the bundle is imported and continued;
  - else the run starts, from its `paper` recipe on generated ListOps at the paper sizes.
Each trains with `--time-limit` until SECONDS after this script started (less a margin for the export), then is
exported with `suite export` and packed as DIR/RUN.tar.00, .01, ... (parts of 15 MiB; `cat RUN.tar.* | tar -x -C
results/reproduction/listops` unpacks the bundle). A finished run is exported and left alone. One line per run.
With --parallel the runs train at the same time instead: on a machine with several GPUs, run i on GPU i mod N.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "results" / "reproduction" / "listops"
GENERATED = ["data.source=generated"]  # the paper sizes are the generator's defaults (96k / 2k / 2k)

# name -> (model, extra overrides): the six runs of issue 13, in its order
RUNS = {
    "liquid_s4_pb-s2222": ("liquid_s4_pb", []),
    "s4d-s3333": ("s4d", []),
    "s4-s3333": ("s4", []),
    "liquid_s4_pb-liquid_off-s2222": ("liquid_s4_pb", ["model.liquid_kernel=none"]),
    "liquid_s4_kb-s2222": ("liquid_s4_kb", []),
    "liquid_s4_pb-exact-s2222": ("liquid_s4_pb", ["model.liquid_mode=exact"]),
}
EXPORT_MARGIN_S = 25.0  # what the export and the process start need after the run stops


def suite(*args: str, capture: bool = False, log: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`suite ARGS` in a subprocess (environment `env`, else this one's); its output to this terminal, or
    appended to `log`."""
    cmd = [sys.executable, "-m", "suite.cli", *args]
    print("$ suite " + " ".join(args), flush=True)
    if log is None:
        return subprocess.run(cmd, cwd=ROOT, text=True, stdout=subprocess.PIPE if capture else None, env=env)
    with log.open("a") as f:
        f.write("$ suite " + " ".join(args) + "\n")
        f.flush()
        return subprocess.run(cmd, cwd=ROOT, text=True, stdout=subprocess.PIPE if capture else f,
                              stderr=subprocess.STDOUT if not capture else f, env=env)


def find_run(name: str) -> tuple[str, str] | None:
    """(run id, status) of the newest run called `name` in the checkout's store, or None."""
    from suite.tracking import store, uris

    uri = uris.resolve_uri(None)
    if uris.sqlite_path(uri) is None or not uris.sqlite_path(uri).exists():
        return None
    runs = store.search_runs(uri, store.experiment_ids(uri), f"attributes.run_name = '{name}'",
                             order_by=["attributes.start_time DESC"], max_results=1)
    return (runs[0].info.run_id, runs[0].info.status) if runs else None


def pack(out: Path, name: str, part_bytes: int = 15 * 2**20) -> None:
    """DIR/NAME/ -> DIR/NAME.tar.00, .01, ... of at most `part_bytes` each (the device tool brings back at most 8 files
    of 16 MiB): `cat NAME.tar.* | tar -x -C results/reproduction/listops` puts the bundle back together."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        tar.add(out / name, arcname=name)
    blob = data.getvalue()
    for i in range(0, len(blob), part_bytes):
        (out / f"{name}.tar.{i // part_bytes:02d}").write_bytes(blob[i:i + part_bytes])
    shutil.rmtree(out / name)


def job(name: str, deadline: float, out: Path, bundles: Path, preset: str, sets: list[str],
        log: Path | None = None, env: dict[str, str] | None = None) -> int:
    model, extra = RUNS[name]
    left = deadline - time.monotonic() - EXPORT_MARGIN_S
    if left < 60:
        print(f"{name}: {left:.0f} s left, not started", flush=True)
        return 0
    limit = f"{int(left)}s"
    found = find_run(name)
    if found is None and (bundles / name / "summary.json").exists():
        imported = suite("import", str(bundles / name), capture=True, log=log)
        if imported.returncode != 0:
            return imported.returncode
        found = find_run(name)
    if found is None:
        code = suite("run", "--task", "listops", "--model", model, "--preset", preset, "--run-name", name,
                     "--time-limit", limit, *[a for o in GENERATED + extra + sets for a in ("--set", o)],
                     log=log, env=env).returncode
        found = find_run(name)
    elif found[1] != "FINISHED":
        code = suite("run", "--resume", found[0], "--time-limit", limit, log=log, env=env).returncode
    else:
        code = 0
    if found is not None and suite("export", found[0], str(out / name), log=log).returncode == 0:
        pack(out, name)
    print(f"{name}: exit {code} ({ {0: 'finished', 75: 'stopped at the time limit'}.get(code, 'failed') })",
          flush=True)
    return code


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", choices=list(RUNS))
    p.add_argument("--deadline", type=float, required=True, help="seconds from now at which every run has stopped")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "repro_out")))
    p.add_argument("--bundles", type=Path, default=BUNDLES, help="where earlier jobs' bundles are (default: %(default)s)")
    p.add_argument("--preset", default="paper", help="the recipe preset (smoke: a dry run of this script on a CPU)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra overrides for a new run")
    p.add_argument("--parallel", action="store_true",
                   help="train the runs at the same time, one per GPU when there are several (suite/gpus.py), else "
                        "sharing the GPU through a CUDA MPS daemon the suite starts (suite/mps.py); each run's "
                        "output in DIR/RUN.log")
    args = p.parse_args()
    deadline = time.monotonic() + args.deadline
    args.out.mkdir(parents=True, exist_ok=True)
    if args.parallel and len(args.runs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        from suite import gpus
        from suite.mps import mps_for_workers

        ids = gpus.visible_gpu_ids()
        print(gpus.spread_note(len(args.runs), ids) or f"{len(args.runs)} runs at a time", flush=True)
        with mps_for_workers(len(args.runs), "auto"), ThreadPoolExecutor(len(args.runs)) as pool:
            codes = list(pool.map(lambda i: job(args.runs[i], deadline, args.out, args.bundles, args.preset, args.set,
                                                log=args.out / f"{args.runs[i]}.log", env=gpus.worker_env(i, ids)),
                                  range(len(args.runs))))
    else:
        codes = [job(name, deadline, args.out, args.bundles, args.preset, args.set) for name in args.runs]
    return 0 if all(c in (0, 75) for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
