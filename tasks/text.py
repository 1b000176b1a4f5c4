"""LRA Text: IMDB movie-review sentiment from characters, 2 classes, up to 4,096 tokens.

Files: the Hugging Face `stanfordnlp/imdb` Parquet shards under `imdb/plain_text/`
(`train-*.parquet`, `test-*.parquet`; columns `text` string, `label` int64 0 = neg, 1 = pos).
Preprocessing as in the reference (S4 `src/dataloaders/lra.py`, class IMDB; docs/data-sources.md):
character level (a string is its list of characters, i.e. Unicode code points, not UTF-8 bytes),
each review truncated to l_max - 1 characters plus <eos>; vocabulary from the truncated training
reviews, characters seen at least 15 times, ordered by frequency (ties by character), after the
specials <pad>=0, <unk>=1, <eos>=2. There is no validation split: the test set doubles as the
validation set, as in LRA.

The character-vocabulary helpers here are shared with `tasks.retrieval`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable

import numpy as np

from tasks import cache, download
from tasks.base import (DataStatus, TaskData, TokenDataset, pad_tokens, raw_status, token_stats,
                        truncation_counts)
from tasks.errors import DataError

RAW_DIR = Path("imdb") / "plain_text"
URL = "https://huggingface.co/datasets/stanfordnlp/imdb/resolve/main/plain_text/"
FILES = {"train": "train-00000-of-00001.parquet", "test": "test-00000-of-00001.parquet"}
SPLITS = ("train", "test")
SPECIALS = ("<pad>", "<unk>", "<eos>")
PAD, UNK, EOS = 0, 1, 2
MIN_FREQ = 15
N_CLASSES = 2


# ------------------------------------------------------------------------------------------------
# Character vocabulary (shared with tasks.retrieval)
# ------------------------------------------------------------------------------------------------


def codepoints(text: str) -> np.ndarray:
    """A string as its characters: (len(text),) uint32 Unicode code points (what `list(text)` iterates)."""
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


class CharCounter:
    """Counts characters over many documents (code points, batched through numpy)."""

    def __init__(self):
        self.counts: dict[int, int] = {}
        self._pending: list[np.ndarray] = []
        self._size = 0

    def add(self, chars: np.ndarray) -> None:
        self._pending.append(chars)
        self._size += len(chars)
        if self._size > 1 << 24:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            values, n = np.unique(np.concatenate(self._pending), return_counts=True)
            for v, c in zip(values.tolist(), n.tolist()):
                self.counts[v] = self.counts.get(v, 0) + c
        self._pending, self._size = [], 0

    def vocabulary(self, min_freq: int = 1) -> list[str]:
        """SPECIALS, then the characters seen at least `min_freq` times, most frequent first, ties by
        character: the order torchtext's build_vocab_from_iterator gives (specials first)."""
        self._flush()
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return list(SPECIALS) + [chr(c) for c, n in ranked if n >= min_freq]


class CharEncoder:
    """Characters -> token ids of a vocabulary (unknown characters -> <unk>)."""

    def __init__(self, vocab: list[str]):
        chars = np.array([ord(c) for c in vocab[len(SPECIALS):]], dtype=np.uint32)
        order = np.argsort(chars)
        self.keys = chars[order]
        self.ids = (order + len(SPECIALS)).astype(np.int64)
        self.dtype = token_dtype(len(vocab))

    def __call__(self, chars: np.ndarray) -> np.ndarray:
        """(n,) code points -> (n,) ids."""
        if len(self.keys) == 0:
            return np.full(len(chars), UNK, dtype=self.dtype)
        at = np.minimum(np.searchsorted(self.keys, chars), len(self.keys) - 1)
        return np.where(self.keys[at] == chars, self.ids[at], UNK).astype(self.dtype)

    def document(self, chars: np.ndarray, l_max: int) -> np.ndarray:
        """A document's characters truncated to l_max - 1, encoded, plus <eos>: (<= l_max,) ids."""
        return np.concatenate([self(chars[: l_max - 1]), np.array([EOS], dtype=self.dtype)])


def token_dtype(vocab_size: int):
    return np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.int32


