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

from suite.config import DataConfig
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
    """docs/generators.md §1.8."""
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
    cfg = DataConfig(source="generated", generator=replace(listops.ListOpsGeneratorOptions(), n_train=30, n_val=5, n_test=5,
                                                            min_length=5, max_length=50))
    listops.prepare(tmp_path, cfg, progress=False)
    folder = listops.generated_dir(tmp_path, cfg.generator)
    assert (folder / "GENERATED.json").is_file()
    stamp = (folder / "basic_train.tsv").stat().st_mtime_ns
    data = listops.load(tmp_path, cfg)
    assert data.source == "generated" and len(data.train) == 30
    assert (folder / "basic_train.tsv").stat().st_mtime_ns == stamp


# ------------------------------------------------------------------------------------------------
# degeneracies: an error naming file and line, or a visible warning and a statistic; never silence
# ------------------------------------------------------------------------------------------------

RELEASE_RUN = ("run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--set", "data.source=release",
               "--max-epochs", "1", "--set", "trainer.limit_train_batches=2", "--set", "trainer.limit_val_batches=1")


def test_a_label_outside_the_ten_classes_is_a_data_error_naming_file_and_line(release_root):
    """Before: '12' passed the reader (isdigit) and training crashed with 'Target 12 is out of bounds'."""
    from tests.conftest import run_suite

    root, splits = release_root
    rows = list(splits["train"])
    rows[4] = (rows[4][0], 12)
    write_release(root / listops.RELEASE_DIR, {"train": rows})
    r = run_suite(*RELEASE_RUN, "--data-dir", str(root))
    assert r.returncode == 4, r.stderr[-2000:]
    assert "basic_train.tsv, line 6" in r.stderr and "'12'" in r.stderr and "label 0-9" in r.stderr
    assert "Traceback" not in r.stderr and "fix:" in r.stderr


def test_an_empty_split_is_a_data_error_naming_the_split(release_root):
    """Before: an empty evaluation split crashed Lightning after the first epoch (exit 1)."""
    from tests.conftest import run_suite

    root, _ = release_root
    write_release(root / listops.RELEASE_DIR, {"val": []})
    r = run_suite(*RELEASE_RUN, "--data-dir", str(root))
    assert r.returncode == 4, r.stderr[-2000:]
    assert "task 'listops': the val split is empty (examples per split: train 40, val 0, test 8" in r.stderr
    assert "suite data status listops" in r.stderr and "Traceback" not in r.stderr


def test_labels_outside_the_classes_are_caught_for_any_task(release_root):
    """The generic backstop of suite.train.build.load_task, on real loaded data: as if the task had only 5 classes."""
    from dataclasses import replace

    from tasks.base import check_splits

    root, splits = release_root
    data = listops.load(root, DataConfig(l_max=64))
    check_splits("listops", data, root)  # the real data passes
    first = next(i for i, (_, y) in enumerate(splits["train"]) if y >= 5)
    with pytest.raises(DataError, match=rf"the train split holds \d+ labels outside the 5 classes 0-4 \(first: "
                                        rf"example {first}, label {splits['train'][first][1]}\)"):
        check_splits("listops", replace(data, d_output=5), root)


def test_truncation_by_l_max_is_warned_and_counted_per_split(release_root, capsys):
    root, splits = release_root
    data = listops.load(root, DataConfig(l_max=5))
    expected = {s: sum(len(listops.tokenize(src)) > 4 for src, _ in rows) / len(rows) for s, rows in splits.items()}
    assert all(0 < f <= 1 for f in expected.values())
    for s, f in expected.items():
        assert data.stats[f"data/truncated_fraction/{s}"] == pytest.approx(f)
    lines = [line for line in capsys.readouterr().err.splitlines() if "truncates" in line]
    assert len(lines) == 1
    assert lines[0].startswith("warning: listops: data.l_max = 5 truncates examples to 4 tokens + <eos>: train ")
    assert f"val {expected['val']:.1%}" in lines[0]
    # long enough for every example: no warning, fractions 0
    data = listops.load(root, DataConfig(l_max=2048))
    assert all(data.stats[f"data/truncated_fraction/{s}"] == 0 for s in splits)
    assert "truncates" not in capsys.readouterr().err


def test_tokens_outside_the_vocabulary_are_counted_and_reported(tmp_path, capsys):
    write_release(tmp_path / listops.RELEASE_DIR, {
        "train": [("( ( [MAX 2 ) 9 ] )", 9), ("( ( [MAX 4 ) 7 ] )", 7)],
        "val": [("( ( [MIN 2 ) 9 ] )", 2), ("( ( [MAX 4 ) 7 ] )", 7)],  # [MIN: not in the training vocabulary
        "test": [("( ( ( [SM 3 ) 5 ) 8 ] )", 6)],  # [SM, 3, 5, 8: four unknown tokens
    })
    data = listops.load(tmp_path, DataConfig(l_max=64))
    assert data.stats["data/oov_tokens/val"] == 1 and data.stats["data/oov_tokens/test"] == 4
    assert data.stats["data/oov_fraction/test"] == pytest.approx(4 / 6)  # [SM 3 5 8 X <eos>
    assert [int(t) for t in data.test[0][0]].count(1) == 4
    err = capsys.readouterr().err
    assert "warning: listops: tokens outside the training vocabulary, read as <unk>: val 1 of 10 tokens" in err
    assert "test 4 of 6 tokens" in err


def test_log_data_stats_logs_the_statistics_to_the_run(release_root):
    from suite.train.record import log_data_stats
    from suite.tracking import store, uris

    root, _ = release_root
    data = listops.load(root, DataConfig(l_max=5))
    uri = uris.resolve_uri(None)  # the test's own SQLite store (conftest)
    run_id = store.start_run(uri, store.ensure_experiment(uri, "stats"), "stats", {})
    log_data_stats(uri, run_id, data)
    logged = store.get_run(uri, run_id).data.metrics
    assert logged == pytest.approx(data.stats) and "data/truncated_fraction/train" in logged


VOCAB_SCRIPT = """
import sys
from pathlib import Path
import numpy as np
from suite.config import DataConfig
from tasks import listops
entry = listops.prepare(Path(sys.argv[1]), DataConfig(l_max=64), progress=False)
print(np.load(entry / "vocab.npy").tolist(), np.load(entry / "train_tokens.npy").tolist())
"""


def test_vocabulary_ids_do_not_depend_on_the_hash_seed(tmp_path, release_root):
    """Each process builds the vocabulary from scratch (its own data root, so no shared cache) with another
    PYTHONHASHSEED, which reorders any set of strings; ids must not change."""
    import os
    import shutil
    import subprocess
    import sys

    root, _ = release_root
    outputs = []
    for seed in ("1", "2", "3"):
        copy = tmp_path / f"root{seed}"
        shutil.copytree(root / listops.RELEASE_DIR, copy / listops.RELEASE_DIR)
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        r = subprocess.run([sys.executable, "-c", VOCAB_SCRIPT, str(copy)], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        outputs.append(r.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert "'<pad>', '<unk>', '<eos>', '0', '1'" in outputs[0]  # specials, then sorted tokens
