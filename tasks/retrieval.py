"""LRA Retrieval (AAN): does one paper cite the other? Two documents of up to 4,000 characters, 2 classes.

Files: the LRA release's `lra_release/tsv_data/new_aan_pairs.{train,eval,test}.tsv` (eval = our val).
Each line holds five tab-separated fields and there is no header: label (0/1, possibly written as a
float, 0.0/1.0), id1, id2, text1, text2 (LRA `matching/input_pipeline.py`: column_names label, id1,
id2, text1, text2, header=False, quotes not special; S4 reads the same five columns). The texts are
used exactly as stored, character by character.
Preprocessing as in the reference (S4 `src/dataloaders/lra.py`, class AAN): character level, each
document truncated to l_max - 1 characters plus <eos>; vocabulary from both (truncated) documents of
every training pair, every character seen (min_freq 1), specials <pad>=0, <unk>=1, <eos>=2. A batch
pads both documents of every pair to one length: x (B, 2, L); the network runs the two documents
through one backbone and the `retrieval` decoder compares them (models/heads.py).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from tasks import cache, lra_release
from tasks.base import DataStatus, FlatDocs, TaskData, raw_status, token_stats, truncation_counts
from tasks.errors import DataError
from tasks.text import PAD, CharCounter, CharEncoder, bar, codepoints, flat

RELEASE_DIR = Path("lra_release") / "tsv_data"
RELEASE_URL = lra_release.URL
SPLITS = {"train": "train", "val": "eval", "test": "test"}  # our split -> the release's file name part
N_CLASSES = 2


def tsv_path(folder: Path, split: str) -> Path:
    return folder / f"new_aan_pairs.{SPLITS[split]}.tsv"


def read_tsv(path: Path) -> Iterator[tuple[int, str, str]]:
    """(label, text1, text2) per line of a release TSV; a malformed line is a DataError naming file and line."""
    csv.field_size_limit(sys.maxsize)
    fix = f"re-download the LRA release ({RELEASE_URL}) or restore {path.name} from it"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            for row in reader:
                if len(row) != 5:
                    raise DataError(f"{path}, line {reader.line_num}: expected 5 tab-separated fields "
                                    f"(label, id1, id2, text1, text2), found {len(row)}.", hint=fix)
                yield parse_label(row[0], path, reader.line_num, fix), row[3], row[4]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc}).", hint=fix) from None


def parse_label(text: str, path: Path, line: int, fix: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value not in (0.0, 1.0):
        raise DataError(f"{path}, line {line}: expected the label 0 or 1, found {text!r:.40}.", hint=fix)
    return int(value)


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))


def _missing(folder: Path) -> list[str]:
    return [tsv_path(folder, s).name for s in SPLITS if not tsv_path(folder, s).is_file()]


def _cache_entry(root: Path, cfg) -> tuple[Path, str]:
    folder = root / RELEASE_DIR
    key = cache.fingerprint([tsv_path(folder, s) for s in SPLITS], l_max=cfg.l_max, tokenizer="char-2")
    return root / "cache" / "retrieval" / key, key


def status(root: Path, cfg) -> DataStatus:
    folder = root / RELEASE_DIR
    return raw_status(folder, _missing(folder), lambda: _cache_entry(root, cfg), "release")


def fetch(root: Path, cfg, progress: bool = True) -> None:
    """Download the LRA release archive and unpack tsv_data/ from it."""
    lra_release.fetch(root, RELEASE_DIR.name, progress)


def prepare(root: Path, cfg, progress: bool = True) -> Path:
    """Tokenize both documents of every pair once into the cache (two passes over the training file:
    the vocabulary first, then the tokens, so memory stays at the size of the cache)."""
    if cfg.source != "release":
        raise DataError("task 'retrieval' has no generator: it trains on the LRA release files only.",
                        hint="drop `data.source=generated` (the default is release)")
    folder = root / RELEASE_DIR
    missing = _missing(folder)
    if missing:
        raise DataError(
            f"AAN retrieval data not found: {folder} lacks {', '.join(missing)}.",
            hint=f"`suite data fetch retrieval` (downloads {RELEASE_URL}), or unpack that archive yourself so "
                 f"that {tsv_path(folder, 'train')} exists (or point --data-dir at the folder holding lra_release/)",
        )
    entry, key = _cache_entry(root, cfg)
    keep = cfg.l_max - 1  # characters kept per document before <eos>

    def make() -> dict[str, np.ndarray]:
        train = tsv_path(folder, "train")
        counter = CharCounter()
        for _, a, b in bar(read_tsv(train), "AAN train: vocabulary", progress, count_lines(train)):
            counter.add(codepoints(a)[:keep])
            counter.add(codepoints(b)[:keep])
        vocab = counter.vocabulary(min_freq=1)
        encode = CharEncoder(vocab)
        arrays = {"vocab": np.array(vocab)}
        for split in SPLITS:
            path = tsv_path(folder, split)
            docs, labels, truncated = [], [], 0
            for label, a, b in bar(read_tsv(path), f"AAN {split}: tokens", progress, count_lines(path)):
                pair = [codepoints(a), codepoints(b)]
                truncated += sum(len(c) > keep for c in pair)
                docs += [encode.document(c, cfg.l_max) for c in pair]
                labels.append(label)
            arrays[f"{split}_truncated"] = np.array([truncated], dtype=np.int64)  # documents, two per pair
            # pair i's documents are docs 2i and 2i + 1
            arrays[f"{split}_tokens"], arrays[f"{split}_offsets"] = flat(docs, encode.dtype)
            arrays[f"{split}_labels"] = np.array(labels, dtype=np.int64)
        return arrays

    if cache.ensure(entry, key, make, extra={"source": str(folder)}):
        print(f"cached AAN character tokens in {entry}", file=sys.stderr)
    return entry


class PairDataset(FlatDocs):
    """Document pairs stored flat: pair i = (document 2i, document 2i + 1, label i)."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.doc(2 * i), self.doc(2 * i + 1), int(self.labels[i])


def pad_pairs(batch: list[tuple[torch.Tensor, torch.Tensor, int]]):
    """[(doc1 (L1,), doc2 (L2,), label)] -> x (B, 2, L) long padded with <pad> to the longest document of the
    batch, y (B,), lengths (B, 2)."""
    lengths = torch.tensor([[len(a), len(b)] for a, b, _ in batch])
    x = torch.full((len(batch), 2, int(lengths.max())), PAD, dtype=torch.long)
    for i, (a, b, _) in enumerate(batch):
        x[i, 0, : len(a)] = a
        x[i, 1, : len(b)] = b
    y = torch.tensor([label for _, _, label in batch])
    return x, y, lengths


def load(root: Path, cfg) -> TaskData:
    entry = prepare(root, cfg, progress=False)
    vocab, splits = PairDataset.load_splits(entry, SPLITS)
    stats = token_stats("retrieval", splits, truncation_counts(entry, SPLITS), cfg.l_max, unit="documents")
    return TaskData(
        **splits,
        collate=pad_pairs,
        encoder="embedding",
        d_input=len(vocab),
        d_output=N_CLASSES,
        problem="classification",
        source="release",
        l_max=cfg.l_max,
        stats=stats,
    )
