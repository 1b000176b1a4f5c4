"""LRA Pathfinder (32x32 = 1024 pixels): are the two markers on one contour? 2 classes.

Files: the release's `lra_release/pathfinder32/<difficulty>/{imgs/<batch>/sample_<k>.png, metadata/<batch>.npy}`
or the same layout written by the generator under `generated/pathfinder/pathfinder32_n<N>_seed<S>/`.
Path-X (tasks/pathx.py) is this module at 128x128. Preprocessing as the reference
(docs/data-sources.md): metadata files in numeric order, records split on whitespace (path col0/col1, label
col3), the one known empty file black-listed, a random 80/10/10 split (torch.randperm with
data.pathfinder.split_seed, as torch's random_split), grey [0, 1] -> (x - 0.5) / 0.5, flattened to
(L, 1). Every PNG is decoded once into a uint8 cache; training reads that memory map.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tasks.progress import bar as progress_bar

from tasks import cache, filelock, generated, lra_release
from tasks.base import DataStatus, TaskData, raw_status
from tasks.errors import DataError
from tasks.generators import pathfinder as generator

RESOLUTION = 32
NAME = "pathfinder"
N_CLASSES = 2
BLACKLIST = {"curv_baseline/imgs/0/sample_172.png"}  # empty in the 32-px release (S4's loader skips it)


@dataclass
class PathfinderOptions:
    """`data.pathfinder` (Pathfinder and Path-X): which difficulty to read, and the generator used when
    data.source = generated (docs/generators.md §2; the resolution comes from the task: 32 for pathfinder,
    128 for pathx)."""

    difficulty: Literal["curv_baseline", "curv_contour_length_9", "curv_contour_length_14"] = "curv_contour_length_14"
    split_seed: int = 42  # the reference's random 80/10/10 split
    n_images: int = 200_000  # generated images (the release has 200k per difficulty)
    seed: int = 0  # generator seed
    workers: int = 0  # generator processes; 0 = every core (the images do not depend on it)


def release_member(resolution: int) -> str:
    return f"pathfinder{resolution}"


def generated_dir(root: Path, pf: PathfinderOptions, resolution: int = RESOLUTION) -> Path:
    """<root>/generated/pathfinder/pathfinder<res>_n<N>_seed<S>/ (holds one folder per difficulty)."""
    return root / "generated" / "pathfinder" / f"pathfinder{resolution}_n{pf.n_images}_seed{pf.seed}"


def files_dir(root: Path, cfg, resolution: int = RESOLUTION) -> Path:
    """The difficulty folder the loader reads (holding imgs/ and metadata/)."""
    base = (generated_dir(root, cfg.pathfinder, resolution) if cfg.source == "generated"
            else root / "lra_release" / release_member(resolution))
    return base / cfg.pathfinder.difficulty


def metadata_files(level: Path) -> list[Path]:
    """metadata/*.npy in increasing numeric order of the stem (as the S4 loader reads them)."""
    files = [f for f in (level / "metadata").glob("*.npy") if f.stem.isdigit()]
    return sorted(files, key=lambda f: int(f.stem))


def read_metadata(level: Path) -> list[tuple[str, int]]:
    """(image path relative to the level folder, label) per record, in file and line order."""
    out = []
    for f in metadata_files(level):
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as exc:
            raise DataError(f"Pathfinder metadata {f} is not readable text: {exc}",
                            hint="re-download or re-generate the data; metadata files are text despite .npy") from None
        for i, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 4 or fields[3] not in ("0", "1"):
                raise DataError(f"Pathfinder metadata {f}, line {i}: expected '<imgs/batch> <sample_k.png> <k> "
                                f"<label 0/1> ...', found {line!r}", hint="re-download or re-generate the data")
            out.append((f"{fields[0]}/{fields[1]}", int(fields[3])))
    return out


def decode(path: Path, resolution: int) -> np.ndarray:
    """One PNG -> (res, res) uint8 grey; anything else is a DataError naming the file."""
    try:
        with Image.open(path) as im:
            im.load()
            a = np.asarray(im.convert("L"))
    except Exception as exc:  # PIL raises many types for truncated or foreign files
        raise DataError(f"Pathfinder image {path} cannot be decoded: {exc}",
                        hint="re-download or re-generate the data (suite data fetch / generate)") from None
    if a.shape != (resolution, resolution):
        raise DataError(f"Pathfinder image {path} is {a.shape[1]}x{a.shape[0]}, expected {resolution}x{resolution}",
                        hint=f"use the pathfinder{resolution} files for this task")
    return a


def split_indices(n: int, seed: int) -> dict[str, np.ndarray]:
    """torch.utils.data.random_split(n, [n - 2*int(0.1 n), int(0.1 n), int(0.1 n)]) with a seeded generator."""
    n_val = n_test = int(0.1 * n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    n_train = n - n_val - n_test
    return {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}


def generate(root: Path, cfg, progress: bool = True, resolution: int = RESOLUTION) -> Path:
    """Generate cfg.pathfinder.n_images images of this difficulty (once); return the difficulty folder."""
    pf = cfg.pathfinder
    level = generated_dir(root, pf, resolution) / pf.difficulty
    with filelock.file_lock(level.with_name(level.name + ".lock")):
        if not (level / "GENERATED.json").is_file():
            print(f"generating Pathfinder {resolution}x{resolution} into {level}", file=sys.stderr)
            generator.write_dataset(level, generator.lra_params(resolution, pf.difficulty), pf.n_images, pf.seed,
                                    workers=pf.workers, progress=progress)
    return level


def generated_sets(root: Path, resolution: int = RESOLUTION) -> list[generated.GeneratedSet]:
    """Every difficulty folder generated under root at this resolution (finished or interrupted)."""
    task = NAME if resolution == RESOLUTION else "pathx"
    folders = sorted(f for f in (root / "generated" / "pathfinder").glob(f"pathfinder{resolution}_n*_seed*/*")
                     if f.is_dir())

    def summarize(difficulty: str):
        def shown(params: dict) -> tuple[dict, int]:
            return ({"difficulty": difficulty, "n_images": params.get("n_images"), "seed": params.get("seed"),
                     "resolution": resolution}, int(params.get("n_images", 0)))
        return shown

    cache_dir = root / "cache" / f"pathfinder{resolution}"
    return [generated.describe(task, f, cache_dir, summarize(f.name)) for f in folders]


