"""The `suite` command: one table from verb to function, heavy imports deferred to the verb.

`VERBS` maps each verb to its function and the arguments it takes; options several verbs share
(`--tracking-uri`, `--data-dir`, `--preset`/`--config`/`--set`, the committed bundles) are declared once,
as argparse parent parsers. Errors a user can act on (bad config, unknown name, missing data, unreachable
store) are printed as one paragraph with the fix and a distinct exit code; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from suite import __version__

EPILOG = """\
examples:
  suite list
  suite run --task listops --model s4d --preset smoke
  suite run --task listops --model s4d --set model.d_state=32 --set optim.lr=0.002 --print-config
  suite data status
  suite data generate listops --set data.generator.n_train=2000
  suite sweep sweeps/smoke.yaml --workers 2
  suite table lra --format latex --out results/tables/lra.tex
  suite ui

Runs are tracked in MLflow: by default the SQLite store results/mlflow.db of this checkout
(override with --tracking-uri or MLFLOW_TRACKING_URI). Data lives under data/ of this checkout
(override with --data-dir or SUITE_DATA).
"""

MPS_HELP = ("K > 1 {what} on one GPU share it through a CUDA MPS daemon the suite starts and stops (auto: when "
            "nvidia-cuda-mps-control is there; default auto)")


# ------------------------------------------------------------------------------------------------
# verbs
# ------------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from suite import registry
    from suite.config import preset_names, recipe_path

    print("tasks:")
    for name, e in registry.TASKS.items():
        presets = ", ".join(preset_names(name)) if recipe_path(name).is_file() else "-"
        print(f"  {name:<12} {e.description}  (family {e.family}; presets: {presets})")
    print("models:")
    for name, e in registry.MODELS.items():
        print(f"  {name:<12} {e.description}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """`suite run` does one of four things, chosen by its flags in this order."""
    if args.resume:
        return run_resume(args)
    if args.print_config:
        return run_print_config(args)
    if args.from_run:
        return run_from_run(args)
    return run_train(args)


def run_train(args: argparse.Namespace) -> int:
    """`suite run --task T --model M`: train one run."""
    from suite.train.run import train

    cfg = _resolve_config(args)
    _mark_stale_runs(cfg.tracking.uri)
    train(cfg)
    return 0


def run_resume(args: argparse.Namespace) -> int:
    """`suite run --resume RUN_ID`: continue an interrupted run into the same MLflow run."""
    from suite.train.resume import resume

    _mark_stale_runs(args.tracking_uri)
    resume(args.resume, args)
    return 0


def run_print_config(args: argparse.Namespace) -> int:
    """`suite run ... --print-config`: the resolved configuration as YAML, nothing run."""
    from suite.config import dump

    print(dump(_resolve_config(args)), end="")
    return 0


def run_from_run(args: argparse.Namespace) -> int:
    """`suite run --task speech8k ... --from-run RUN_ID`: score an existing run's best checkpoint, no training."""
    from suite.train.evaluate import evaluate_from_run

    evaluate_from_run(_resolve_config(args), args.from_run)
    return 0


def _resolve_config(args: argparse.Namespace):
    from suite import registry
    from suite.config import resolve

    if not args.task or not args.model:
        from suite.errors import ConfigError

        raise ConfigError("suite run needs --task and --model (or --resume RUN_ID).",
                          hint="e.g. suite run --task listops --model s4d --preset smoke; `suite list` shows the names")
    registry.task(args.task)
    registry.model(args.model)
    flags = {
        "seed": args.seed,
        "data": {"root": args.data_dir},
        "tracking": {"uri": args.tracking_uri, "experiment": args.experiment, "run_name": args.run_name},
        "trainer": {
            "accelerator": args.accelerator,
            "devices": args.devices,
            "num_nodes": args.num_nodes,
            "strategy": args.strategy,
            "precision": args.precision,
            "max_epochs": args.max_epochs,
            "max_steps": args.max_steps,
            "time_limit": args.time_limit,
            "cuda_graph": False if getattr(args, "eager", False) else None,
        },
    }
    return resolve(args.task, args.model, args.preset, args.config, args.set, _drop_none(flags))


