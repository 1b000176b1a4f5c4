"""BIDMC vital signs (Monash TSER): heart rate, respiratory rate or SpO2 from 32 s of PPG + ECG at 125 Hz.

Files: `bidmc/BIDMC32{HR,RR,SpO2}_{TRAIN,TEST}.ts` (Zenodo records 4001456, 4001463, 4001464), each case
2 channels x 4000 samples and one real target. As the reference (docs/data-sources.md; s4
`src/dataloaders/prepare/bidmc/process_data.py`):
- `data.bidmc.split = reference` (default): train and test files pooled (train first), then sklearn's
  `train_test_split(test_size=0.3, random_state=seed)` and a second one of the 30 % (`test_size=0.5`,
  `random_state=seed + 1`) into validation and test: 70 / 15 / 15. Reproduced with numpy
  (`RandomState(seed).permutation`, the first ceil(0.3 n) indices are the held-out part), so sklearn
  is not needed; the test suite checks the indices equal sklearn's.
- `data.bidmc.split = official`: the Monash train/test files; validation = the last int(n_train / 7)
  training cases (the reference's `shuffle=False` branch).
- no normalisation of inputs or targets; MSE loss, RMSE reported.

The three tasks share this module: the registry points at `tasks.bidmc:HR`, `:RR` and `:SPO2`,
objects with the task protocol's functions. Zenodo publishes no checksum we can pin, so a download
is verified by parsing it.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from tasks import cache, download
from tasks.base import DataStatus, TaskData, raw_status
from tasks.errors import DataError
from tasks.ts_format import read_ts

RAW_DIR = Path("bidmc")
RECORDS = {"HR": 4001456, "RR": 4001463, "SpO2": 4001464}
SPLITS = ("train", "val", "test")
LENGTH, CHANNELS = 4000, 2


@dataclass
class BidmcOptions:
    """`data.bidmc` (bidmc_hr, bidmc_rr, bidmc_spo2): the reference pools train+test and reshuffles 70/15/15;
    `official` keeps the Monash split."""

    split: Literal["reference", "official"] = "reference"
    split_seed: int = 0  # the reference split's seed (sklearn's random_state)


def zenodo_url(target: str, filename: str) -> str:
    return f"https://zenodo.org/records/{RECORDS[target]}/files/{filename}?download=1"


# ------------------------------------------------------------------------------------------------
# splits
# ------------------------------------------------------------------------------------------------


def shuffle_split(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices exactly as sklearn's `train_test_split(range(n), test_size=.., random_state=seed)`:
    a RandomState(seed) permutation, the first ceil(test_size * n) entries held out."""
    n_test = math.ceil(test_size * n)
    perm = np.random.RandomState(seed).permutation(n)
    return perm[n_test:], perm[:n_test]


def reference_split(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Indices into the pooled cases: 70 % train, then the rest halved into val and test (seeds seed, seed + 1)."""
    train, rest = shuffle_split(n, 0.3, seed)
    val, test = shuffle_split(len(rest), 0.5, seed + 1)
    return {"train": train, "val": rest[val], "test": rest[test]}


def official_split(n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """Monash train/test; validation = the last int(n_train / 7) cases of the training file."""
    n_val = int(n_train / 7.0)
    return {"train": np.arange(n_train - n_val), "val": np.arange(n_train - n_val, n_train),
            "test": np.arange(n_train, n_train + n_test)}


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


class SeriesDataset(Dataset):
    """x (n, L, C) float32, y (n,) float32: item = (x (L, C), target)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, float]:
        return torch.from_numpy(np.array(self.x[i], dtype=np.float32)), float(self.y[i])


def stack_series(batch: list[tuple[torch.Tensor, float]]):
    """[(x (L, C), y)] -> x (B, L, C), y (B,) float32, lengths None (equal-length series)."""
    return torch.stack([x for x, _ in batch]), torch.tensor([y for _, y in batch], dtype=torch.float32), None