def fetch(root: Path, cfg, progress: bool = True, resolution: int = RESOLUTION) -> None:
    """Download the LRA release archive and unpack pathfinder<res>/ from it."""
    lra_release.fetch(root, release_member(resolution), progress)


def _missing_error(level: Path, resolution: int) -> DataError:
    task = NAME if resolution == RESOLUTION else "pathx"
    return DataError(
        f"Pathfinder data not found: {level} has no metadata/*.npy.",
        hint=(f"`suite data fetch {task}` (downloads {lra_release.URL}), or unpack that archive yourself so that "
              f"{level}/metadata/0.npy exists (or point --data-dir at the folder holding lra_release/), or train on "
              f"generated data: `suite data generate {task}` then `--set data.source=generated`"),
    )


def _cache_entry(root: Path, level: Path, pf: PathfinderOptions, resolution: int) -> tuple[Path, str]:
    key = cache.fingerprint(metadata_files(level), resolution=resolution, difficulty=pf.difficulty,
                            decoder=1)
    return root / "cache" / f"pathfinder{resolution}" / key, key


def status(root: Path, cfg, resolution: int = RESOLUTION) -> DataStatus:
    level = files_dir(root, cfg, resolution)
    missing = [] if metadata_files(level) else [str(level / "metadata")]
    return raw_status(level, missing, lambda: _cache_entry(root, level, cfg.pathfinder, resolution), cfg.source)


def prepare(root: Path, cfg, progress: bool = True, resolution: int = RESOLUTION) -> Path:
    """Make sure the images exist (generating them when data.source = generated), decode them once."""
    level = generate(root, cfg, progress, resolution) if cfg.source == "generated" else files_dir(root, cfg, resolution)
    if not metadata_files(level):
        raise _missing_error(level, resolution)
    entry, key = _cache_entry(root, level, cfg.pathfinder, resolution)
    scratch = entry.with_name(entry.name + ".decoding.npy")

    def make() -> dict[str, np.ndarray]:
        prefix = cfg.pathfinder.difficulty + "/"
        records = [(rel, label) for rel, label in read_metadata(level) if prefix + rel not in BLACKLIST]
        if not records:
            raise DataError(f"Pathfinder metadata in {level / 'metadata'} lists no images",
                            hint="re-download or re-generate the data")
        scratch.parent.mkdir(parents=True, exist_ok=True)
        # (n, res, res) uint8, written through a memory map so 200k Path-X images need not fit in RAM
        images = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8,
                                           shape=(len(records), resolution, resolution))
        for i, (rel, _) in enumerate(progress_bar(records, desc=f"decoding Pathfinder {resolution}px", unit="img",
                                                  progress=progress)):
            images[i] = decode(level / rel, resolution)
        images.flush()
        return {"images": images, "labels": np.array([label for _, label in records], dtype=np.int64)}

    try:
        if cache.ensure(entry, key, make, extra={"source": str(level)}):
            print(f"cached Pathfinder images in {entry}", file=sys.stderr)
    finally:
        scratch.unlink(missing_ok=True)
    return entry


class PixelDataset(Dataset):
    """Images (n, res, res) uint8 and labels, seen through an index array; items (pixels (L,) uint8, label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, index: np.ndarray):
        self.images, self.labels, self.index = images, labels, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.index[i])
        return torch.from_numpy(np.asarray(self.images[j]).reshape(-1).copy()), int(self.labels[j])


def collate(batch: list[tuple[torch.Tensor, int]]):
    """[(pixels (L,) uint8, label)] -> x (B, L, 1) float in [-1, 1], y (B,), lengths None."""
    x = torch.stack([p for p, _ in batch]).float().div_(255.0).sub_(0.5).div_(0.5).unsqueeze(-1)
    y = torch.tensor([label for _, label in batch])
    return x, y, None


def load(root: Path, cfg, resolution: int = RESOLUTION) -> TaskData:
    entry = prepare(root, cfg, progress=False, resolution=resolution)
    a = cache.load(entry, ["images", "labels"])
    index = split_indices(len(a["labels"]), cfg.pathfinder.split_seed)
    splits = {s: PixelDataset(a["images"], a["labels"], idx) for s, idx in index.items()}
    return TaskData(**splits, collate=collate, encoder="linear", d_input=1, d_output=N_CLASSES,
                    problem="classification", source=cfg.source, l_max=resolution * resolution)
