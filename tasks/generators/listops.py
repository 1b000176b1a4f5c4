"""LRA's ListOps generator (docs/generators.md §1), seeded, on every core.

A tree is a digit (int 0..9) or an operator node (op, (child, ...)). NODE(d): below max_depth a
node is an operator with probability 0.25, with k ~ U{2..max_args} children drawn first and then
the operator ~ U{MIN, MAX, MED, SM}; at max_depth it is a digit. A tree is kept when its counted
length (tokens without parentheses) lies strictly between min_length and max_length; duplicates
are dropped; the accepted set is shuffled and cut into train / val / test.

All of it draws from ONE `random.Random(seed)` stream (`generate_reference`, the specification).
`generate` makes the same files on several processes (docs/data.md, "Parallel ListOps generation"):
the stream, numbered word by word (tasks/generators/mt_stream.py), is cut into chunks; each worker
parses the trees of its chunk starting a little before the chunk (a lead-in of 1/16 of the chunk
before), and renders and labels the accepted ones. That first word is usually inside a tree of the
single stream, so the worker's first trees are not the stream's; but two parses of one word
sequence meet at a common tree start (after some thousands of words at the release parameters),
and from there on they are the same parse. The coordinator walks the chunks in order from the
stream's true tree starts and takes each worker's trees from the true start on; if the worker's
parse has not met the stream's by then, the coordinator parses the words in between itself. It
drops duplicates, stops at the tree that completes the set and shuffles from that very position of
the stream. The output is byte-identical to
`generate_reference` for any number of workers and any chunk sizes.
"""

from __future__ import annotations

import bisect
import csv
import json
import os
import random
import statistics
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Union

from tasks.progress import bar as progress_bar

from tasks.generators import mt_stream

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


Rows = dict[str, list[tuple[str, int]]]


def _split(rows: list[tuple[str, int]], n_train: int, n_val: int) -> Rows:
    return {"train": rows[:n_train], "val": rows[n_train : n_train + n_val], "test": rows[n_train + n_val :]}


