"""LRA Image (grayscale CIFAR-10) and sCIFAR (RGB), on Parquet shards written here with the Hugging Face
`uoft-cs/cifar10` schema (img = struct {bytes: PNG, path}, label int64)."""

from __future__ import annotations

import os
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from suite.config import DataConfig
from tasks import cifar
from tasks.errors import DataError
from tests.conftest import run_suite

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FEATURES = {"img": {"_type": "Image"}, "label": {"names": CLASSES, "_type": "ClassLabel"}}


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def write_shard(path: Path, images: np.ndarray, labels: list[int]) -> None:
    """A `uoft-cs/cifar10` Parquet shard: img struct<bytes: binary, path: string> (PNG bytes), label int64."""
    img_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("img", img_type), ("label", pa.int64())],
                       metadata={"huggingface": json.dumps({"info": {"features": FEATURES}})})
    table = pa.table({"img": [{"bytes": png(im), "path": None} for im in images], "label": labels}, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def random_images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    labels = [i % 10 for i in range(n)]
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    for im, y in zip(images, labels):  # a class-dependent colour band, so there is something to learn
        im[:, 3 * y: 3 * y + 3] = (25 * y, 255 - 25 * y, 128)
    return images, labels


@pytest.fixture
def cifar_root(tmp_path):
    root = tmp_path / "fixture"
    shards = {"train": random_images(40, 0), "test": random_images(20, 1)}
    for split, name in cifar.FILES.items():
        write_shard(root / cifar.RAW_DIR / name, *shards[split])
    return root, shards


CFG = DataConfig(l_max=1024)


# ------------------------------------------------------------------------------------------------
# Preprocessing, against hand computations
# ------------------------------------------------------------------------------------------------


def test_grayscale_is_pils_luma_as_torchvision_uses_it():
    # L = R * 299/1000 + G * 587/1000 + B * 114/1000, rounded
    pixels = {(255, 0, 0): 76, (0, 255, 0): 150, (0, 0, 255): 29, (10, 200, 30): 124, (255, 255, 255): 255,
              (0, 0, 0): 0, (100, 100, 100): 100}
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    for k, rgb in enumerate(pixels):
        image[0, k] = rgb
    rgb, gray = cifar.decode_png(png(image))
    assert rgb.shape == (1024, 3) and gray.shape == (1024, 1)
    assert gray[: len(pixels), 0].tolist() == list(pixels.values())
    assert rgb[: len(pixels)].tolist() == [list(p) for p in pixels]


def test_pixels_are_flattened_row_major():
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[2, 5] = (9, 8, 7)  # row 2, column 5 -> position 2 * 32 + 5
    rgb, _ = cifar.decode_png(png(image))
    assert rgb[69].tolist() == [9, 8, 7] and rgb.sum() == 24


def test_normalisation_numbers():
    gray = cifar.normaliser(cifar.IMAGE.mean, cifar.IMAGE.std)
    assert gray.shape == (1, 256)
    for v in (0, 124, 255):
        assert gray[0, v] == pytest.approx((v - 122.6) / 61.0, abs=1e-5)  # (v/255 - 122.6/255) / (61/255)
    assert gray[0, 124] == pytest.approx(0.0229508, abs=1e-6)
    rgb = cifar.normaliser(cifar.SCIFAR.mean, cifar.SCIFAR.std)
    assert rgb[:, 255].tolist() == pytest.approx([(1 - 0.4914) / 0.247, (1 - 0.4822) / 0.243, (1 - 0.4465) / 0.261],
                                                 abs=1e-6)  # 2.059109, 2.131687, 2.120690
    assert rgb[:, 0].tolist() == pytest.approx([-1.989474, -1.984362, -1.710728], abs=1e-6)


def test_split_is_torch_random_split_seed_42():
    train, val = cifar.train_val_split(50_000)
    assert (len(train), len(val)) == (45_000, 5_000)
    ref = torch.utils.data.random_split(range(50_000), (45_000, 5_000), generator=torch.Generator().manual_seed(42))
    assert train.tolist() == list(ref[0].indices) and val.tolist() == list(ref[1].indices)
    assert np.array_equal(cifar.train_val_split(50_000)[1], val)  # deterministic
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(50_000))


# ------------------------------------------------------------------------------------------------
# Loaders on the Parquet fixture
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task, channels", [(cifar.IMAGE, 1), (cifar.SCIFAR, 3)])
def test_loader_reads_the_parquet_files(cifar_root, task, channels):
    root, shards = cifar_root
    data = task.load(root, CFG)
    assert (len(data.train), len(data.val), len(data.test)) == (36, 4, 20)  # int(40 * 0.9) = 36
    assert (data.encoder, data.d_input, data.d_output, data.l_max) == ("linear", channels, 10, 1024)
    train_idx, val_idx = cifar.train_val_split(40)
    lut = cifar.normaliser(task.mean, task.std)
    for ds, images, labels, index in ((data.train, *shards["train"], train_idx), (data.val, *shards["train"], val_idx),
                                      (data.test, *shards["test"], range(20))):
        for i in (0, len(ds) - 1):
            x, y = ds[i]
            j = index[i]
            pixels = images[j].reshape(1024, 3)
            if channels == 1:
                pixels = np.asarray(Image.fromarray(images[j], "RGB").convert("L")).reshape(1024, 1)
            assert y == labels[j] and x.shape == (1024, channels) and x.dtype == torch.float32
            assert torch.equal(x, torch.from_numpy(lut[np.arange(channels)[None, :], pixels]))
    x, y, lengths = data.collate([data.train[0], data.train[1]])
    assert x.shape == (2, 1024, channels) and y.shape == (2,) and lengths is None


