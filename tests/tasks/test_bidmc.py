"""BIDMC: the Monash `.ts` format, the reference's pooled 70/15/15 reshuffle (equal to sklearn's
train_test_split), the official split, and a regression run through the CLI logging RMSE."""

from __future__ import annotations

from pathlib import Path

import os
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from suite.config import DataConfig
from tasks import bidmc
from tasks.errors import DataError
from tasks.ts_format import read_ts
from tests.conftest import run_suite

HEADER = """#The BIDMC dataset ... (a comment line, as the Monash files open with)
@problemName {name}
@timeStamps false
@missing {missing}
@univariate false
@dimensions 2
@equalLength true
@seriesLength {length}
@targetlabel true
@data
"""


def write_ts(path: Path, x: np.ndarray, y: np.ndarray, name: str = "BIDMC32HR", missing: bool = False) -> None:
    """x (n, length, 2), y (n,) -> a Monash regression .ts file: dimensions split by ':', values by ',',
    NaN written as '?', the target last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [HEADER.format(name=name, missing=str(missing).lower(), length=x.shape[1])]
    for case, target in zip(x, y):
        dims = [",".join("?" if np.isnan(v) else repr(float(v)) for v in case[:, d]) for d in range(case.shape[1])]
        lines.append(":".join(dims) + f":{float(target)!r}\n")
    path.write_text("".join(lines))


def make_cases(n: int, seed: int, length: int = bidmc.LENGTH) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, length, 2)).round(4).astype(np.float32)
    y = (60 + 40 * rng.random(n)).round(3)
    return x, y


@pytest.fixture
def bidmc_root(tmp_path):
    """BIDMC32HR_{TRAIN,TEST}.ts with 28 + 12 cases of 2 x 4000 samples."""
    root = tmp_path / "data"
    train, test = make_cases(28, 0), make_cases(12, 1)
    write_ts(root / "bidmc" / "BIDMC32HR_TRAIN.ts", *train)
    write_ts(root / "bidmc" / "BIDMC32HR_TEST.ts", *test)
    return root, train, test


def test_ts_parser_reads_dimensions_targets_and_missing_values(tmp_path):
    x, y = make_cases(3, 0, length=5)
    x[1, 2, 0] = np.nan
    write_ts(tmp_path / "a.ts", x, y, missing=True)
    ts = read_ts(tmp_path / "a.ts")
    assert ts.x.shape == (3, 5, 2) and ts.x.dtype == np.float32
    np.testing.assert_array_equal(ts.x, x)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(ts.y, y)
    assert ts.header["problemname"] == "BIDMC32HR" and ts.header["dimensions"] == 2 and ts.header["targetlabel"]


@pytest.mark.parametrize("case, message", [
    ("1,2,3,4,5:1,2,3,4,5:n/a", "line 11: the target 'n/a' is not a number"),
    ("1,2,3,4,5:1,2,3,4,5", "line 11: expected 2 dimensions, found 1"),  # the target is missing
    ("1,2,x,4,5:1,2,3,4,5:70", "line 11: dimension 1 holds a value that is not a number"),
    ("1,2,3,4,5:70", "line 11: expected 2 dimensions, found 1"),
    ("1,2,3,4:1,2,3,4,5:70", "line 11: expected series of length 5, found 4, 5"),
    ("1,2,?,4,5:1,2,3,4,5:70", "line 11: a missing value '\\?' in a file whose header says @missing false"),
])
def test_malformed_case_is_a_data_error_naming_file_and_line(tmp_path, case, message):
    path = tmp_path / "BIDMC32HR_TRAIN.ts"
    path.write_text(HEADER.format(name="BIDMC32HR", missing="false", length=5) + case + "\n")
    with pytest.raises(DataError, match=f"BIDMC32HR_TRAIN.ts, {message}"):
        read_ts(path)


def test_a_classification_or_headerless_file_is_refused(tmp_path):
    path = tmp_path / "c.ts"
    path.write_text(HEADER.replace("@targetlabel true", "@classLabel true 0 1").format(
        name="X", missing="false", length=2) + "1,2:3,4:0\n")
    with pytest.raises(DataError, match="not a regression file"):
        read_ts(path)
    path.write_text("1,2:3,4:70\n")
    with pytest.raises(DataError, match="line 1: expected a header tag"):
        read_ts(path)


def test_reference_split_is_sklearns_train_test_split_70_15_15():
    sklearn = pytest.importorskip("sklearn.model_selection")
    for n, seed in ((7949, 0), (40, 0), (101, 3)):
        split = bidmc.reference_split(n, seed)
        cases = np.arange(n)
        tr, rest = sklearn.train_test_split(cases, test_size=0.3, random_state=seed)
        va, te = sklearn.train_test_split(rest, test_size=0.5, random_state=seed + 1)
        for name, ref in (("train", tr), ("val", va), ("test", te)):
            np.testing.assert_array_equal(split[name], ref)
    sizes = {k: len(v) for k, v in bidmc.reference_split(7949).items()}
    assert sizes == {"train": 5564, "val": 1192, "test": 1193}  # the pooled 5550 + 2399 BIDMC cases
    assert sorted(np.concatenate(list(bidmc.reference_split(7949).values())).tolist()) == list(range(7949))


def test_reference_split_is_deterministic_and_seeded():
    a, b, c = bidmc.reference_split(500, 0), bidmc.reference_split(500, 0), bidmc.reference_split(500, 1)
    assert all(np.array_equal(a[s], b[s]) for s in a) and not np.array_equal(a["train"], c["train"])


def test_loader_pools_and_reshuffles_train_and_test(bidmc_root):
    root, (x_tr, y_tr), (x_te, y_te) = bidmc_root
    data = bidmc.HR.load(root, DataConfig(l_max=4000))
    assert (len(data.train), len(data.val), len(data.test)) == (28, 6, 6)
    assert (data.encoder, data.d_input, data.d_output, data.problem, data.l_max) == ("linear", 2, 1, "regression", 4000)
    x_all, y_all = np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te]).astype(np.float32)
    index = bidmc.reference_split(40, 0)
    for s in ("train", "val", "test"):
        ds = data.split(s)
        for i in (0, len(ds) - 1):
            x, y = ds[i]
            assert x.shape == (4000, 2)
            np.testing.assert_array_equal(x.numpy(), x_all[index[s][i]])
            assert y == pytest.approx(y_all[index[s][i]])
    xb, yb, lengths = data.collate([data.train[0], data.train[1]])
    assert xb.shape == (2, 4000, 2) and yb.dtype.is_floating_point and lengths is None


def test_official_split_keeps_the_monash_test_file(bidmc_root):
    root, (x_tr, y_tr), (x_te, y_te) = bidmc_root
    cfg = DataConfig(bidmc=bidmc.BidmcOptions(split="official"))
    data = bidmc.HR.load(root, cfg)
    assert (len(data.train), len(data.val), len(data.test)) == (24, 4, 12)  # val = last int(28 / 7) train cases
    np.testing.assert_array_equal(data.val[0][0].numpy(), x_tr[24])
    np.testing.assert_array_equal(data.test[11][0].numpy(), x_te[11])
    assert bidmc.HR.prepare(root, cfg) != bidmc.HR.prepare(root, DataConfig())  # one cache entry per split


def test_corrupt_cache_is_rebuilt_and_missing_files_name_the_fetch(bidmc_root, tmp_path):
    root, _, _ = bidmc_root
    entry = bidmc.HR.prepare(root, DataConfig(), progress=False)
    (entry / "val_x.npy").write_bytes(b"garbage")
    assert bidmc.HR.status(root, DataConfig()).verified is False
    assert bidmc.HR.prepare(root, DataConfig(), progress=False) == entry
    assert bidmc.HR.status(root, DataConfig()).verified is True
    with pytest.raises(DataError) as err:
        bidmc.RR.prepare(root, DataConfig())
    assert "BIDMC32RR_TRAIN.ts" in str(err.value) and "suite data fetch bidmc_rr" in str(err.value)
    assert "zenodo.org/records/4001463/files/BIDMC32RR_TRAIN.ts" in str(err.value)


def test_fetch_offline_fails_fast_with_the_url(tmp_path, monkeypatch):
    monkeypatch.setattr(bidmc, "zenodo_url", lambda target, name: f"http://127.0.0.1:9/{name}")
    with pytest.raises(DataError) as err:
        bidmc.SPO2.fetch(tmp_path, DataConfig(), progress=False)
    assert "http://127.0.0.1:9/BIDMC32SpO2_TRAIN.ts" in str(err.value)
    assert str(tmp_path / "bidmc" / "BIDMC32SpO2_TRAIN.ts") in str(err.value)


def test_bidmc_run_logs_rmse(bidmc_root):
    root, _, _ = bidmc_root
    r = run_suite("run", "--task", "bidmc_hr", "--model", "s4d", "--preset", "smoke", "--data-dir", str(root),
                  "--max-epochs", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    (run,) = client.search_runs([client.get_experiment_by_name("bidmc").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["suite.task"] == "bidmc_hr"
    m = run.data.metrics
    assert {"train/rmse", "val/rmse", "test/rmse", "best/test/rmse"} <= set(m) and m["best/test/rmse"] > 0
    assert run.data.params["optim.scheduler"] == "step" and run.data.params["model.bidirectional"] == "True"


def test_corrupt_ts_exits_4_naming_the_file_and_line(bidmc_root):
    root, _, _ = bidmc_root
    path = root / "bidmc" / "BIDMC32HR_TEST.ts"
    lines = path.read_text().splitlines(keepends=True)
    lines[12] = lines[12].replace(",", ",oops", 1)
    path.write_text("".join(lines))
    r = run_suite("data", "prepare", "bidmc_hr", "--data-dir", str(root))
    assert r.returncode == 4, r.stderr[-2000:]
    assert "BIDMC32HR_TEST.ts, line 13" in r.stderr and "Traceback" not in r.stderr


def test_a_length_other_than_the_cases_4000_is_a_data_error_not_ignored(bidmc_root):
    """BIDMC cases are 4000 steps whatever data.l_max says; the network's kernels follow data.l_max, so a
    mismatch is an error (exit 4) rather than a silently different model."""
    from tests.conftest import run_suite

    r = run_suite("run", "--task", "bidmc_hr", "--model", "s4d", "--preset", "smoke", "--set", "data.l_max=1000",
                  "--data-dir", str(bidmc_root[0]))
    assert r.returncode == 4, r.stderr[-2000:]
    assert "task 'bidmc_hr' has sequences of 4,000 steps, but data.l_max = 1,000" in r.stderr
    assert "set data.l_max=4000" in r.stderr and "Traceback" not in r.stderr