class BidmcTask:
    """One BIDMC target (HR, RR or SpO2) with the task protocol: status, fetch, prepare, load."""

    def __init__(self, target: str):
        self.target = target
        self.files = {part: f"BIDMC32{target}_{part}.ts" for part in ("TRAIN", "TEST")}
        self.name = f"bidmc_{target.lower()}"

    def _paths(self, root: Path) -> dict[str, Path]:
        return {part: root / RAW_DIR / name for part, name in self.files.items()}

    def _missing(self, root: Path) -> list[str]:
        return [name for part, name in self.files.items() if not self._paths(root)[part].is_file()]

    def _cache_entry(self, root: Path, b: BidmcOptions) -> tuple[Path, str]:
        seed = b.split_seed if b.split == "reference" else None
        key = cache.fingerprint(list(self._paths(root).values()), split=b.split, seed=seed, version=1)
        return root / "cache" / self.name / key, key

    def status(self, root: Path, cfg) -> DataStatus:
        return raw_status(root / RAW_DIR, self._missing(root), lambda: self._cache_entry(root, cfg.bidmc),
                          f"split {cfg.bidmc.split}", files=list(self._paths(root).values()))

    def fetch(self, root: Path, cfg, progress: bool = True) -> None:
        """Download both files from Zenodo (resumable); parse each new download to verify it."""
        for part, path in self._paths(root).items():
            if path.is_file():
                continue
            download.fetch_url(zenodo_url(self.target, path.name), path, progress=progress)
            read_ts(path, progress=progress)  # raises DataError naming the file and line if damaged

    def prepare(self, root: Path, cfg, progress: bool = True) -> Path:
        """Parse the two .ts files once, split them, cache X (n, 4000, 2) and y (n,) per split."""
        missing = self._missing(root)
        if missing:
            raise DataError(
                f"BIDMC {self.target} data not found: {root / RAW_DIR} lacks {', '.join(missing)}.",
                hint=f"`suite data fetch {self.name}` (downloads from Zenodo record {RECORDS[self.target]}), or "
                     f"put the files there yourself: {zenodo_url(self.target, self.files['TRAIN'])} and the TEST one",
            )
        entry, key = self._cache_entry(root, cfg.bidmc)

        def make() -> dict[str, np.ndarray]:
            parsed = {part: read_ts(path, progress) for part, path in self._paths(root).items()}
            for part, ts in parsed.items():
                path = self._paths(root)[part]
                if ts.x.shape[1:] != (LENGTH, CHANNELS):
                    raise DataError(f"{path}: expected cases of {CHANNELS} x {LENGTH} values, found "
                                    f"{ts.x.shape[2]} x {ts.x.shape[1]}.", hint="delete it and fetch it again")
                bad = int(np.isnan(ts.x).any(axis=(1, 2)).sum() + np.isnan(ts.y).sum())
                if bad:
                    raise DataError(f"{path}: {bad} case(s) hold missing values ('?'); BIDMC has none.",
                                    hint="delete the file and fetch it again")
            x = np.concatenate([parsed["TRAIN"].x, parsed["TEST"].x])  # (n, 4000, 2), train cases first
            y = np.concatenate([parsed["TRAIN"].y, parsed["TEST"].y]).astype(np.float32)
            if cfg.bidmc.split == "reference":
                index = reference_split(len(y), cfg.bidmc.split_seed)
            else:
                index = official_split(len(parsed["TRAIN"].y), len(parsed["TEST"].y))
            arrays = {}
            for s in SPLITS:
                arrays[f"{s}_x"] = x[index[s]]
                arrays[f"{s}_y"] = y[index[s]]
            return arrays

        if cache.ensure(entry, key, make, extra={"source": str(root / RAW_DIR), "split": cfg.bidmc.split}):
            print(f"cached BIDMC {self.target} ({cfg.bidmc.split} split) in {entry}", file=sys.stderr)
        return entry

    def load(self, root: Path, cfg) -> TaskData:
        entry = self.prepare(root, cfg, progress=False)
        a = cache.load(entry, [f"{s}_{part}" for s in SPLITS for part in ("x", "y")])
        return TaskData(
            **{s: SeriesDataset(a[f"{s}_x"], a[f"{s}_y"]) for s in SPLITS},
            collate=stack_series,
            encoder="linear",
            d_input=CHANNELS,
            d_output=1,
            problem="regression",
            source="release",
            l_max=LENGTH,
        )


HR = BidmcTask("HR")
RR = BidmcTask("RR")
SPO2 = BidmcTask("SpO2")