def _drop_none(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _drop_none(v)
            if v:
                out[k] = v
        elif v is not None:
            out[k] = v
    return out


def _mark_stale_runs(tracking_uri: str | None) -> None:
    """Runs left RUNNING by a process that is gone (killed, crashed) are marked KILLED, with a note on stderr."""
    from suite.ranks import is_rank_zero
    from suite.tracking import liveness, uris

    if is_rank_zero():  # the other DDP ranks of a run leave the store to rank 0
        liveness.mark_stale_runs(uris.resolve_uri(tracking_uri))


def cmd_export(args: argparse.Namespace) -> int:
    from suite import bundle

    _mark_stale_runs(args.tracking_uri)
    bundle.export(args.run_id, args.dir, args.tracking_uri)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from suite import bundle

    bundle.import_bundle(args.dir, args.tracking_uri)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from suite.train.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.split, args.set, args.data_dir, args.batch_size,
                                 args.accelerator)
    scores = {k: v for k, v in result.items() if k.startswith(f"{args.split}/")}
    print("  ".join(f"{k} {v:.6g}" for k, v in scores.items()))
    if args.json:
        print(json.dumps(result))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from suite.tracking import liveness, store, ui, uris

    uri = uris.resolve_uri(args.tracking_uri)
    db = uris.sqlite_path(uri)
    if db is not None and not db.exists():
        print(f"note: {db} does not exist yet; the UI starts empty until a run is logged", file=sys.stderr)
        store.ensure_experiment(uri, "Default")
    liveness.mark_stale_runs(uri)
    cmd = ui.ui_command(uri, args.host, args.port)
    base = f"http://{args.host}:{args.port}"
    print(f"MLflow UI for {uris.mask(uri)} at {base}  (Ctrl-C to stop)", file=sys.stderr)
    for exp_id, name in store.prepare_ui(uri):  # model-training pages and the suite's view on every experiment
        print(f"  experiment '{name}': {ui.runs_url(exp_id, base=base)}", file=sys.stderr)
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    if mlflow_bin.exists():
        cmd[0] = str(mlflow_bin)
    os.execvp(cmd[0], cmd)
    return 0  # not reached


def cmd_data_status(args: argparse.Namespace) -> int:
    from suite import data

    return data.status(args.tasks, args.preset, args.config, args.set, args.data_dir)


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from suite import data

    return data.fetch(args.tasks, args.data_dir)


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from suite import data

    return data.prepare(args.tasks, args.preset, args.config, args.set, args.data_dir)


def cmd_data_generate(args: argparse.Namespace) -> int:
    from suite import data

    return data.generate(args.task, args.preset, args.config, args.set, args.data_dir)


def cmd_sweep(args: argparse.Namespace) -> int:
    from suite import sweep

    return sweep.main(args)


def cmd_table(args: argparse.Namespace) -> int:
    from suite.report import render

    _mark_stale_runs(args.tracking_uri)
    return render.main(args)


def cmd_batch(args: argparse.Namespace) -> int:
    from suite import batch

    models = [m for spec in args.models or [] for m in spec.replace(",", " ").split()] or None
    return batch.run(args.family, models, args.preset, args.seeds or [], args.data_dir, args.tracking_uri,
                     [x for s in args.set or [] for x in ("--set", s)], workers=args.workers, mps=args.mps)


def cmd_report(args: argparse.Namespace) -> int:
    from suite.report import page

    return page.main(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from suite import bench

    if args.train:
        bench.run_train(args.model, args.device)
        return 0
    shapes = [tuple(int(x) for x in s.lower().split("x")) for s in args.shape] if args.shape else None
    bench.run(args.model, shapes, args.device, args.repeats, track=not args.no_track, tracking_uri=args.tracking_uri)
    return 0


# ------------------------------------------------------------------------------------------------
# options shared by several verbs, declared once (argparse parent parsers)
# ------------------------------------------------------------------------------------------------


def shared_options() -> dict[str, argparse.ArgumentParser]:
    """The option groups several verbs take, by name; a verb lists the names in `Verb.shared`."""
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--preset", default="paper",
                        help="recipe preset: 'paper' (the paper's hyperparameters) or 'smoke' (tiny, for a quick check)")
    config.add_argument("--config", action="append", type=Path, metavar="FILE",
                        help="YAML file overlaid on the preset (repeatable; later files win)")
    config.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override one field, e.g. --set model.d_state=32 (repeatable; value parsed as YAML)")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data-dir", help="data root (default: SUITE_DATA or data/ of this checkout)")
    tracking = argparse.ArgumentParser(add_help=False)
    tracking.add_argument("--tracking-uri",
                          help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or results/mlflow.db)")
    bundles = argparse.ArgumentParser(add_help=False)
    bundles.add_argument("--bundles", type=Path, metavar="DIR",
                         help="folder of committed run bundles, shown in a block of their own (default: SUITE_BUNDLES "
                              "or results/reproduction)")
    bundles.add_argument("--no-bundles", action="store_true", help="leave the committed runs out")
    return {"config": config, "data": data, "tracking": tracking, "bundles": bundles}