def generate_reference(
    n_train: int,
    n_val: int,
    n_test: int,
    min_length: int = 500,
    max_length: int = 2000,
    max_depth: int = 10,
    max_args: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> Rows:
    """The single-stream generator, one process: what `generate` must reproduce byte for byte."""
    rng = random.Random(seed)
    total = n_train + n_val + n_test
    accepted: dict[Tree, None] = {}  # insertion-ordered set
    with progress_bar(total=total, desc="generating ListOps", unit="expr", progress=progress) as bar:
        while len(accepted) < total:
            tree, length = generate_tree(rng, 1, max_depth, max_args)
            if min_length < length < max_length and tree not in accepted:
                accepted[tree] = None
                bar.update(1)
    trees = list(accepted)
    rng.shuffle(trees)
    return _split([(render(t), evaluate(t)) for t in trees], n_train, n_val)


# ------------------------------------------------------------------------------------------------
# The same trees parsed from numbered stream words (mt_stream.py lists how random.Random uses words)
# ------------------------------------------------------------------------------------------------

_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@dataclass(frozen=True)
class Spec:
    """What decides the trees: the generator's parameters less the counts and the seed."""

    min_length: int
    max_length: int
    max_depth: int
    max_args: int


def _parsers(spec: Spec):
    """(skip, build) over a list of stream words, replaying `generate_tree` draw for draw from word i:
    skip(words, i, depth) -> (counted length, next i) builds nothing (most trees are rejected);
    build(words, i, depth) -> (tree, next i)."""
    max_depth = spec.max_depth
    n_args = spec.max_args - 1  # randint(2, max_args) = 2 + _randbelow(n_args)
    args_shift = 32 - n_args.bit_length()

    def skip(words: list[int], i: int, depth: int) -> tuple[int, int]:
        # rng.random() > 0.25 ? digit : operator  (at max_depth: no draw, a digit)
        if depth < max_depth and ((words[i] >> 5) * 67108864.0 + (words[i + 1] >> 6)) * _TO_UNIT <= 0.25:
            i += 2
            k = words[i] >> args_shift
            i += 1
            while k >= n_args:
                k = words[i] >> args_shift
                i += 1
            length = 2
            for _ in range(k + 2):
                n, i = skip(words, i, depth + 1)
                length += n
            while words[i] >> 29 >= 4:  # rng.choice(OPERATORS)
                i += 1
            return length, i + 1
        if depth < max_depth:
            i += 2
        while words[i] >> 28 >= 10:  # rng.randint(0, 9)
            i += 1
        return 1, i + 1

    def build(words: list[int], i: int, depth: int) -> tuple[Tree, int]:
        if depth < max_depth and ((words[i] >> 5) * 67108864.0 + (words[i + 1] >> 6)) * _TO_UNIT <= 0.25:
            i += 2
            k = words[i] >> args_shift
            i += 1
            while k >= n_args:
                k = words[i] >> args_shift
                i += 1
            children = []
            for _ in range(k + 2):
                child, i = build(words, i, depth + 1)
                children.append(child)
            while words[i] >> 29 >= 4:
                i += 1
            return (OPERATORS[words[i] >> 29], tuple(children)), i + 1
        if depth < max_depth:
            i += 2
        while words[i] >> 28 >= 10:
            i += 1
        return words[i] >> 28, i + 1

    return skip, build


@dataclass
class Chunk:
    """The trees one parse found in [first, limit) of the stream: every tree start (in order), the
    accepted trees as (start, end, text, label), and where the tree after the last one starts."""

    limit: int
    starts: list[int]
    accepted: list[tuple[int, int, str, int]]
    end: int


_LOOKAHEAD = 1 << 12  # words drawn past the chunk for its last tree (more are drawn when it needs them)


def parse_chunk(spec: Spec, state: dict, first: int, limit: int, meet: frozenset[int] = frozenset(),
                enough: int | None = None) -> Chunk:
    """Parse trees from stream position `first` (the numpy state there) while they start before `limit`,
    stopping early at a start in `meet` or once `enough` trees are accepted; render and label those."""
    skip, build = _parsers(spec)
    bits = mt_stream.generator(state)
    words = mt_stream.words(bits, max(limit - first, 0) + _LOOKAHEAD)
    starts: list[int] = []
    accepted = []
    i = 0
    while first + i < limit and first + i not in meet and len(accepted) != enough:
        try:
            length, j = skip(words, i, 1)
        except IndexError:  # a tree longer than the words drawn: draw as many again and parse it anew
            words.extend(mt_stream.words(bits, len(words)))
            continue
        starts.append(first + i)
        if spec.min_length < length < spec.max_length:
            tree, _ = build(words, i, 1)
            accepted.append((first + i, first + j, render(tree), evaluate(tree)))
        i = j
    return Chunk(limit, starts, accepted, first + i)


# chunks grow from FIRST_CHUNK to MAX_CHUNK words, so a small set needs little and a large one cuts few
FIRST_CHUNK = 1 << 12
MAX_CHUNK = 1 << 20


def chunk_sizes(first: int = FIRST_CHUNK, largest: int = MAX_CHUNK):
    size = first
    while True:
        yield size
        size = min(2 * size, largest)


class _Collector:
    """The accepted set in stream order, until it holds `total` texts; `stop` is then the position
    after the tree that completed it, where the single stream's shuffle draws from."""

    def __init__(self, total: int, bar):
        self.total, self.bar = total, bar
        self.rows: dict[str, int] = {}  # text -> label, insertion-ordered (rendering is injective)
        self.stop: int | None = None

    def offer(self, accepted: list[tuple[int, int, str, int]], after: int = 0) -> None:
        for start, end, text, label in accepted:
            if start < after or text in self.rows:
                continue
            self.rows[text] = label
            self.bar.update(1)
            if len(self.rows) == self.total:
                self.stop = end
                return


def _stitch(chunk: Chunk, at: int, spec: Spec, stream: mt_stream.Stream, out: _Collector) -> int:
    """Hand the single stream's trees that start in [at, chunk.limit) to `out`, `at` being a tree start of
    the single stream; return the next tree start of the single stream (at or past chunk.limit, unless the
    chunk's parse stopped early at `enough`)."""
    if at >= chunk.limit:  # one tree of the stream spans this whole chunk
        return at
    k = bisect.bisect_left(chunk.starts, at)
    if k == len(chunk.starts) or chunk.starts[k] != at:  # the chunk's parse has not met the stream's yet
        bridge = parse_chunk(spec, stream.state_at(at), at, chunk.limit, meet=frozenset(chunk.starts))
        out.offer(bridge.accepted)
        at = bridge.end
        if out.stop is not None or at >= chunk.limit:
            return at
    out.offer(chunk.accepted, after=at)
    return chunk.end


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
    workers: int = 1,
    sizes=None,
) -> Rows:
    """`generate_reference`'s splits, byte for byte, made by `workers` processes (0 = every core).
    `sizes`: an iterator of chunk sizes in words (chunk_sizes() by default; any gives the same rows)."""
    spec = Spec(min_length, max_length, max_depth, max_args)
    workers = workers or default_workers()
    sizes = sizes or chunk_sizes()
    stream = mt_stream.Stream(seed)
    at = 0  # where the single stream's next tree starts
    with progress_bar(total=n_train + n_val + n_test, desc="generating ListOps", unit="expr", progress=progress) as bar:
        out = _Collector(n_train + n_val + n_test, bar)
        if workers == 1:  # one process: each chunk is parsed from the stream's own tree start
            while out.stop is None:
                _, _, limit = stream.add_chunk(next(sizes))
                while at < limit and out.stop is None:  # a duplicate can leave the set short of `enough`
                    chunk = parse_chunk(spec, stream.state_at(at), at, limit, enough=out.total - len(out.rows))
                    at = _stitch(chunk, at, spec, stream, out)
        else:
            pool = ProcessPoolExecutor(workers, mp_context=get_context("fork"))
            try:
                pending: deque = deque()
                while out.stop is None:
                    while len(pending) < 2 * workers:  # keep every worker busy, a chunk ahead
                        state, first, limit = stream.add_chunk(next(sizes))
                        pending.append(pool.submit(parse_chunk, spec, state, first, limit))
                    at = _stitch(pending.popleft().result(), at, spec, stream, out)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    texts = list(out.rows)
    mt_stream.python_random(stream.state_at(out.stop)).shuffle(texts)
    return _split([(text, out.rows[text]) for text in texts], n_train, n_val)


def default_workers() -> int:
    """Every core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> None:
    """Header 'Source<TAB>Target', CR LF line ends, as the release's CSV writer made them."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\r\n")
        writer.writerow(["Source", "Target"])
        writer.writerows(rows)


def write_dataset(out_dir: Path, params: dict, progress: bool = True, workers: int = 1) -> None:
    """Generate (on `workers` processes, 0 = every core) and write basic_{train,val,test}.tsv plus
    GENERATED.json (the parameters) into out_dir. The files do not depend on `workers`.

    Files are written into a temporary folder renamed into place at the end, so an interrupted
    run never leaves a half-written dataset behind.
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    splits = generate(**params, progress=progress, workers=workers)
    for split, rows in splits.items():
        write_tsv(tmp / f"basic_{split}.tsv", rows)
    (tmp / "GENERATED.json").write_text(json.dumps({"generator": "listops", **params}, indent=2))
    tmp.replace(out_dir)