def flat(docs: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    """Documents -> (all tokens concatenated, offsets (n + 1,) int64)."""
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    tokens = np.concatenate(docs).astype(dtype) if docs else np.zeros(0, dtype=dtype)
    return tokens, offsets


def bar(items: Iterable, desc: str, progress: bool, total: int | None = None):
    from tasks.progress import bar as progress_bar

    return progress_bar(items, desc=desc, total=total, unit=" docs", progress=progress)


# ------------------------------------------------------------------------------------------------
# IMDB files
# ------------------------------------------------------------------------------------------------


def shards(folder: Path, split: str) -> list[Path]:
    """The split's Parquet shards (`train-00000-of-00001.parquet`, ...); partial downloads are ignored."""
    return sorted(folder.glob(f"{split}-*.parquet"))


def read_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    """(texts, labels (n,) int64) of one IMDB Parquet shard; anything unreadable is a DataError naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fix = f"delete {path} and run `suite data fetch text` again (or download {URL}{path.name} by hand)"
    try:
        table = pq.read_table(path, columns=["text", "label"])
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path} is not a readable IMDB Parquet file ({exc}).", hint=fix) from None
    if not pa.types.is_string(table.schema.field("text").type) and not pa.types.is_large_string(
            table.schema.field("text").type):
        raise DataError(f"{path}: column 'text' is {table.schema.field('text').type}, expected string.", hint=fix)
    if not pa.types.is_integer(table.schema.field("label").type):
        raise DataError(f"{path}: column 'label' is {table.schema.field('label').type}, expected int64.", hint=fix)
    texts = table.column("text").to_pylist()
    labels = np.asarray(table.column("label").to_numpy(zero_copy_only=False))
    bad = [i for i, (t, y) in enumerate(zip(texts, labels)) if t is None or y not in (0, 1)]
    if bad:
        raise DataError(f"{path}, row {bad[0]}: expected a review text and a label 0 or 1, found "
                        f"{texts[bad[0]]!r:.60} / {labels[bad[0]]}.", hint=fix)
    return texts, labels.astype(np.int64)


def read_split(folder: Path, split: str) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for path in shards(folder, split):
        t, y = read_parquet(path)
        texts += t
        labels.append(y)
    return texts, np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)


def _missing(folder: Path) -> list[str]:
    return [f"{s}-*.parquet" for s in SPLITS if not shards(folder, s)]


def _check_source(cfg) -> None:
    if cfg.source != "release":
        raise DataError("task 'text' has no generator: it trains on the IMDB files only.",
                        hint="drop `data.source=generated` (the default is release)")


def _cache_entry(root: Path, cfg) -> tuple[Path, str]:
    folder = root / RAW_DIR
    files = [p for s in SPLITS for p in shards(folder, s)]
    key = cache.fingerprint(files, l_max=cfg.l_max, min_freq=MIN_FREQ, tokenizer="char-2")
    return root / "cache" / "text" / key, key


def status(root: Path, cfg) -> DataStatus:
    folder = root / RAW_DIR
    return raw_status(folder, _missing(folder), lambda: _cache_entry(root, cfg), "release (test doubles as val)")


def fetch(root: Path, cfg, progress: bool = True) -> None:
    """Download the train and test Parquet files of stanfordnlp/imdb (resumable)."""
    folder = root / RAW_DIR
    for split, name in FILES.items():
        if not shards(folder, split):
            download.fetch_url(URL + name, folder / name, progress=progress)


def prepare(root: Path, cfg, progress: bool = True) -> Path:
    """Tokenize the reviews once into the cache: flat token arrays, offsets, labels, vocabulary."""
    _check_source(cfg)
    folder = root / RAW_DIR
    missing = _missing(folder)
    if missing:
        raise DataError(
            f"IMDB data not found: {folder} lacks {', '.join(missing)}.",
            hint=f"`suite data fetch text` (downloads {URL}{FILES['train']} and {FILES['test']}), or put the "
                 f"Hugging Face stanfordnlp/imdb Parquet files there yourself (or point --data-dir at the folder "
                 "holding imdb/)",
        )
    entry, key = _cache_entry(root, cfg)

    def make() -> dict[str, np.ndarray]:
        splits = {s: read_split(folder, s) for s in SPLITS}
        full = {s: [codepoints(t) for t in bar(texts, f"IMDB {s}: characters", progress)]
                for s, (texts, _) in splits.items()}
        chars = {s: [c[: cfg.l_max - 1] for c in docs] for s, docs in full.items()}
        counter = CharCounter()
        for c in chars["train"]:
            counter.add(c)
        vocab = counter.vocabulary(MIN_FREQ)
        encode = CharEncoder(vocab)
        arrays = {"vocab": np.array(vocab)}
        for s in SPLITS:
            docs = [encode.document(c, cfg.l_max) for c in bar(chars[s], f"IMDB {s}: tokens", progress)]
            arrays[f"{s}_tokens"], arrays[f"{s}_offsets"] = flat(docs, encode.dtype)
            arrays[f"{s}_labels"] = splits[s][1]
            arrays[f"{s}_truncated"] = np.array([sum(len(c) > cfg.l_max - 1 for c in full[s])], dtype=np.int64)
        return arrays

    if cache.ensure(entry, key, make, extra={"source": str(folder)}):
        print(f"cached IMDB character tokens in {entry}", file=sys.stderr)
    return entry


def load(root: Path, cfg) -> TaskData:
    entry = prepare(root, cfg, progress=False)
    vocab, splits = TokenDataset.load_splits(entry, SPLITS)
    train, test = splits["train"], splits["test"]
    stats = token_stats("text", splits, truncation_counts(entry, SPLITS), cfg.l_max, oov_splits=("test",))
    return TaskData(
        train=train,
        val=test,  # no validation split in LRA: the test set doubles as the validation set
        test=test,
        collate=pad_tokens,  # x (B, L) long, y (B,), lengths (B,)
        encoder="embedding",
        d_input=len(vocab),
        d_output=N_CLASSES,
        problem="classification",
        source="release",
        l_max=cfg.l_max,
        stats=stats,
    )