# ------------------------------------------------------------------------------------------------
# each verb's own arguments
# ------------------------------------------------------------------------------------------------


def _no_args(p: argparse.ArgumentParser) -> None:
    pass


def _run_args(p: argparse.ArgumentParser) -> None:
    from suite import registry

    p.add_argument("--task", help="task name (see `suite list`)")
    p.add_argument("--model", help=f"model name: {', '.join(registry.MODELS)}")
    p.add_argument("--seed", type=int, help="random seed (default: the recipe's)")
    p.add_argument("--experiment", help="MLflow experiment (default: the task's family: lra, scifar, speech, bidmc)")
    p.add_argument("--run-name", help="MLflow run name (default: task-model-preset-seed)")
    p.add_argument("--accelerator", help="cpu, gpu or auto")
    p.add_argument("--devices", type=_int_or_str,
                   help="devices per node: auto (the default) is one GPU, as the recipes train; 2+ or -1 (every GPU) "
                        "is data-parallel (DDP), the batch per GPU")
    p.add_argument("--num-nodes", type=int, help="machines taking part (multi-node DDP; default 1)")
    p.add_argument("--strategy", help="Lightning strategy: auto, ddp, ddp_spawn, ... (default auto)")
    p.add_argument("--precision", help="32-true, bf16-mixed, 16-mixed, ...")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--time-limit", metavar="DURATION",
                   help="stop cleanly before this much wall time (8m, 1h30m, 90s): checkpoint saved, run resumable, "
                        "exit code 75 (also with --resume; docs/reproduction.md)")
    p.add_argument("--eager", action="store_true",
                   help="train without CUDA graphs (= --set trainer.cuda_graph=false); by default (auto) one GPU at "
                        "fp32 replays each training step as CUDA graphs, with the same numbers, several times faster")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--resume", metavar="RUN_ID",
                   help="continue an interrupted run from its last checkpoint, into the same MLflow run")
    p.add_argument("--from-run", metavar="RUN_ID",
                   help="speech8k: evaluate an existing speech run's best checkpoint at 8 kHz instead of training")


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("dir", type=Path, metavar="DIR", help="bundle folder (created; an earlier bundle of the run is replaced)")


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, metavar="DIR", help="the bundle folder")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a .ckpt file, or a bundle folder (its best.ckpt)")
    p.add_argument("--split", default="test", help="train, val, test (default) or a task's extra split (test8k)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one field of the stored config")
    p.add_argument("--batch-size", type=int, help="evaluation batch size (default: the run's)")
    p.add_argument("--accelerator", help="cpu, gpu or auto (default auto)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on the last line")


def _ui_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5000)


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", help="model to time (repeatable; default all four)")
    p.add_argument("--shape", action="append", metavar="BxHxL", help="shape to time (repeatable), e.g. 8x64x1024")
    p.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no-track", action="store_true", help="print only, do not log to MLflow")
    p.add_argument("--train", action="store_true",
                   help="time whole training steps of the ListOps paper network instead (batch 12 x length 2048, "
                        "samples/s beside the public code's figures)")


def _data_status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("tasks", nargs="*", metavar="TASK", help="tasks to show (default: all)")


def _data_tasks_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("tasks", nargs="+", metavar="TASK")


def _data_generate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", help="listops, pathfinder or pathx")


def _sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, metavar="FILE", help="study description, e.g. sweeps/smoke.yaml")
    p.add_argument("--trials", type=int, help="trials to run in this invocation (default: the file's budget)")
    p.add_argument("--storage", help="Optuna storage URL (default: SQLite next to the MLflow store)")
    p.add_argument("--study", help="study name (default: the file's)")
    p.add_argument("--workers", type=int, default=1,
                   help="trial processes on this machine (default 1); with several GPUs, worker k on GPU k mod N")
    p.add_argument("--mps", choices=["auto", "on", "off"], default="auto", help=MPS_HELP.format(what="workers"))


