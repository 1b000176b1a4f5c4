"""Speech Commands v0.02: 35 spoken words from raw 16 kHz audio (16,000 samples), plus the 8 kHz zero-shot test.

Files: the unpacked archive `speech_commands_v0.02/` (one folder per word, `_background_noise_`
ignored, `validation_list.txt`, `testing_list.txt`; train = every other clip), as torchaudio and
the reference read it (docs/data-sources.md):
- labels in the reference's class order (`CLASSES`); clips read with `wave` (16-bit PCM mono),
  zero-padded on the right to 16,000 samples;
- standardised as the reference (`normalize_all_data` of liquid-s4 and s4 src/dataloaders/datasets/sc.py,
  applied to x of shape (n, 1, 16000)): `data.speech.normalize = per_position` (default) gives each of
  the 16,000 time positions t its own mean_t and unbiased std_t over the padded training clips;
  `global` uses one mean and std over every training sample. Both reproduce the reference's double
  scaling: it divides torchaudio's already-normalised output (int16 / 2^15) by 2^15 again before
  `(x - mean) / (std + 1e-5)`, so the 1e-5 acts at the scale int16 / 2^30. Here
  x = (int16 - mean) / (std + 1e-5 * 2^30), the same numbers. A position where every training clip
  holds the same value (std_t = 0, e.g. a tail that every training clip pads with zeros) is thus
  divided by 1e-5 * 2^30 = 10737.4, not by zero: a validation or test sample of int16 value v there
  becomes (v - mean_t) / 10737.4, as in the reference. The inputs have a standard deviation of
  std / (std + 10737) (below 1).
- the 8 kHz test (`test8k`, logged as `test8k/accuracy`) is the test set standardised at 16 kHz (so
  8 kHz position j carries the statistics of 16 kHz position 2j, as in the reference, whose collate
  subsamples the already-normalised tensor) with every second sample kept (`x[:, ::2]`, no anti-alias
  filter) and the model's step size doubled (rate 2), as the reference's `eval_resolutions: [1, 2]`;
  `data.speech.resample = torchaudio` resamples the standardised clip with
  `torchaudio.functional.resample` (band-limited) instead.

The cache holds the padded clips as int16 (about 3.4 GB for the full set) and both sets of
normalisation constants; training never decodes a WAV file.
"""

from __future__ import annotations

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
from tasks.wav import read_pcm16

RAW_DIR = Path("speech_commands_v0.02")
URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"  # torchaudio's SPEECHCOMMANDS
ARCHIVE = Path("downloads") / "speech_commands_v0.02.tar.gz"
LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}
SPLITS = ("train", "val", "test")
SAMPLE_RATE = 16_000
CLIP = 16_000  # samples per clip after padding
EPS = 1e-5 * 2**30  # the reference's 1e-5 at its (int16 / 2^30) scale
# The reference's label order (ALL_CLASSES of s4 src/dataloaders/datasets/sc.py).
CLASSES = (
    "bed", "cat", "down", "five", "forward", "go", "house", "left", "marvin", "no", "on", "right", "sheila",
    "tree", "up", "visual", "yes", "backward", "bird", "dog", "eight", "follow", "four", "happy", "learn",
    "nine", "off", "one", "seven", "six", "stop", "three", "two", "wow", "zero",
)


@dataclass
class SpeechOptions:
    """`data.speech` (speech and speech8k): how the clips are standardised and how the 8 kHz zero-shot input is
    made from the 16 kHz clips (the module's docstring says what each choice computes)."""

    resample: Literal["decimate", "torchaudio"] = "decimate"  # decimate = x[::2] as the reference; torchaudio = filtered
    # per_position: each of the 16000 time positions standardised with its own train mean and std (the reference);
    # global: one mean and std over every training sample
    normalize: Literal["per_position", "global"] = "per_position"


def files_dir(root: Path) -> Path:
    return root / RAW_DIR


def _missing(folder: Path) -> list[str]:
    names = [*LISTS.values(), *(f"{w}/" for w in CLASSES)]
    return [n for n in names if not (folder / n).exists()]


def _missing_files_error(folder: Path, missing: list[str]) -> DataError:
    shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    return DataError(
        f"Speech Commands data not found: {folder} lacks {shown}.",
        hint=f"`suite data fetch speech` (downloads {URL}, 2.4 GB), or unpack that archive yourself into {folder}/ "
             "(or point --data-dir at the folder holding speech_commands_v0.02/)",
    )