def test_both_tasks_share_one_decoded_cache(cifar_root):
    root, _ = cifar_root
    entry = cifar.IMAGE.prepare(root, CFG, progress=False)
    stamp = (entry / "manifest.json").stat().st_mtime_ns
    assert cifar.SCIFAR.prepare(root, CFG, progress=False) == entry
    assert (entry / "manifest.json").stat().st_mtime_ns == stamp  # not decoded again
    assert cifar.SCIFAR.status(root, CFG).verified is True


def test_corrupt_cache_is_rebuilt_and_says_it_was_corrupt(cifar_root, capsys):
    root, _ = cifar_root
    entry = cifar.SCIFAR.prepare(root, CFG, progress=False)
    (entry / "test_rgb.npy").write_bytes(b"garbage")
    assert cifar.IMAGE.status(root, CFG).verified is False
    capsys.readouterr()
    assert cifar.SCIFAR.prepare(root, CFG, progress=False) == entry
    err = capsys.readouterr().err
    assert f"warning: the cache {entry} is corrupt: " in err and f"rebuilt the corrupt cache {entry}" in err
    assert len(cifar.SCIFAR.load(root, CFG).test) == 20


def test_corrupt_parquet_is_a_data_error_naming_it(cifar_root):
    root, _ = cifar_root
    path = root / cifar.RAW_DIR / cifar.FILES["train"]
    path.write_bytes(path.read_bytes()[:500])  # a truncated download
    with pytest.raises(DataError, match=path.name):
        cifar.IMAGE.prepare(root, CFG, progress=False)


def test_broken_png_names_file_and_row(cifar_root):
    root, _ = cifar_root
    images, labels = random_images(3, 5)
    path = root / cifar.RAW_DIR / cifar.FILES["test"]
    write_shard(path, images, labels)
    table = pq.read_table(path)
    rows = table.column("img").to_pylist()
    rows[2]["bytes"] = rows[2]["bytes"][:40]
    table = table.set_column(0, "img", pa.array(rows, type=table.schema.field("img").type))
    pq.write_table(table, path)
    with pytest.raises(DataError, match=f"{path.name}, row 2"):
        cifar.SCIFAR.prepare(root, CFG, progress=False)


def test_missing_files_and_wrong_length_name_the_fix(tmp_path, cifar_root):
    with pytest.raises(DataError) as err:
        cifar.IMAGE.prepare(tmp_path, CFG)
    assert "suite data fetch image" in str(err.value) and cifar.URL in str(err.value)
    with pytest.raises(DataError, match="data.l_max=1024"):
        cifar.SCIFAR.prepare(cifar_root[0], DataConfig(l_max=512))


def test_fetch_offline_fails_fast_with_the_url(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "URL", "http://127.0.0.1:9/cifar10/")
    with pytest.raises(DataError) as err:
        cifar.SCIFAR.fetch(tmp_path, CFG, progress=False)
    assert "http://127.0.0.1:9/cifar10/train-00000-of-00001.parquet" in str(err.value)
    assert str(tmp_path / cifar.RAW_DIR / cifar.FILES["train"]) in str(err.value)


# ------------------------------------------------------------------------------------------------
# Through the CLI
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task, experiment", [("image", "lra"), ("scifar", "scifar")])
def test_trains_through_the_cli(cifar_root, task, experiment):
    root, _ = cifar_root
    r = run_suite("run", "--task", task, "--model", "s4d", "--preset", "smoke", "--data-dir", str(root),
                  "--max-epochs", "1", "--set", "trainer.limit_train_batches=3", "--set", "trainer.limit_val_batches=2")
    assert r.returncode == 0, r.stderr[-3000:]
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].data.tags["suite.task"] == task
    assert 0.0 <= runs[0].data.metrics["best/test/accuracy"] <= 1.0


def test_corrupt_file_exits_4_through_the_cli(cifar_root):
    root, _ = cifar_root
    path = root / cifar.RAW_DIR / cifar.FILES["test"]
    path.write_bytes(b"not parquet at all")
    r = run_suite("data", "prepare", "scifar", "--data-dir", str(root))
    assert r.returncode == 4, r.stderr[-3000:]
    assert path.name in r.stderr and "Traceback" not in r.stderr


def test_a_label_outside_the_ten_classes_names_file_and_row(cifar_root):
    root, _ = cifar_root
    images, labels = random_images(4, 6)
    path = root / cifar.RAW_DIR / cifar.FILES["train"]
    write_shard(path, images, labels[:3] + [10])
    with pytest.raises(DataError, match=f"{path.name}, row 3: label 10 is not a CIFAR-10 class 0-9"):
        cifar.IMAGE.prepare(root, CFG, progress=False)
