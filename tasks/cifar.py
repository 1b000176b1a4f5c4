"""CIFAR-10 as a sequence of 1,024 pixels: LRA Image (grayscale) and sequential CIFAR (RGB), 10 classes.

Files: the Hugging Face `uoft-cs/cifar10` Parquet shards under `cifar10/plain_text/`
(`train-*.parquet`, `test-*.parquet`; columns `img` = struct {bytes: PNG, path: string} and `label`
int64 0-9). The PNGs are decoded once into a uint8 cache shared by both tasks (RGB pixels and their
grayscale); training never decodes PNGs. Preprocessing as in the reference (S4
`src/dataloaders/basic.py`, class CIFAR10; docs/data-sources.md):

- split: the 50,000 training images -> 45,000 train / 5,000 val, `torch.utils.data.random_split` with
  a generator seeded 42 (int(n * 0.9) training images); the 10,000 test images are the test set;
- image (`grayscale: true`): torchvision's Grayscale, i.e. PIL's 'L' conversion
  (L = R 299/1000 + G 587/1000 + B 114/1000, rounded), ToTensor (/255), Normalize(122.6/255, 61.0/255),
  flattened row-major: x (1024, 1);
- scifar: RGB, ToTensor, Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)), row-major: x (1024, 3).
  No augmentation.

`IMAGE` and `SCIFAR` below are the two task objects the registry points at (`tasks.cifar:IMAGE`).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tasks import cache, download
from tasks.base import DataStatus, TaskData, raw_status
from tasks.errors import DataError

RAW_DIR = Path("cifar10") / "plain_text"
URL = "https://huggingface.co/datasets/uoft-cs/cifar10/resolve/main/plain_text/"
FILES = {"train": "train-00000-of-00001.parquet", "test": "test-00000-of-00001.parquet"}
SPLITS = ("train", "test")
SIDE = 32
N_PIXELS = SIDE * SIDE
N_CLASSES = 10
VAL_FRACTION = 0.1
SPLIT_SEED = 42


# ------------------------------------------------------------------------------------------------
# Raw files -> uint8 cache
# ------------------------------------------------------------------------------------------------


def shards(folder: Path, split: str) -> list[Path]:
    return sorted(folder.glob(f"{split}-*.parquet"))


def decode_png(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """PNG bytes -> (rgb (1024, 3) uint8, gray (1024, 1) uint8), row-major; gray is PIL's 'L' of the RGB image,
    the conversion torchvision's Grayscale applies."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
        if rgb.size != (SIDE, SIDE):
            raise ValueError(f"image is {rgb.size[0]}x{rgb.size[1]}, expected {SIDE}x{SIDE}")
        gray = rgb.convert("L")
        return (np.asarray(rgb, dtype=np.uint8).reshape(N_PIXELS, 3),
                np.asarray(gray, dtype=np.uint8).reshape(N_PIXELS, 1))


def read_parquet(path: Path, progress: bool = True) -> dict[str, np.ndarray]:
    """One CIFAR-10 shard -> {"rgb": (n, 1024, 3), "gray": (n, 1024, 1), "labels": (n,)}; anything unreadable
    is a DataError naming the file (and the row)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tasks.progress import bar as progress_bar

    fix = f"delete {path} and run `suite data fetch image` again (or download {URL}{path.name} by hand)"
    try:
        table = pq.read_table(path, columns=["img", "label"])
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path} is not a readable CIFAR-10 Parquet file ({exc}).", hint=fix) from None
    img_type = table.schema.field("img").type
    if not (pa.types.is_struct(img_type) and img_type.get_field_index("bytes") >= 0):
        raise DataError(f"{path}: column 'img' is {img_type}, expected struct<bytes: binary, path: string>.",
                        hint=fix)
    images = table.column("img").combine_chunks().field("bytes").to_pylist()
    labels = np.asarray(table.column("label").to_numpy(zero_copy_only=False))
    n = len(images)
    rgb = np.empty((n, N_PIXELS, 3), dtype=np.uint8)
    gray = np.empty((n, N_PIXELS, 1), dtype=np.uint8)
    for i, data in enumerate(progress_bar(images, desc=f"decoding {path.name}", unit=" images", progress=progress)):
        if not 0 <= labels[i] < N_CLASSES:
            raise DataError(f"{path}, row {i}: label {labels[i]} is not a CIFAR-10 class 0-9.", hint=fix)
        try:
            rgb[i], gray[i] = decode_png(data)
        except Exception as exc:  # PIL raises many types for a broken PNG
            raise DataError(f"{path}, row {i}: the image is not a readable 32x32 PNG ({exc}).", hint=fix) from None
    return {"rgb": rgb, "gray": gray, "labels": labels.astype(np.int64)}


def _missing(folder: Path) -> list[str]:
    return [f"{s}-*.parquet" for s in SPLITS if not shards(folder, s)]


def _cache_entry(root: Path) -> tuple[Path, str]:
    files = [p for s in SPLITS for p in shards(root / RAW_DIR, s)]
    key = cache.fingerprint(files, decoder="pil-rgb-L-1")
    return root / "cache" / "cifar10" / key, key


def prepare_pixels(root: Path, task: str, progress: bool = True) -> Path:
    """Decode every PNG once into the shared uint8 cache; return the cache folder."""
    folder = root / RAW_DIR
    missing = _missing(folder)
    if missing:
        raise DataError(
            f"CIFAR-10 data not found: {folder} lacks {', '.join(missing)}.",
            hint=f"`suite data fetch {task}` (downloads {URL}{FILES['train']} and {FILES['test']}), or put the "
                 "Hugging Face uoft-cs/cifar10 Parquet files there yourself (or point --data-dir at the folder "
                 "holding cifar10/)",
        )
    entry, key = _cache_entry(root)

    def make() -> dict[str, np.ndarray]:
        arrays = {}
        for split in SPLITS:
            parts = [read_parquet(p, progress) for p in shards(folder, split)]
            for name in ("rgb", "gray", "labels"):
                arrays[f"{split}_{name}"] = np.concatenate([p[name] for p in parts])
        return arrays

    if cache.ensure(entry, key, make, extra={"source": str(folder)}):
        print(f"cached decoded CIFAR-10 pixels in {entry}", file=sys.stderr)
    return entry


# ------------------------------------------------------------------------------------------------
# Split, normalisation, datasets
# ------------------------------------------------------------------------------------------------


def train_val_split(n: int, val_fraction: float = VAL_FRACTION,
                    seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The reference's split of the training set: the indices `torch.utils.data.random_split(range(n),
    (int(n * (1 - val_fraction)), rest), generator=torch.Generator().manual_seed(seed))` gives."""
    n_train = int(n * (1.0 - val_fraction))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return perm[:n_train], perm[n_train:]