def read_list(path: Path) -> set[str]:
    """The 'word/file.wav' entries of validation_list.txt or testing_list.txt."""
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def scan(folder: Path) -> dict[str, list[tuple[str, int]]]:
    """{split: [('word/file.wav', label), ...]}: every clip of the 35 word folders, split by the official lists."""
    missing = _missing(folder)
    if missing:
        raise _missing_files_error(folder, missing)
    lists = {split: read_list(folder / name) for split, name in LISTS.items()}
    out: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    for label, word in enumerate(CLASSES):
        for path in sorted((folder / word).glob("*.wav")):
            rel = f"{word}/{path.name}"
            split = "val" if rel in lists["val"] else "test" if rel in lists["test"] else "train"
            out[split].append((rel, label))
    return out


def pad_clip(samples: np.ndarray, length: int = CLIP) -> np.ndarray:
    """(n,) int16 -> (length,) int16: zeros appended on the right (longer clips are cut, as F.pad does)."""
    out = np.zeros(length, dtype=np.int16)
    n = min(len(samples), length)
    out[:n] = samples[:n]
    return out


def position_standardisation(train_x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """(2, L) float64 [mean_t, scale_t] of the padded int16 training clips (n, L), per time position t:
    x[:, t] = (int16 - mean_t) / scale_t, scale_t = std_t (unbiased over the n clips, as torch.std) + EPS.
    Two passes in float64 (mean, then squared deviations), so no cancellation."""
    n, length = train_x.shape
    total = np.zeros(length, dtype=np.float64)  # (L,)
    for i in range(0, n, chunk):
        total += train_x[i : i + chunk].astype(np.float64).sum(axis=0)
    mean = total / max(n, 1)  # (L,)
    sq = np.zeros(length, dtype=np.float64)  # (L,)
    for i in range(0, n, chunk):
        sq += np.square(train_x[i : i + chunk].astype(np.float64) - mean).sum(axis=0)
    std = np.sqrt(sq / max(n - 1, 1))  # (L,); n = 1 gives 0 here where torch.std gives NaN
    return np.stack([mean, std + EPS])


def standardisation(train_x: np.ndarray, chunk: int = 4096) -> tuple[float, float]:
    """(mean, scale) of the padded int16 training clips (n, L): x = (int16 - mean) / scale,
    scale = std (unbiased, as torch.std) + EPS, the reference's constants (see the module docstring)."""
    total, total_sq, count = 0.0, 0.0, train_x.size
    for i in range(0, len(train_x), chunk):
        block = train_x[i : i + chunk].astype(np.float64)
        total += block.sum()
        total_sq += np.square(block).sum()
    mean = total / count
    var = max(total_sq - count * mean * mean, 0.0) / max(count - 1, 1)
    return mean, float(np.sqrt(var)) + EPS


def _wav_paths(folder: Path) -> list[Path]:
    return sorted(p for w in CLASSES for p in (folder / w).glob("*.wav"))


def _cache_entry(root: Path, folder: Path) -> tuple[Path, str]:
    sources = [folder / n for n in LISTS.values()] + _wav_paths(folder)
    key = cache.fingerprint(sources, clip=CLIP, classes=list(CLASSES), norm="reference-2^30", version=2)
    return root / "cache" / "speech" / key, key


def fetch(root: Path, cfg, progress: bool = True) -> None:
    """Download the v0.02 archive (SHA-256 checked) and unpack it into <root>/speech_commands_v0.02/."""
    folder = files_dir(root)
    if not _missing(folder):
        return
    archive = download.fetch_url(URL, root / ARCHIVE, SHA256, progress=progress)
    download.extract(archive, folder, progress=progress)


def status(root: Path, cfg) -> DataStatus:
    folder = files_dir(root)
    return raw_status(folder, _missing(folder), lambda: _cache_entry(root, folder), "release")


def check_splits(folder: Path, sizes: dict[str, int]) -> None:
    """A DataError naming the split (and the list file that defines it) when one of them has no clip."""
    for split in SPLITS:
        if sizes[split]:
            continue
        if split == "train":
            raise DataError(f"{folder} holds no training clips (every clip is in a list file, or none exist).",
                            hint="check the word folders hold .wav files; re-fetch with `suite data fetch speech`")
        raise DataError(f"Speech Commands split '{split}' is empty: {folder / LISTS[split]} names no clip that exists "
                        "in the 35 word folders.",
                        hint=f"restore {LISTS[split]} and the clips it lists (re-fetch with `suite data fetch speech`)")


def prepare(root: Path, cfg, progress: bool = True) -> Path:
    """Decode every clip once into padded int16 arrays plus the normalisation constants."""
    folder = files_dir(root)
    splits = scan(folder)
    check_splits(folder, {s: len(items) for s, items in splits.items()})
    entry, key = _cache_entry(root, folder)

    def make() -> dict[str, np.ndarray]:
        from tasks.progress import bar as progress_bar

        arrays: dict[str, np.ndarray] = {}
        bar = progress_bar(total=sum(len(v) for v in splits.values()), desc="decoding Speech Commands",
                           unit=" clips", progress=progress)
        for split, items in splits.items():
            x = np.zeros((len(items), CLIP), dtype=np.int16)  # (n, 16000)
            for i, (rel, _) in enumerate(items):
                x[i] = pad_clip(read_pcm16(folder / rel, SAMPLE_RATE))
                bar.update(1)
            arrays[f"{split}_x"] = x
            arrays[f"{split}_y"] = np.array([label for _, label in items], dtype=np.int64)
        bar.close()
        arrays["norm"] = np.array(standardisation(arrays["train_x"]), dtype=np.float64)  # (mean, scale)
        arrays["norm_position"] = position_standardisation(arrays["train_x"])  # (2, CLIP): mean_t, scale_t
        return arrays

    if cache.ensure(entry, key, make, extra={"source": str(folder), "classes": list(CLASSES)}):
        print(f"cached Speech Commands clips in {entry}", file=sys.stderr)
    return entry


class ClipDataset(Dataset):
    """Padded int16 clips (n, L), standardised on access: item = (x (L, 1) float32, label).
    `mean` and `scale` are scalars (global) or (L,) arrays (per position)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, mean, scale):
        self.x, self.labels = x, y
        self.mean = np.asarray(mean, dtype=np.float32)  # () or (L,)
        self.scale = np.asarray(scale, dtype=np.float32)  # () or (L,)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        clip = (np.asarray(self.x[i], dtype=np.float32) - self.mean) / self.scale  # (L,)
        return torch.from_numpy(clip)[:, None], int(self.labels[i])


def stack_clips(batch: list[tuple[torch.Tensor, int]]):
    """[(x (L, 1), label)] -> x (B, L, 1), y (B,), lengths None (every clip has the full length)."""
    return torch.stack([x for x, _ in batch]), torch.tensor([y for _, y in batch]), None


def decimate_clips(batch: list[tuple[torch.Tensor, int]]):
    """The 8 kHz input as the reference makes it: every second sample, no filter. x (B, L // 2, 1)."""
    x, y, _ = stack_clips(batch)
    return x[:, ::2], y, None


def resample_clips(batch: list[tuple[torch.Tensor, int]]):
    """The 8 kHz input by torchaudio's band-limited (windowed sinc) resampling 16 kHz -> 8 kHz. x (B, L // 2, 1)."""
    import torchaudio.functional as AF

    x, y, _ = stack_clips(batch)
    x8 = AF.resample(x.transpose(1, 2), SAMPLE_RATE, SAMPLE_RATE // 2)  # (B, 1, L // 2)
    return x8.transpose(1, 2).contiguous(), y, None


EIGHT_KHZ = {"decimate": decimate_clips, "torchaudio": resample_clips}


def load(root: Path, cfg) -> TaskData:
    entry = prepare(root, cfg, progress=False)
    a = cache.load(entry, [f"{s}_{part}" for s in SPLITS for part in ("x", "y")] + ["norm", "norm_position"])
    if cfg.speech.normalize == "per_position":
        mean, scale = np.asarray(a["norm_position"])  # (L,), (L,)
        # positions every training clip holds the same value at (std 0: scale is the bare epsilon)
        stats = {"data/zero_std_positions": float(np.count_nonzero(scale == EPS))}
    else:
        mean, scale = (float(v) for v in a["norm"])
        stats = {}
    splits = {s: ClipDataset(a[f"{s}_x"], a[f"{s}_y"], mean, scale) for s in SPLITS}
    return TaskData(
        **splits,
        collate=stack_clips,
        encoder="linear",
        d_input=1,
        d_output=len(CLASSES),
        problem="classification",
        source="release",
        l_max=CLIP,
        extra_eval={"test8k": splits["test"]},
        eval_rate={"test8k": 2.0},
        collate_eval={"test8k": EIGHT_KHZ[cfg.speech.resample]},
        stats=stats,
    )
