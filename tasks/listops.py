"""LRA ListOps: evaluate a nested list expression (10 classes), up to 2,000 tokens.

Files: the release's `lra_release/listops-1000/basic_{train,val,test}.tsv` (columns Source, Target),
or the same files made by the generator under `generated/listops/<parameters>/`.
Tokenizer as in the reference (docs/data-sources.md): ']' -> 'X', '(' and ')' dropped, whitespace
split; vocabulary from the training split with <pad>=0, <unk>=1, <eos>=2; truncated to l_max - 1
tokens plus <eos>.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks import cache, filelock, generated, lra_release
from tasks.base import DataStatus, TaskData, TokenDataset, pad_tokens, raw_status, token_stats, truncation_counts
from tasks.errors import DataError
from tasks.generators import listops as generator

RELEASE_DIR = Path("lra_release") / "listops-1000"
RELEASE_URL = lra_release.URL
SPLITS = ("train", "val", "test")
SPECIALS = ("<pad>", "<unk>", "<eos>")
N_CLASSES = 10
LABELS = {str(k) for k in range(N_CLASSES)}


@dataclass
class ListOpsGeneratorOptions:
    """`data.generator`: the ListOps generator, used when data.source = generated.

    LRA's generator (docs/generators.md §1): lengths strictly between min_length and max_length, trees of
    depth <= max_depth with 2..max_args operands. Every field but `workers` names the generated folder.
    """

    n_train: int = 96_000
    n_val: int = 2_000
    n_test: int = 2_000
    min_length: int = 500  # exclusive
    max_length: int = 2_000  # exclusive
    max_depth: int = 10
    max_args: int = 10
    seed: int = 0
    workers: int = 0  # generator processes; 0 = every core (the files do not depend on it)


def tokenize(source: str) -> list[str]:
    return source.replace("]", "X").replace("(", "").replace(")", "").split()


def vocabulary(train_rows: list[tuple[str, int]]) -> list[str]:
    """SPECIALS, then every token of the training expressions in sorted order (ids independent of
    PYTHONHASHSEED, which orders a set)."""
    return list(SPECIALS) + sorted({tok for src, _ in train_rows for tok in tokenize(src)})


def read_tsv(path: Path) -> list[tuple[str, int]]:
    """Rows (Source, Target) of a release TSV; any malformed row is a ValueError naming the line."""
    csv.field_size_limit(sys.maxsize)
    rows = []
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header != ["Source", "Target"]:
            raise ValueError(f"{path}: expected the header 'Source<TAB>Target', found {header!r}")
        for i, row in enumerate(reader, start=2):
            if len(row) != 2 or row[1].strip() not in LABELS:
                what = f"the label {row[1]!r:.20}" if len(row) == 2 else f"{row!r:.80}"
                raise ValueError(f"{path}, line {i}: expected '<expression><TAB><label 0-9>', found {what}")
            rows.append((row[0], int(row[1])))
    return rows


def generated_dir(root: Path, gen: ListOpsGeneratorOptions) -> Path:
    name = (
        f"n{gen.n_train}-{gen.n_val}-{gen.n_test}_len{gen.min_length}-{gen.max_length}"
        f"_depth{gen.max_depth}_args{gen.max_args}_seed{gen.seed}"
    )
    return root / "generated" / "listops" / name


def generator_params(gen: ListOpsGeneratorOptions) -> dict:
    keys = ("n_train", "n_val", "n_test", "min_length", "max_length", "max_depth", "max_args", "seed")
    return {k: getattr(gen, k) for k in keys}


def files_dir(root: Path, cfg) -> Path:
    return generated_dir(root, cfg.generator) if cfg.source == "generated" else root / RELEASE_DIR


def _missing_files_error(folder: Path, missing: list[str]) -> DataError:
    return DataError(
        f"ListOps data not found: {folder} lacks {', '.join(missing)}.",
        hint=(
            f"`suite data fetch listops` (downloads {RELEASE_URL}), or unpack that archive yourself so that "
            f"{folder}/basic_train.tsv exists (or point --data-dir at the folder holding lra_release/), or train on "
            "generated data: "
            "`suite data generate listops` then `--set data.source=generated`"
        ),
    )


def generate(root: Path, cfg, progress: bool = True) -> Path:
    """Write generated TSVs (release format) for cfg.generator, once; return their folder."""
    folder = generated_dir(root, cfg.generator)
    with filelock.file_lock(folder.with_name(folder.name + ".lock")):
        if not (folder / "GENERATED.json").is_file():
            print(f"generating ListOps into {folder}", file=sys.stderr)
            generator.write_dataset(folder, generator_params(cfg.generator), progress=progress,
                                    workers=cfg.generator.workers)
    return folder


def generated_sets(root: Path) -> list[generated.GeneratedSet]:
    """Every ListOps set generated under root (finished or interrupted), for `suite data status`."""
    base = root / "generated" / "listops"
    folders = sorted(f for f in base.iterdir() if f.is_dir()) if base.is_dir() else []

    def summarize(params: dict) -> tuple[dict, int]:
        return params, sum(int(params.get(k, 0)) for k in ("n_train", "n_val", "n_test"))

    return [generated.describe("listops", f, root / "cache" / "listops", summarize) for f in folders]


def fetch(root: Path, cfg, progress: bool = True) -> None:
    """Download the LRA release archive and unpack listops-1000/ from it."""
    lra_release.fetch(root, RELEASE_DIR.name, progress)


def _missing(folder: Path) -> list[str]:
    return [f"basic_{s}.tsv" for s in SPLITS if not (folder / f"basic_{s}.tsv").is_file()]


def _cache_entry(root: Path, folder: Path, cfg) -> tuple[Path, str]:
    key = cache.fingerprint([folder / f"basic_{s}.tsv" for s in SPLITS], l_max=cfg.l_max, tokenizer=2)
    return root / "cache" / "listops" / key, key


def status(root: Path, cfg) -> DataStatus:
    folder = files_dir(root, cfg)
    return raw_status(folder, _missing(folder), lambda: _cache_entry(root, folder, cfg), cfg.source)


def prepare(root: Path, cfg, progress: bool = True) -> Path:
    """Make sure the TSVs exist (generating them when data.source = generated) and the cache is built."""
    folder = generate(root, cfg, progress) if cfg.source == "generated" else files_dir(root, cfg)
    missing = _missing(folder)
    if missing:
        raise _missing_files_error(folder, missing)
    entry, key = _cache_entry(root, folder, cfg)

    def make() -> dict[str, np.ndarray]:
        try:
            rows = {s: read_tsv(folder / f"basic_{s}.tsv") for s in SPLITS}
        except ValueError as exc:
            raise DataError(f"ListOps file is corrupt: {exc}", hint="re-download or re-generate the files") from None
        vocab = vocabulary(rows["train"])
        index = {tok: i for i, tok in enumerate(vocab)}
        arrays = {"vocab": np.array(vocab)}
        for s in SPLITS:
            ids, offsets, truncated = [], [0], 0
            for src, _ in rows[s]:
                tokens = tokenize(src)
                truncated += len(tokens) > cfg.l_max - 1
                ids.extend([index.get(t, 1) for t in tokens[: cfg.l_max - 1]] + [2])
                offsets.append(len(ids))
            arrays[f"{s}_truncated"] = np.array([truncated], dtype=np.int64)  # documents cut to l_max - 1
            arrays[f"{s}_tokens"] = np.array(ids, dtype=np.uint8 if len(vocab) < 256 else np.int32)
            arrays[f"{s}_offsets"] = np.array(offsets, dtype=np.int64)
            arrays[f"{s}_labels"] = np.array([label for _, label in rows[s]], dtype=np.int64)
        return arrays

    if cache.ensure(entry, key, make, extra={"source": str(folder)}):
        print(f"cached ListOps tokens in {entry}", file=sys.stderr)
    return entry


def load(root: Path, cfg) -> TaskData:
    entry = prepare(root, cfg, progress=False)
    vocab, splits = TokenDataset.load_splits(entry, SPLITS)
    stats = token_stats("listops", splits, truncation_counts(entry, SPLITS), cfg.l_max)
    return TaskData(
        **splits,
        collate=pad_tokens,
        encoder="embedding",
        d_input=len(vocab),
        d_output=N_CLASSES,
        problem="classification",
        source=cfg.source,
        l_max=cfg.l_max,
        stats=stats,
    )
