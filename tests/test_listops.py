"""ListOps: the generator against an independent evaluator, the release format, the loader."""

from __future__ import annotations

import random
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suite.config import DataConfig, GeneratorConfig
from tasks import listops
from tasks.errors import DataError
from tasks.generators import listops as gen


def evaluate_text(text: str) -> int:
    """Reference evaluator of a rendered expression, written from the text alone: a stack machine
    over the tokens with parentheses dropped."""
    ops = {"[MIN": min, "[MAX": max, "[MED": lambda v: int(statistics.median(v)), "[SM": lambda v: sum(v) % 10}
    stack: list = []
    for tok in listops.tokenize(text):
        if tok in ops:
            stack.append(tok)
        elif tok == "X":
            args = []
            while stack[-1] not in ops:
                args.append(stack.pop())
            op = stack.pop()
            stack.append(ops[op](args[::-1]))
        else:
            stack.append(int(tok))
    assert len(stack) == 1
    return stack[0]


def test_worked_examples_render_and_evaluate():
    """generators.md, section 1.8."""
    t1 = ("[MAX", (2, 9, ("[MIN", (4, 7)), 0))
    assert gen.render(t1) == "( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )"
    assert gen.evaluate(t1) == 9
    t2 = ("[MED", (3, 8, 1, 6))
    assert gen.render(t2) == "( ( ( ( ( [MED 3 ) 8 ) 1 ) 6 ) ] )"
    assert gen.evaluate(t2) == 4
    t3 = ("[SM", (7, ("[MAX", (5, 9)), ("[MED", (2, 7))))
    assert gen.render(t3) == "( ( ( ( [SM 7 ) ( ( ( [MAX 5 ) 9 ) ] ) ) ( ( ( [MED 2 ) 7 ) ] ) ) ] )"
    assert gen.evaluate(t3) == 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), lo=st.integers(0, 60), width=st.integers(5, 200))
def test_generated_labels_match_the_reference_evaluator(seed, lo, width):
    splits = gen.generate(12, 2, 2, min_length=lo, max_length=lo + width, seed=seed, progress=False)
    rows = [r for s in splits.values() for r in s]
    assert len({text for text, _ in rows}) == len(rows) == 16  # distinct across splits
    for text, label in rows:
        assert evaluate_text(text) == label
        n = len(listops.tokenize(text))  # counted length: tokens without parentheses
        assert lo < n < lo + width
        assert text.count("(") == text.count(")")


def test_generator_is_seeded():
    a = gen.generate(20, 5, 5, min_length=5, max_length=80, seed=3, progress=False)
    b = gen.generate(20, 5, 5, min_length=5, max_length=80, seed=3, progress=False)
    c = gen.generate(20, 5, 5, min_length=5, max_length=80, seed=4, progress=False)
    assert a == b and a != c


def test_lra_length_window_and_depth():
    """At the release parameters every accepted tree lies strictly inside (500, 2000)."""
    rng = random.Random(0)
    accepted = 0
    while accepted < 5:
        tree, n = gen.generate_tree(rng, 1, 10, 10)
        if 500 < n < 2000:
            accepted += 1
            assert len(listops.tokenize(gen.render(tree))) == n


def write_release(folder: Path, rows_per_split: dict[str, list[tuple[str, int]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in rows_per_split.items():
        gen.write_tsv(folder / f"basic_{split}.tsv", rows)


def test_tsv_format_is_the_release_format(tmp_path):
    rows = [("( ( [MAX 2 ) 9 ] )", 9), ("( ( [MIN 4 ) 7 ] )", 4)]
    gen.write_tsv(tmp_path / "basic_train.tsv", rows)
    raw = (tmp_path / "basic_train.tsv").read_bytes()
    assert raw.startswith(b"Source\tTarget\r\n") and raw.endswith(b"\r\n")
    assert listops.read_tsv(tmp_path / "basic_train.tsv") == rows


def test_tokenizer():
    assert listops.tokenize("( ( ( [MAX 2 ) 9 ) ] )") == ["[MAX", "2", "9", "X"]


@pytest.fixture
def release_root(tmp_path):
    splits = gen.generate(40, 8, 8, min_length=5, max_length=60, seed=1, progress=False)
    write_release(tmp_path / listops.RELEASE_DIR, splits)
    return tmp_path, splits


def test_loader_reads_release_files(release_root):
    root, splits = release_root
    entry = listops.prepare(root, DataConfig(l_max=32))
    data = listops.load(root, DataConfig(l_max=32))
    assert (len(data.train), len(data.val), len(data.test)) == (40, 8, 8)
    vocab = list(np.load(entry / "vocab.npy"))
    assert vocab[:3] == ["<pad>", "<unk>", "<eos>"]
    for i in range(len(data.train)):
        tokens, label = data.train[i]
        text, expected_label = splits["train"][i]
        ref = listops.tokenize(text)[:31]
        assert label == expected_label
        assert len(tokens) == len(ref) + 1 and tokens[-1] == 2  # truncated to l_max - 1, then <eos>
        assert [vocab[t] for t in tokens[:-1]] == ref
    x, y, lengths = data.collate([data.train[0], data.train[1]])
    assert x.shape == (2, int(lengths.max())) and (x[0, lengths[0]:] == 0).all()


def test_missing_files_name_the_fix(tmp_path):
    with pytest.raises(DataError) as err:
        listops.prepare(tmp_path, DataConfig())
    text = str(err.value)
    assert "basic_train.tsv" in text and "suite data generate listops" in text and listops.RELEASE_URL in text


def test_corrupt_file_is_a_clear_error(release_root):
    root, _ = release_root
    path = root / listops.RELEASE_DIR / "basic_val.tsv"
    path.write_text("Source\tTarget\r\n( [MAX 1 2 ] )\tnot-a-label\r\n")
    with pytest.raises(DataError, match="basic_val.tsv, line 2"):
        listops.prepare(root, DataConfig())


def test_corrupt_cache_is_rebuilt(release_root):
    root, _ = release_root
    entry = listops.prepare(root, DataConfig())
    (entry / "train_labels.npy").write_bytes(b"garbage")
    assert listops.prepare(root, DataConfig()) == entry
    assert len(listops.load(root, DataConfig()).train) == 40


def test_generated_source_generates_once(tmp_path):
    cfg = DataConfig(source="generated", generator=replace(GeneratorConfig(), n_train=30, n_val=5, n_test=5,
                                                            min_length=5, max_length=50))
    listops.prepare(tmp_path, cfg, progress=False)
    folder = listops.generated_dir(tmp_path, cfg.generator)
    assert (folder / "GENERATED.json").is_file()
    stamp = (folder / "basic_train.tsv").stat().st_mtime_ns
    data = listops.load(tmp_path, cfg)
    assert data.source == "generated" and len(data.train) == 30
    assert (folder / "basic_train.tsv").stat().st_mtime_ns == stamp