def normaliser(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(C, 256) float32 table: ToTensor then Normalize of each uint8 value, in torch's float32 arithmetic."""
    values = torch.arange(256, dtype=torch.uint8).float().div(255)  # ToTensor
    m = torch.tensor(mean, dtype=torch.float32)[:, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None]
    return ((values[None, :] - m) / s).numpy()


class PixelDataset(Dataset):
    """Images of a uint8 array (N, 1024, C), a subset `index` of them, normalised per channel by table `lut`."""

    def __init__(self, pixels: np.ndarray, labels: np.ndarray, index: np.ndarray, lut: np.ndarray):
        self.pixels, self.labels, self.index, self.lut = pixels, labels, index, lut
        self.channels = np.arange(lut.shape[0])[None, :]  # (1, C)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.index[i])
        x = self.lut[self.channels, np.asarray(self.pixels[j])]  # (1024, C) float32
        return torch.from_numpy(x), int(self.labels[j])


def stack(batch: list[tuple[torch.Tensor, int]]):
    """[(x (1024, C), label)] -> x (B, 1024, C), y (B,), lengths None (every image is 1,024 pixels)."""
    return torch.stack([x for x, _ in batch]), torch.tensor([y for _, y in batch]), None


class CifarTask:
    """One of the two CIFAR-10 tasks (the task-module protocol as methods): which pixels, which normalisation."""

    def __init__(self, name: str, pixels: str, mean: tuple[float, ...], std: tuple[float, ...]):
        self.name, self.pixels, self.mean, self.std = name, pixels, mean, std

    def status(self, root: Path, cfg) -> DataStatus:
        folder = root / RAW_DIR
        return raw_status(folder, _missing(folder), lambda: _cache_entry(root), f"release ({self.pixels})")

    def fetch(self, root: Path, cfg, progress: bool = True) -> None:
        """Download the train and test Parquet files of uoft-cs/cifar10 (resumable)."""
        folder = root / RAW_DIR
        for split, name in FILES.items():
            if not shards(folder, split):
                download.fetch_url(URL + name, folder / name, progress=progress)

    def prepare(self, root: Path, cfg, progress: bool = True) -> Path:
        if cfg.source != "release":
            raise DataError(f"task '{self.name}' has no generator: it trains on the CIFAR-10 files only.",
                            hint="drop `data.source=generated` (the default is release)")
        if cfg.l_max != N_PIXELS:
            raise DataError(f"task '{self.name}' has {N_PIXELS} pixels per image, but data.l_max = {cfg.l_max}.",
                            hint=f"set data.l_max={N_PIXELS} (the recipe's value)")
        return prepare_pixels(root, self.name, progress)

    def load(self, root: Path, cfg) -> TaskData:
        entry = self.prepare(root, cfg, progress=False)
        a = cache.load(entry, [f"{s}_{n}" for s in SPLITS for n in (self.pixels, "labels")])
        lut = normaliser(self.mean, self.std)
        train_idx, val_idx = train_val_split(len(a["train_labels"]))
        train_pixels, train_labels = a[f"train_{self.pixels}"], a["train_labels"]
        test_labels = a["test_labels"]
        return TaskData(
            train=PixelDataset(train_pixels, train_labels, train_idx, lut),
            val=PixelDataset(train_pixels, train_labels, val_idx, lut),
            test=PixelDataset(a[f"test_{self.pixels}"], test_labels, np.arange(len(test_labels)), lut),
            collate=stack,
            encoder="linear",
            d_input=lut.shape[0],
            d_output=N_CLASSES,
            problem="classification",
            source="release",
            l_max=N_PIXELS,
        )


IMAGE = CifarTask("image", "gray", mean=(122.6 / 255.0,), std=(61.0 / 255.0,))
SCIFAR = CifarTask("scifar", "rgb", mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.243, 0.261))
