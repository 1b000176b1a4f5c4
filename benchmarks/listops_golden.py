"""Golden numbers for the ListOps generator, from LRA's original generator itself.

    python benchmarks/listops_golden.py /path/to/long-range-arena-checkout

The checkout is google-research/long-range-arena (its `lra_benchmarks/data/listops.py`). Nothing of it is copied
into this repository: the script imports that module from the checkout, with stand-ins for absl and TensorFlow
(used only for flags, logging and file writing), seeds Python's `random` and collects trees exactly as the
original's `main` does (draw NODE(1), keep it in a set when min_length < length < max_length, until the set holds
the samples), then renders and labels them with the original's `to_string` and `to_value`. The original writes the
set in its hash order (not reproducible across processes), so what is compared is the set of (expression, label)
rows: for each case it prints the SHA-256 of the rows sorted, one per line as `expression<TAB>label`, which
tests/tasks/test_listops_generator.py compares with the suite's generator (docs/generators.md §1.7).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
import sys
import types
from pathlib import Path

# (seed, samples, min_length, max_length, max_depth, max_args): small sets at two shapes of tree
CASES = [(0, 300, 8, 120, 5, 5), (7, 300, 8, 120, 5, 5), (1, 80, 500, 2000, 10, 10)]


def rows_digest(rows) -> str:
    """SHA-256 of the (expression, label) rows sorted, `expression<TAB>label` per line."""
    text = "\n".join(sorted(f"{expr}\t{int(label)}" for expr, label in rows))
    return hashlib.sha256(text.encode()).hexdigest()


def import_original(checkout: Path) -> types.ModuleType:
    flags = types.SimpleNamespace(FLAGS=types.SimpleNamespace(), **{f"DEFINE_{k}": (lambda *a, **kw: None)
                                                                     for k in ("string", "integer", "bool")})
    absl = types.ModuleType("absl")
    absl.app, absl.flags = types.SimpleNamespace(UsageError=Exception, run=None), flags
    sys.modules.update({"absl": absl, "absl.app": absl.app, "absl.flags": flags})
    tf = types.ModuleType("tensorflow.compat.v1")
    tf.logging = types.SimpleNamespace(info=lambda *a: None)
    for name in ("tensorflow", "tensorflow.compat"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["tensorflow.compat.v1"] = sys.modules["tensorflow.compat"].v1 = tf
    spec = importlib.util.spec_from_file_location("lra_listops", checkout / "lra_benchmarks/data/listops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def original_rows(lra, seed: int, samples: int, min_length: int, max_length: int, max_depth: int, max_args: int):
    random.seed(seed)
    data = set()
    while len(data) < samples:  # the loop of the original's main()
        tree, length = lra.generate_tree(1, max_depth, max_args)
        if min_length < length < max_length:
            data.add(tree)
    return [(lra.to_string(t), lra.to_value(t)) for t in data]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkout", type=Path)
    args = ap.parse_args()
    lra = import_original(args.checkout)
    out = {}
    for case in CASES:
        out[" ".join(map(str, case))] = rows_digest(original_rows(lra, *case))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