def _table_args(p: argparse.ArgumentParser) -> None:
    from suite import registry  # the registry's tables only (no torch): --help stays instant

    p.add_argument("family", choices=registry.FAMILIES, help="which table")
    p.add_argument("--format", choices=["markdown", "latex", "csv"], default="markdown")
    p.add_argument("--out", type=Path, help="write to this file instead of standard output")
    p.add_argument("--experiment", help="MLflow experiment to read (default: the family's)")
    p.add_argument("--filter", help="MLflow search filter, e.g. \"tags.suite.preset = 'paper'\"")
    p.add_argument("--standalone", action="store_true",
                   help="latex: a complete document that compiles as is (default: a table environment to \\input)")
    p.add_argument("--include-trials", action="store_true",
                   help="count sweep trial runs too (default: only `suite run` runs)")


def _batch_args(p: argparse.ArgumentParser) -> None:
    from suite import registry

    p.add_argument("family", choices=registry.FAMILIES)
    p.add_argument("--models", action="append", metavar="M[,M...]", help="models (default: all four)")
    p.add_argument("--preset", default="paper", help="paper (default) or smoke")
    p.add_argument("--seeds", type=int, nargs="*", metavar="SEED", help="seeds (default: each recipe's own)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override passed to every run")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="runs at a time (default 1); with K > 1 each run writes its own log under results/logs/, and "
                        "on a machine with several GPUs run k trains on GPU k mod N")
    p.add_argument("--mps", choices=["auto", "on", "off"], default="auto", help=MPS_HELP.format(what="runs"))


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["markdown", "html"], default="markdown")
    p.add_argument("--out", type=Path, help="output file (default: results/report/report.md or .html)")


def _int_or_str(text: str) -> int | str:
    return int(text) if text.isdigit() else text


# ------------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verb:
    """One verb: its function, the `help` line `suite --help` shows, its own arguments, the shared option
    groups it takes (names of `shared_options`), a longer description for `suite VERB --help`, and for a verb
    made of actions (`suite data status|fetch|...`) the table of those instead of a function."""

    func: Callable[[argparse.Namespace], int] | None
    help: str
    arguments: Callable[[argparse.ArgumentParser], None] = _no_args
    shared: tuple[str, ...] = ()
    description: str | None = None
    actions: dict[str, Verb] | None = None


DATA_VERBS: dict[str, Verb] = {
    "status": Verb(cmd_data_status, "per task: where its data should be, present, cache verified, size",
                   _data_status_args, ("config", "data")),
    "fetch": Verb(
        cmd_data_fetch, "download tasks' raw files from their real sources (resumable, checksummed)",
        _data_tasks_args, ("data",),
        "Download from the real source (LRA release archive, Hugging Face Parquet files, the Speech "
        "Commands archive, Zenodo). Interrupted downloads resume. Offline, it says which URL to fetch "
        "by hand and where to put the file."),
    "prepare": Verb(
        cmd_data_prepare, "convert raw files once into the fast cache training reads (idempotent)", _data_tasks_args,
        ("config", "data"),
        "Decode and preprocess the raw files into checksummed arrays under <root>/cache/<task>/. "
        "A partial or corrupt cache is detected and rebuilt."),
    "generate": Verb(
        cmd_data_generate, "generate a task's data procedurally (listops, pathfinder, pathx)", _data_generate_args,
        ("config", "data"),
        "Write generated data in the release's on-disk format under "
        "<data root>/generated/<task>/<parameters>/. Generator parameters are the "
        "data.generator.* (ListOps) or data.pathfinder.* fields of the preset, changeable with --set."),
}

