"""Do the models learn? A short ListOps training of the paper network on generated data, on one GPU.

    PYTHONPATH=$PWD python benchmarks/learning_check.py [--models s4d liquid_s4_pb] [--n-train 24000]
                                                        [--epochs 4] [--out DIR]

Generates ListOps (`suite data generate listops`, the paper's lengths 500-2000) into a scratch data root,
then trains each model with the `paper` preset and `trainer.cuda_graph=true` for `--epochs` epochs through
the real `suite run` command, logging to an SQLite MLflow store in DIR. Prints, and writes to DIR, a Markdown
table (validation and test accuracy per epoch, wall time) beside the majority-class baseline of the test
split, and a plot of validation accuracy per epoch. This is a sanity check that the whole pipeline learns,
not a reproduction: the paper trains 40 epochs on 96k samples.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def suite(*args: str, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "suite.cli", *args]
    print("$ suite " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)


def majority_baseline(data_root: Path) -> float:
    """Share of the most frequent label in the generated test split (the accuracy of always guessing it)."""
    (test,) = data_root.glob("generated/listops/*/basic_test.tsv")
    labels = [line.split("\t")[1].strip() for line in test.read_text().splitlines()[1:] if line.strip()]
    return Counter(labels).most_common(1)[0][1] / len(labels)


def read_curves(uri: str) -> dict[str, dict[str, list[float]]]:
    """{model: {"val/accuracy": [per epoch], "test/accuracy": [...]}} of the finished learning_check runs."""
    from suite.tracking import store

    curves = {}
    for run in store.finished_runs(uri, store.experiment_id(uri, "learning_check")):
        h = store.metric_histories(uri, run.info.run_id)
        curves[run.data.tags["suite.model"]] = {k: [v for _, v in h.get(k, [])] for k in ("val/accuracy", "test/accuracy")}
    return curves


def plot(curves: dict[str, dict[str, list[float]]], baseline: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for model, c in sorted(curves.items()):
        epochs = range(1, len(c["val/accuracy"]) + 1)
        ax.plot(epochs, c["val/accuracy"], marker="o", label=model)
        ax.set_xticks(list(epochs))
    ax.axhline(baseline, color="grey", linestyle="--", label="majority class")
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="ListOps (generated), paper network")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["s4d", "liquid_s4_pb"])
    p.add_argument("--n-train", type=int, default=24_000)
    p.add_argument("--n-eval", type=int, default=1_000, help="validation and test samples each")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--eager", action="store_true", help="no CUDA graphs (to try the script on a CPU)")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "learning_out")))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data_root = Path(os.environ.get("TMPDIR", "/tmp")) / "learning_check_data"
    env = {**os.environ, "SUITE_DATA": str(data_root), "PYTHONUNBUFFERED": "1"}
    uri = f"sqlite:///{(args.out / 'mlflow.db').resolve()}"
    sizes = [f"data.generator.n_train={args.n_train}", f"data.generator.n_val={args.n_eval}",
             f"data.generator.n_test={args.n_eval}"]
    overrides = [x for s in sizes for x in ("--set", s)]

    t0 = time.perf_counter()
    suite("data", "generate", "listops", *overrides, env=env)
    print(f"generated in {time.perf_counter() - t0:.0f} s", flush=True)
    baseline = majority_baseline(data_root)

    walls = {}
    for model in args.models:
        t0 = time.perf_counter()
        suite("run", "--task", "listops", "--model", model, "--preset", "paper", "--set", "data.source=generated",
              *overrides, "--set", f"trainer.cuda_graph={str(not args.eager).lower()}", "--set", "trainer.progress_bar=false",
              "--max-epochs", str(args.epochs), "--tracking-uri", uri, "--experiment", "learning_check", env=env)
        walls[model] = time.perf_counter() - t0

    curves = read_curves(uri)
    lines = [f"ListOps, generated (n_train {args.n_train}, lengths 500-2000), paper network and optimiser, "
             f"{args.epochs} epochs, {'eager' if args.eager else 'cuda_graph'}. Majority-class test accuracy: {baseline:.4f}.", "",
             "| model | val accuracy per epoch | test accuracy per epoch | wall s |", "|---|---|---|---|"]
    for model, c in sorted(curves.items()):
        wall = walls.get(model, float("nan"))
        lines.append(f"| {model} | {', '.join(f'{v:.4f}' for v in c['val/accuracy'])} | "
                     f"{', '.join(f'{v:.4f}' for v in c['test/accuracy'])} | {wall:.0f} |")
    table = "\n".join(lines)
    print(table)
    (args.out / "learning_check.md").write_text(table + "\n")

    plot(curves, baseline, args.out / "learning_check.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
