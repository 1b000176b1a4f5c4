"""LRA Text (IMDB Parquet, characters) and Retrieval (AAN TSV pairs, the retrieval head), on files written
here in the exact on-disk formats of their sources."""

from __future__ import annotations

import os
import functools
import http.server
import json
import random
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from mlflow.tracking import MlflowClient

from models.network import SequenceModel
from models.s4d import S4D
from suite.config import DataConfig
from tasks import retrieval, text
from tasks.errors import DataError
from tests.conftest import run_suite

# ------------------------------------------------------------------------------------------------
# Fixtures in the real formats
# ------------------------------------------------------------------------------------------------

IMDB_FEATURES = {"text": {"dtype": "string", "_type": "Value"},
                 "label": {"names": ["neg", "pos"], "_type": "ClassLabel"}}


def write_imdb_shard(path: Path, rows: list[tuple[str, int]]) -> None:
    """A `stanfordnlp/imdb` Parquet shard: columns text (string), label (int64), HF feature metadata."""
    schema = pa.schema([("text", pa.string()), ("label", pa.int64())],
                       metadata={"huggingface": json.dumps({"info": {"features": IMDB_FEATURES}})})
    table = pa.table({"text": [t for t, _ in rows], "label": [y for _, y in rows]}, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def review(rng: random.Random, label: int) -> str:
    words = ["the", "film", "plot", "actors", "scene", "was", "and", "a", "it", "<br />"]
    mood = ["great", "wonderful", "loved"] if label else ["awful", "boring", "hated"]
    return " ".join(rng.choice(words + mood) for _ in range(rng.randint(5, 60))) + "."


def imdb_rows(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(review(rng, i % 2), i % 2) for i in range(n)]


@pytest.fixture
def imdb_root(tmp_path):
    root = tmp_path / "fixture"
    rows = {"train": imdb_rows(48, 0), "test": imdb_rows(24, 1)}
    for split, name in text.FILES.items():
        write_imdb_shard(root / text.RAW_DIR / name, rows[split])
    return root, rows


def write_aan(path: Path, rows: list[tuple[str, str, str, str, str]]) -> None:
    """An LRA `new_aan_pairs.*.tsv`: no header, five tab-separated fields label, id1, id2, text1, text2."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        for row in rows:
            f.write("\t".join(row) + "\n")


def paper(rng: random.Random, topic: str) -> str:
    words = ["we", "propose", "a", "model", "for", "parsing", "translation", "corpus", 'the "best"', "results"]
    return "b'" + " ".join(rng.choice(words + [topic] * 3) for _ in range(rng.randint(5, 50))) + "'"


def aan_rows(n: int, seed: int) -> list[tuple[str, str, str, str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        a, b = ("syntax", "syntax") if label else ("speech", "vision")
        rows.append((str(label), f"D{seed}-{i}a", f"D{seed}-{i}b", paper(rng, a), paper(rng, b)))
    return rows


@pytest.fixture
def aan_root(tmp_path):
    root = tmp_path / "fixture"
    rows = {"train": aan_rows(48, 0), "val": aan_rows(16, 1), "test": aan_rows(16, 2)}
    for split, split_rows in rows.items():
        write_aan(retrieval.tsv_path(root / retrieval.RELEASE_DIR, split), split_rows)
    return root, rows


# ------------------------------------------------------------------------------------------------
# Text (IMDB)
# ------------------------------------------------------------------------------------------------


def test_tokens_are_characters_not_bytes():
    assert text.codepoints("né😀").tolist() == [ord("n"), ord("é"), ord("😀")]  # 3 characters, 7 UTF-8 bytes


def test_vocabulary_is_specials_then_frequent_characters_by_count_then_character():
    counter = text.CharCounter()
    for doc in ["bbbbaaaacc", "ddd", "z"]:
        counter.add(text.codepoints(doc))
    # counts: a 4, b 4, d 3, c 2, z 1; ties (a, b) by character
    assert counter.vocabulary(min_freq=1) == ["<pad>", "<unk>", "<eos>", "a", "b", "d", "c", "z"]
    assert counter.vocabulary(min_freq=3) == ["<pad>", "<unk>", "<eos>", "a", "b", "d"]
    encode = text.CharEncoder(counter.vocabulary(min_freq=3))
    assert encode.document(text.codepoints("dazc!"), l_max=5).tolist() == [5, 3, 1, 1, 2]  # z, c rare -> <unk>
    assert encode.document(text.codepoints("dazc!"), l_max=3).tolist() == [5, 3, 2]  # l_max - 1 chars + <eos>


def test_imdb_loader_reads_the_parquet_files(imdb_root):
    root, rows = imdb_root
    cfg = DataConfig(l_max=40)
    entry = text.prepare(root, cfg, progress=False)
    data = text.load(root, cfg)
    assert (len(data.train), len(data.test)) == (48, 24)
    assert data.val is data.test  # no validation split: test doubles as val, as in LRA
    assert (data.encoder, data.d_output, data.source) == ("embedding", 2, "release")
    vocab = list(np.load(entry / "vocab.npy"))
    assert vocab[:3] == ["<pad>", "<unk>", "<eos>"] and data.d_input == len(vocab)
    # the vocabulary: characters of the truncated training reviews seen >= 15 times, most frequent first
    counts: dict[str, int] = {}
    for t, _ in rows["train"]:
        for c in t[:39]:
            counts[c] = counts.get(c, 0) + 1
    expected = sorted((c for c in counts if counts[c] >= text.MIN_FREQ), key=lambda c: (-counts[c], c))
    assert vocab[3:] == expected and len(expected) < len(counts)  # some characters are rare -> <unk>
    for split, ds in (("train", data.train), ("test", data.test)):
        for i in (0, 7, 23):
            tokens, label = ds[i]
            t, y = rows[split][i]
            assert label == y
            assert len(tokens) == min(len(t), 39) + 1 and tokens[-1] == text.EOS
            assert [vocab[k] if k != text.UNK else None for k in tokens[:-1].tolist()] == \
                   [c if c in expected else None for c in t[:39]]
    x, y, lengths = data.collate([data.train[0], data.train[1], data.train[2]])
    assert x.shape == (3, int(lengths.max())) and x.dtype == torch.long
    assert all((x[i, lengths[i]:] == text.PAD).all() for i in range(3))


def test_missing_imdb_files_name_the_fix(tmp_path):
    with pytest.raises(DataError) as err:
        text.prepare(tmp_path, DataConfig(l_max=64))
    message = str(err.value)
    assert "train-*.parquet" in message and "suite data fetch text" in message and text.URL in message


def test_corrupt_imdb_file_is_a_data_error_naming_it(imdb_root):
    root, _ = imdb_root
    path = root / text.RAW_DIR / text.FILES["test"]
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=path.name):
        text.prepare(root, DataConfig(l_max=64))


def test_wrong_label_is_a_data_error_naming_the_row(imdb_root):
    root, _ = imdb_root
    write_imdb_shard(root / text.RAW_DIR / text.FILES["train"], [("fine", 0), ("odd", 7)])
    with pytest.raises(DataError, match="row 1: expected a review text and a label 0 or 1, found 'odd' / 7\\."):
        text.prepare(root, DataConfig(l_max=64))


def test_corrupt_cache_is_rebuilt(imdb_root):
    root, _ = imdb_root
    cfg = DataConfig(l_max=64)
    entry = text.prepare(root, cfg, progress=False)
    (entry / "train_tokens.npy").write_bytes(b"garbage")
    assert text.status(root, cfg).verified is False
    assert text.prepare(root, cfg, progress=False) == entry
    assert text.status(root, cfg).verified is True and len(text.load(root, cfg).train) == 48


def test_fetch_downloads_from_the_source_url(imdb_root, tmp_path, monkeypatch):
    """A local HTTP server stands in for huggingface.co: the files land where the loader reads them."""
    served, _ = imdb_root
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served / text.RAW_DIR))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(text, "URL", f"http://127.0.0.1:{server.server_port}/")
        root = tmp_path / "fresh"
        text.fetch(root, DataConfig(), progress=False)
    finally:
        server.shutdown()
    for name in text.FILES.values():
        assert (root / text.RAW_DIR / name).read_bytes() == (served / text.RAW_DIR / name).read_bytes()
    assert text.status(root, DataConfig()).present


def test_fetch_offline_fails_fast_with_the_url(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "URL", "http://127.0.0.1:9/imdb/")
    with pytest.raises(DataError) as err:
        text.fetch(tmp_path, DataConfig(), progress=False)
    assert "http://127.0.0.1:9/imdb/train-00000-of-00001.parquet" in str(err.value)
    assert str(tmp_path / text.RAW_DIR / text.FILES["train"]) in str(err.value)


# ------------------------------------------------------------------------------------------------
# Retrieval (AAN)
# ------------------------------------------------------------------------------------------------


def test_aan_rows_are_label_id_id_text_text_without_header(aan_root):
    root, rows = aan_root
    path = retrieval.tsv_path(root / retrieval.RELEASE_DIR, "train")
    read = list(retrieval.read_tsv(path))
    assert len(read) == 48  # the first line is data, not a header
    assert read[3] == (int(rows["train"][3][0]), rows["train"][3][3], rows["train"][3][4])
    assert '"best"' in "".join(a + b for _, a, b in read)  # quotes are plain characters (LRA: use_quote_delim=False)


def test_aan_labels_may_be_written_as_floats(tmp_path):
    path = tmp_path / "new_aan_pairs.train.tsv"
    write_aan(path, [("1.0", "a", "b", "x", "y"), ("0.0", "c", "d", "z", "w")])
    assert [label for label, _, _ in retrieval.read_tsv(path)] == [1, 0]


@pytest.mark.parametrize("line, problem", [("1\tid1\tid2\tonly one text\n", "expected 5"),
                                           ("yes\tid1\tid2\ta\tb\n", "expected the label 0 or 1")])
def test_malformed_aan_line_names_file_and_line(aan_root, line, problem):
    root, _ = aan_root
    path = retrieval.tsv_path(root / retrieval.RELEASE_DIR, "val")
    path.write_text("0\tid1\tid2\ta\tb\n" + line, encoding="utf-8")
    with pytest.raises(DataError, match=f"{path.name}, line 2: {problem}"):
        retrieval.prepare(root, DataConfig(l_max=64), progress=False)


def test_aan_loader_tokenizes_both_documents(aan_root):
    root, rows = aan_root
    cfg = DataConfig(l_max=30)
    entry = retrieval.prepare(root, cfg, progress=False)
    data = retrieval.load(root, cfg)
    assert (len(data.train), len(data.val), len(data.test)) == (48, 16, 16)
    vocab = list(np.load(entry / "vocab.npy"))
    train_chars = {c for r in rows["train"] for doc in (r[3][:29], r[4][:29]) for c in doc}
    assert vocab[:3] == ["<pad>", "<unk>", "<eos>"] and set(vocab[3:]) == train_chars  # min_freq 1
    for split in ("train", "val", "test"):
        a, b, label = data.split(split)[5]
        row = rows[split][5]
        assert label == int(row[0])
        for tokens, doc in ((a, row[3]), (b, row[4])):
            assert len(tokens) == min(len(doc), 29) + 1 and tokens[-1] == text.EOS
            assert [vocab[k] if k != text.UNK else None for k in tokens[:-1].tolist()] == \
                   [c if c in train_chars else None for c in doc[:29]]


def test_collate_pads_both_documents_to_one_length():
    batch = [(torch.tensor([5, 6, 2]), torch.tensor([7, 2]), 1), (torch.tensor([2]), torch.tensor([4, 4, 4, 4, 2]), 0)]
    x, y, lengths = retrieval.pad_pairs(batch)
    assert x.shape == (2, 2, 5) and y.tolist() == [1, 0] and lengths.tolist() == [[3, 2], [1, 5]]
    assert x[0, 0].tolist() == [5, 6, 2, 0, 0] and x[1, 1].tolist() == [4, 4, 4, 4, 2]


def pair_network(seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(S4D, dict(d_state=8), d_input=12, d_output=2, encoder="embedding",
                         d_model=16, n_layers=2, decoder="retrieval").eval()


def test_retrieval_head_encodes_both_documents_with_one_backbone():
    net = pair_network()
    torch.manual_seed(0)
    single = SequenceModel(S4D, dict(d_state=8), d_input=12, d_output=2, encoder="embedding",
                           d_model=16, n_layers=2, decoder="pool")
    n_params = lambda m: sum(p.numel() for p in m.parameters())
    assert n_params(net) - n_params(net.decoder) == n_params(single) - n_params(single.decoder)  # one backbone
    seen = {}
    net.encoder.register_forward_pre_hook(lambda m, inp: seen.update(encoder_input=inp[0].shape))
    net.decoder.register_forward_pre_hook(lambda m, inp: seen.update(features=inp[0].detach()))
    g = torch.Generator().manual_seed(1)
    x = torch.randint(3, 12, (3, 2, 16), generator=g)
    lengths = torch.tensor([[16, 9], [4, 16], [11, 11]])
    out = net(x, lengths)
    assert out.shape == (3, 2)
    assert seen["encoder_input"] == (6, 16)  # the 2B documents go through the same encoder and blocks
    # the first half of the features are the first documents: changing the second documents leaves them be
    features = seen["features"]
    x2 = x.clone()
    x2[:, 1] = torch.randint(3, 12, (3, 16), generator=g)
    net(x2, lengths)
    assert torch.allclose(seen["features"][:3], features[:3]) and not torch.allclose(seen["features"][3:], features[3:])


def test_retrieval_head_compares_the_pooled_documents():
    net = pair_network()
    head = net.decoder
    h = torch.randn(4, 16, 10)  # (2B, H, L): B = 2 pairs
    lengths = torch.tensor([10, 3, 7, 10])
    a = torch.stack([h[0, :, :10].mean(-1), h[1, :, :3].mean(-1)])
    b = torch.stack([h[2, :, :7].mean(-1), h[3, :, :10].mean(-1)])
    expected = head.mlp(torch.cat([a, b, a - b, a * b], -1))
    assert torch.allclose(head(h, lengths), expected, atol=1e-6)
    assert head.mlp[0].in_features == 4 * 16 and head.mlp[-1].out_features == 2


def test_retrieval_decoder_refuses_single_sequences():
    with pytest.raises(ValueError, match="document pairs"):
        pair_network()(torch.randint(3, 12, (2, 16)))


# ------------------------------------------------------------------------------------------------
# Through the CLI
# ------------------------------------------------------------------------------------------------


def metric_of_the_run(task: str) -> float:
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("lra").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["suite.task"] == task
    assert runs[0].info.status == "FINISHED"
    return runs[0].data.metrics["best/test/accuracy"]


def test_text_trains_through_the_cli(imdb_root):
    root, _ = imdb_root
    r = run_suite("run", "--task", "text", "--model", "s4d", "--preset", "smoke", "--data-dir", str(root),
                  "--max-epochs", "1", "--set", "data.l_max=64", "--set", "trainer.limit_val_batches=2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert 0.0 <= metric_of_the_run("text") <= 1.0


def test_retrieval_trains_through_the_cli(aan_root):
    root, _ = aan_root
    r = run_suite("run", "--task", "retrieval", "--model", "s4d", "--preset", "smoke", "--data-dir", str(root),
                  "--max-epochs", "1", "--set", "data.l_max=64", "--set", "trainer.limit_val_batches=2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert 0.0 <= metric_of_the_run("retrieval") <= 1.0


def test_corrupt_file_exits_4_through_the_cli(aan_root):
    root, _ = aan_root
    path = retrieval.tsv_path(root / retrieval.RELEASE_DIR, "test")
    path.write_text("1\tid1\tid2\tno second text\n", encoding="utf-8")
    r = run_suite("data", "prepare", "retrieval", "--data-dir", str(root))
    assert r.returncode == 4, r.stderr[-3000:]
    assert "new_aan_pairs.test.tsv, line 1" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------------
# Shared pieces in tasks.base: flat document storage and the status of raw files plus their cache
# ------------------------------------------------------------------------------------------------


def test_flat_documents_are_sliced_by_offsets_as_int64():
    from tasks.base import TokenDataset

    # documents [5, 6], [], [7, 8, 9] stored flat as uint8, one label each
    docs = TokenDataset(np.array([5, 6, 7, 8, 9], dtype=np.uint8), np.array([0, 2, 2, 5]), np.array([1, 0, 1]))
    assert len(docs) == 3
    assert docs.doc(2).tolist() == [7, 8, 9] and docs.doc(2).dtype == torch.int64
    seq, label = docs[1]
    assert seq.tolist() == [] and label == 0


def test_pair_dataset_item_i_is_documents_2i_and_2i_plus_1():
    tokens = np.arange(10, 20, dtype=np.uint16)
    pairs = retrieval.PairDataset(tokens, np.array([0, 1, 3, 6, 10]), np.array([0, 1]))  # 4 documents, 2 pairs
    assert len(pairs) == 2
    a, b, label = pairs[1]
    assert a.tolist() == [13, 14, 15] and b.tolist() == [16, 17, 18, 19] and label == 1


def test_raw_status_says_what_is_missing_and_whether_the_cache_verifies(tmp_path):
    from tasks import cache
    from tasks.base import raw_status

    def not_asked():
        raise AssertionError("the cache key fingerprints the raw files: not asked while some are missing")

    st = raw_status(tmp_path, ["a.tsv", "b.tsv"], not_asked, "release")
    assert (st.present, st.verified, st.note) == (False, None, "missing a.tsv, b.tsv")
    many = [f"{k}.wav" for k in range(7)]  # a whole tree missing: the note stays one line
    assert raw_status(tmp_path, many, not_asked, "release").note == "missing 0.wav, 1.wav, 2.wav, 3.wav and 3 more"

    (tmp_path / "a.tsv").write_text("xy")
    entry = tmp_path / "cache" / "k1"
    st = raw_status(tmp_path, [], lambda: (entry, "k1"), "release")
    assert (st.where, st.present, st.verified, st.size_bytes, st.note) == (tmp_path, True, None, 2, "release")
    (tmp_path / "other task's file").write_text("12345")  # a shared folder: count only the task's own files
    assert raw_status(tmp_path, [], lambda: (entry, "k1"), "release", files=[tmp_path / "a.tsv"]).size_bytes == 2

    cache.build(entry, "k1", lambda: {"x": np.arange(3)})
    assert raw_status(tmp_path, [], lambda: (entry, "k1"), "release").verified is True
    assert raw_status(tmp_path, [], lambda: (entry, "other key"), "release").verified is False
    np.save(entry / "x.npy", np.arange(4))  # contents no longer match the manifest's checksum
    assert cache.verified(entry, "k1") is False


# ------------------------------------------------------------------------------------------------
# degeneracies made visible: truncation by data.l_max and characters outside the vocabulary
# ------------------------------------------------------------------------------------------------


def test_imdb_truncation_and_unknown_characters_are_warned_and_counted(imdb_root, capsys):
    root, rows = imdb_root
    data = text.load(root, DataConfig(l_max=40))
    for split in ("train", "test"):
        cut = sum(len(t) > 39 for t, _ in rows[split]) / len(rows[split])
        assert 0 < cut < 1 and data.stats[f"data/truncated_fraction/{split}"] == pytest.approx(cut)
    tokens = np.concatenate([data.test[i][0].numpy() for i in range(len(data.test))])
    n_unk = int((tokens == text.UNK).sum())
    assert n_unk > 0 and data.stats["data/oov_tokens/test"] == n_unk  # the test split doubles as val
    assert data.stats["data/oov_fraction/test"] == pytest.approx(n_unk / len(tokens))
    err = capsys.readouterr().err.splitlines()
    assert sum(line.startswith("warning: text: data.l_max = 40 truncates examples to 39 tokens") for line in err) == 1
    assert any(line.startswith("warning: text: tokens outside the training vocabulary") and f"test {n_unk:,} of"
               in line for line in err)


def test_aan_truncation_is_counted_per_document(aan_root, capsys):
    root, rows = aan_root
    data = retrieval.load(root, DataConfig(l_max=100))
    for split in ("train", "val", "test"):
        docs = [d for r in rows[split] for d in (r[3], r[4])]
        cut = sum(len(d) > 99 for d in docs) / len(docs)
        assert 0 < cut < 1 and data.stats[f"data/truncated_fraction/{split}"] == pytest.approx(cut)
    assert "warning: retrieval: data.l_max = 100 truncates documents to 99 tokens + <eos>" in capsys.readouterr().err
    data = retrieval.load(root, DataConfig(l_max=4000))
    assert data.stats["data/truncated_fraction/train"] == 0 and data.stats["data/oov_tokens/val"] >= 0
    assert "truncates" not in capsys.readouterr().err
