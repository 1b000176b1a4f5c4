"""LRA's ListOps generator (generators.md, section 1), seeded.

A tree is a digit (int 0..9) or an operator node (op, (child, ...)). NODE(d): below max_depth a
node is an operator with probability 0.25, with k ~ U{2..max_args} children drawn first and then
the operator ~ U{MIN, MAX, MED, SM}; at max_depth it is a digit. A tree is kept when its counted
length (tokens without parentheses) lies strictly between min_length and max_length; duplicates
are dropped; the accepted set is shuffled and cut into train / val / test.
"""

from __future__ import annotations

import csv
import json
import random
import statistics
from pathlib import Path
from typing import Union

from tqdm import tqdm

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
Tree = Union[int, tuple[str, tuple["Tree", ...]]]


def generate_tree(rng: random.Random, depth: int, max_depth: int, max_args: int) -> tuple[Tree, int]:
    """NODE(depth): (tree, counted length)."""
    r = rng.random() if depth < max_depth else 1.0
    if r > 0.25:
        return rng.randint(0, 9), 1
    k = rng.randint(2, max_args)
    children, length = [], 2  # operator token and closing ']'
    for _ in range(k):
        child, n = generate_tree(rng, depth + 1, max_depth, max_args)
        children.append(child)
        length += n
    return (rng.choice(OPERATORS), tuple(children)), length


def evaluate(tree: Tree) -> int:
    if isinstance(tree, int):
        return tree
    op, children = tree
    values = [evaluate(c) for c in children]
    if op == "[MIN":
        return min(values)
    if op == "[MAX":
        return max(values)
    if op == "[MED":
        return int(statistics.median(values))  # even count: mean of the middle two, truncated
    return sum(values) % 10  # [SM


def render(tree: Tree) -> str:
    """The release's text form: an operator node is a left-nested chain of '( left right )' pairs."""
    if isinstance(tree, int):
        return str(tree)
    op, children = tree
    parts = ["( " * (len(children) + 1) + op + " " + render(children[0]) + " )"]
    parts += [" " + render(c) + " )" for c in children[1:]]
    return "".join(parts) + " ] )"


def generate(
    n_train: int,
    n_val: int,
    n_test: int,
    min_length: int = 500,
    max_length: int = 2000,
    max_depth: int = 10,
    max_args: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, list[tuple[str, int]]]:
    """Distinct accepted trees, shuffled and split: {'train': [(text, label)], 'val': ..., 'test': ...}."""
    rng = random.Random(seed)
    total = n_train + n_val + n_test
    accepted: dict[Tree, None] = {}  # insertion-ordered set
    with tqdm(total=total, desc="generating ListOps", unit="expr", disable=not progress) as bar:
        while len(accepted) < total:
            tree, length = generate_tree(rng, 1, max_depth, max_args)
            if min_length < length < max_length and tree not in accepted:
                accepted[tree] = None
                bar.update(1)
    trees = list(accepted)
    rng.shuffle(trees)
    rows = [(render(t), evaluate(t)) for t in trees]
    return {"train": rows[:n_train], "val": rows[n_train : n_train + n_val], "test": rows[n_train + n_val :]}


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> None:
    """Header 'Source<TAB>Target', CR LF line ends, as the release's CSV writer made them."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\r\n")
        writer.writerow(["Source", "Target"])
        writer.writerows(rows)


def write_dataset(out_dir: Path, params: dict, progress: bool = True) -> None:
    """Generate and write basic_{train,val,test}.tsv plus GENERATED.json (the parameters) into out_dir.

    Files are written into a temporary folder renamed into place at the end, so an interrupted
    run never leaves a half-written dataset behind.
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    splits = generate(**params, progress=progress)
    for split, rows in splits.items():
        write_tsv(tmp / f"basic_{split}.tsv", rows)
    (tmp / "GENERATED.json").write_text(json.dumps({"generator": "listops", **params}, indent=2))
    tmp.replace(out_dir)