VERBS: dict[str, Verb] = {
    "list": Verb(cmd_list, "registered tasks, models and presets, one line each"),
    "run": Verb(
        cmd_run, "train one task x model, tracked in MLflow", _run_args, ("config", "data", "tracking"),
        "Train one model on one task and log the run to MLflow. Configuration is resolved as: "
        "defaults < task recipe < --preset < --config files < --set overrides < flags."),
    "export": Verb(
        cmd_export, "write a run's bundle (config, metrics, summary, checkpoints) into a folder", _export_args,
        ("tracking",),
        "Write a self-contained bundle of one run: summary.json, config.yaml, metrics.csv (per epoch), "
        "metrics.jsonl (every logged value), params.json, tags.json, best.ckpt, and last.ckpt while the "
        "run is not finished. `suite import DIR` recreates the run in another store (docs/reproduction.md)."),
    "import": Verb(
        cmd_import, "recreate a bundle's run in an MLflow store (then resume it or show it in tables)", _import_args,
        ("tracking",),
        "Recreate the run of a `suite export` bundle as a new run: same params, tags and metric history, "
        "checkpoints where `suite run --resume` finds them. Prints the new run id (and the resume command "
        "of an unfinished run). A run already in the store is not imported twice."),
    "eval": Verb(
        cmd_eval, "score a checkpoint (or a bundle's best.ckpt) on a split of its own task's data", _eval_args,
        ("data",),
        "Rebuild the model and the data from the checkpoint's own configuration, with --set applied "
        "(e.g. data.source=release, data.generator.seed=1), and print the split's metrics. Loads "
        "checkpoints with torch.load(weights_only=True): a checkpoint that needs pickle is refused."),
    "ui": Verb(cmd_ui, "MLflow UI on the store the runs went to", _ui_args, ("tracking",)),
    "bench": Verb(
        cmd_bench, "time each model's SSM layer (forward, forward+backward, peak memory)", _bench_args, ("tracking",),
        "Layer benchmark at B x H x L = 50x128x2048, 50x512x1024, 16x256x4096, 8x256x16384, d_state 64, "
        "fp32; CUDA-event medians on a GPU. Prints a table and logs it to MLflow (experiment 'bench')."),
    "data": Verb(
        None, "see, download, prepare or generate the datasets",
        description="Data lives under the data root (--data-dir, SUITE_DATA, or data/ of this checkout), raw files "
                    "in the layout their sources unpack to, caches under <root>/cache/.",
        actions=DATA_VERBS),
    "sweep": Verb(
        cmd_sweep, "run an Optuna study (trials are MLflow child runs of the study's run)", _sweep_args,
        ("tracking", "data"),
        "Run the study described by a sweeps/*.yaml file. Re-running the same command resumes the "
        "study; several processes or machines with the same --storage and --tracking-uri share it."),
    "table": Verb(
        cmd_table, "paper-style results table from the MLflow runs and the committed runs (markdown, latex, csv)",
        _table_args, ("tracking", "bundles"),
        "Group runs by model and task, mean +- std over seeds, beside the published numbers "
        "(results/paper.yaml); the runs committed as export bundles (results/reproduction) in a block "
        "of their own."),
    "batch": Verb(
        cmd_batch, "every task of a family x models x seeds, one `suite run` each (behind make lra, ...)",
        _batch_args, ("data", "tracking"),
        "Run each task of the family (lra, scifar, speech, bidmc) for each model and seed as its own "
        "`suite run` process. Tasks without data on disk are skipped with the reason; a failed run does "
        "not stop the others. Build the table afterwards with `suite table FAMILY`."),
    "report": Verb(cmd_report, "one page with every table and the learning curves (Markdown or HTML)", _report_args,
                   ("tracking", "bundles")),
}


def _add_verbs(subparsers, table: dict[str, Verb], shared: dict[str, argparse.ArgumentParser]) -> None:
    for name, verb in table.items():
        p = subparsers.add_parser(name, help=verb.help, description=verb.description,
                                  parents=[shared[s] for s in verb.shared])
        verb.arguments(p)
        if verb.actions:
            _add_verbs(p.add_subparsers(dest=f"{name}_verb", metavar="ACTION", required=True), verb.actions, shared)
        else:
            p.set_defaults(func=verb.func)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="suite",
        description="Benchmark suite for long-range sequence models: S4, S4D and Liquid-S4 on LRA, "
                    "sequential CIFAR, Speech Commands and BIDMC, tracked in MLflow.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"suite {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-paragraph errors")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    _add_verbs(verbs, VERBS, shared_options())
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        from suite.errors import INTERRUPTED_EXIT_CODE

        print("interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    except Exception as exc:
        if type(exc).__name__ == "TimeLimitReached":  # not an error: the run is saved and resumable
            print(f"\n{exc}", file=sys.stderr)
            return exc.exit_code
        from suite.errors import USER_ERRORS
        from suite.tracking.uris import mask_text

        if not isinstance(exc, USER_ERRORS) and "torch" in sys.modules:
            from suite.train.failures import out_of_memory  # an out-of-memory error outside training (eval, bench)

            exc = out_of_memory(exc) or exc
        if args.debug or not isinstance(exc, USER_ERRORS):
            raise
        print(f"error: {mask_text(str(exc))}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
