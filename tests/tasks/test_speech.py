"""Speech Commands: the archive's folder layout read with `wave`, the official list splits, padding, the
reference's standardisation, the 8 kHz test (x[::2] at rate 2, or torchaudio), and runs through the CLI."""

from __future__ import annotations

import os
import hashlib
import http.server
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from suite.config import DataConfig
from tasks import speech
from tasks.errors import DataError
from tasks.wav import read_pcm16, write_pcm16
from tests.conftest import run_suite

# A smoke run on 16000-sample clips, cut to a few batches so that it takes seconds on 2 CPU cores.
FEW_BATCHES = ("--set", "trainer.batch_size=4", "--set", "trainer.limit_train_batches=3",
               "--set", "trainer.limit_val_batches=2")
CLIPS_PER_WORD = 4  # clip 0, 1: train; clip 2: validation_list.txt; clip 3: testing_list.txt


def write_speech_commands(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A Speech Commands v0.02 tree as the archive unpacks: one folder per word of 16-bit mono 16 kHz WAVs
    (`<speaker>_nohash_<n>.wav`, some shorter than 1 s), `_background_noise_`, and the two list files."""
    rng = np.random.default_rng(seed)
    clips, val, test = {}, [], []
    for w, word in enumerate(speech.CLASSES):
        (folder / word).mkdir(parents=True)
        for k in range(CLIPS_PER_WORD):
            n = int(rng.integers(3000, speech.CLIP + 1))
            samples = rng.integers(-3000, 3000, n).astype(np.int16) + np.int16(40 * w)  # class-dependent offset
            rel = f"{word}/{k:08x}_nohash_{k}.wav"
            write_pcm16(folder / rel, samples)
            clips[rel] = samples
            (val if k == 2 else test if k == 3 else []).append(rel)
    (folder / "_background_noise_").mkdir()
    write_pcm16(folder / "_background_noise_" / "white_noise.wav", rng.integers(-9000, 9000, 48000))
    (folder / "validation_list.txt").write_text("\n".join(val) + "\n")
    (folder / "testing_list.txt").write_text("\n".join(test) + "\n")
    return clips


@pytest.fixture
def sc_root(tmp_path):
    root = tmp_path / "data"
    clips = write_speech_commands(root / speech.RAW_DIR)
    return root, clips


def test_wav_reader_round_trips_16_bit_pcm(tmp_path):
    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    write_pcm16(tmp_path / "a.wav", samples)
    out = read_pcm16(tmp_path / "a.wav", rate=16000)
    assert out.dtype == np.int16 and np.array_equal(out, samples)


def test_wav_reader_names_the_file_it_cannot_use(tmp_path):
    import wave

    with wave.open(str(tmp_path / "stereo.wav"), "wb") as f:
        f.setnchannels(2), f.setsampwidth(2), f.setframerate(16000), f.writeframes(b"\0" * 400)
    with pytest.raises(DataError, match=r"stereo\.wav: expected 16-bit mono PCM"):
        read_pcm16(tmp_path / "stereo.wav")
    write_pcm16(tmp_path / "slow.wav", np.zeros(10, np.int16), rate=8000)
    with pytest.raises(DataError, match=r"slow\.wav: expected a sample rate of 16000 Hz"):
        read_pcm16(tmp_path / "slow.wav", rate=16000)
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x10\0\0\0WAVEjunk")
    with pytest.raises(DataError, match=r"junk\.wav: not a readable WAV file"):
        read_pcm16(tmp_path / "junk.wav")


def test_splits_follow_the_official_lists_and_labels_the_reference_order(sc_root):
    root, clips = sc_root
    splits = speech.scan(root / speech.RAW_DIR)
    assert {s: len(v) for s, v in splits.items()} == {"train": 70, "val": 35, "test": 35}
    val_list = set((root / speech.RAW_DIR / "validation_list.txt").read_text().split())
    assert {rel for rel, _ in splits["val"]} == val_list
    assert all(rel.endswith("_nohash_3.wav") for rel, _ in splits["test"])
    assert all(rel.endswith(("_nohash_0.wav", "_nohash_1.wav")) for rel, _ in splits["train"])
    assert all(speech.CLASSES[label] == rel.split("/")[0] for s in splits.values() for rel, label in s)
    assert speech.CLASSES[:3] == ("bed", "cat", "down") and len(speech.CLASSES) == 35
    assert not any("_background_noise_" in rel for s in splits.values() for rel, _ in s)


def reference_inputs(clips: dict[str, np.ndarray], items: list[tuple[str, int]]) -> torch.Tensor:
    """The reference's tensor before normalisation: torchaudio's float audio (int16 / 2^15) divided by 2^15
    again, zero-padded on the right to 16000 samples, shaped (n, 1, 16000) float32."""
    audio = [torch.from_numpy(clips[rel].astype(np.float32)) / 2**15 / 2**15 for rel, _ in items]
    return torch.stack([torch.nn.functional.pad(a, (0, 16000 - len(a))) for a in audio])[:, None, :]


def reference_normalise_per_position(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """The reference's `normalize_all_data` on raw (n, 1, 16000) inputs: its loop runs over the last axis,
    the 16000 time positions, and standardises each position t with the mean and (unbiased) std of the
    training clips at t, in float32: (x - mean_t) / (std_t + 1e-5)."""
    out = [t.clone() for t in (train, *others)]
    for t in range(train.shape[-1]):
        mean, std = train[:, :, t].mean(), train[:, :, t].std()
        for x in out:
            x[:, :, t] = (x[:, :, t] - mean) / (std + 1e-5)
    return out


def test_clips_are_zero_padded_and_standardised_per_position_as_the_reference(sc_root):
    root, clips = sc_root
    data = speech.load(root, DataConfig(l_max=16000))  # data.speech.normalize = per_position, the default
    splits = speech.scan(root / speech.RAW_DIR)
    raw = {s: reference_inputs(clips, splits[s]) for s in speech.SPLITS}
    ref = dict(zip(speech.SPLITS, reference_normalise_per_position(raw["train"], raw["val"], raw["test"])))
    for s in speech.SPLITS:
        ours = torch.stack([data.split(s)[i][0] for i in range(len(splits[s]))])  # (n, 16000, 1)
        assert ours.shape == (len(splits[s]), 16000, 1) and ours.dtype == torch.float32
        assert [data.split(s)[i][1] for i in range(len(splits[s]))] == [label for _, label in splits[s]]
        torch.testing.assert_close(ours[:, :, 0], ref[s][:, 0], rtol=1e-5, atol=2e-6)
    # Per position, not one global mean/std: the reference's global standardisation gives other numbers.
    flat = raw["train"].flatten()
    global_x = (raw["val"] - flat.mean()) / (flat.std() + 1e-5)
    assert (torch.stack([data.val[i][0] for i in range(35)])[:, :, 0] - global_x[:, 0]).abs().max() > 1e-2
    assert (data.encoder, data.d_input, data.d_output, data.problem, data.l_max) == ("linear", 1, 35,
                                                                                        "classification", 16000)
    xb, yb, lengths = data.collate([data.val[0], data.val[1]])
    assert xb.shape == (2, 16000, 1) and yb.tolist() == [data.val[0][1], data.val[1][1]] and lengths is None


def test_positions_no_training_clip_reaches_are_divided_by_the_scaled_epsilon(sc_root):
    """The fixture's longest training clip is shorter than 16000 samples: the tail after it is zero in every
    padded training clip (mean 0, std 0), so the reference divides there by its epsilon 1e-5 at the
    int16 / 2^30 scale: a test clip's sample v becomes v / (1e-5 * 2^30), finite, never v / 0."""
    root, clips = sc_root
    splits = speech.scan(root / speech.RAW_DIR)
    longest = max(len(clips[rel]) for rel, _ in splits["train"])
    assert longest < 16000
    rel = splits["test"][0][0]  # a full-length test clip, reaching into the tail
    clips[rel] = np.random.default_rng(1).integers(-3000, 3000, 16000).astype(np.int16)
    write_pcm16(root / speech.RAW_DIR / rel, clips[rel])
    data = speech.load(root, DataConfig())
    assert data.stats == {"data/zero_std_positions": 16000 - longest}
    x = data.test[0][0][longest:, 0].numpy()
    assert np.all(np.isfinite(x)) and np.abs(x).max() < 1
    np.testing.assert_allclose(x, clips[rel][longest:] / (1e-5 * 2**30), rtol=1e-5)
    shorter = splits["test"][1][0]
    assert len(clips[shorter]) < longest and torch.all(data.test[1][0][longest:] == 0)  # padding there: (0 - 0) / eps


def test_statistics_do_not_depend_on_the_chunk_size(sc_root):
    root, _ = sc_root
    x = np.load(speech.prepare(root, DataConfig(), progress=False) / "train_x.npy")  # (70, 16000) int16
    np.testing.assert_allclose(speech.position_standardisation(x, chunk=7), speech.position_standardisation(x),
                               rtol=1e-12)
    mean, scale = speech.standardisation(x, chunk=7)
    assert mean == pytest.approx(x.astype(np.float64).mean()) and scale == pytest.approx(x.std(ddof=1) + speech.EPS)


def test_global_option_standardises_with_one_mean_and_std(sc_root):
    root, clips = sc_root
    data = speech.load(root, DataConfig(speech=speech.SpeechOptions(normalize="global")))
    assert data.stats == {}
    # The reference's arithmetic with one mean and std over every (padded) training sample.
    train = speech.scan(root / speech.RAW_DIR)["train"]
    padded = np.stack([np.pad(clips[rel], (0, 16000 - len(clips[rel]))) for rel, _ in train]) / 2**15 / 2**15
    mean, std = padded.mean(), torch.from_numpy(padded).std().item()
    for i in (0, 5, 69):
        rel, label = train[i]
        x, y = data.train[i]
        assert x.shape == (16000, 1) and x.dtype == torch.float32 and y == label
        expected = (np.pad(clips[rel], (0, 16000 - len(clips[rel]))) / 2**30 - mean) / (std + 1e-5)
        np.testing.assert_allclose(x[:, 0].numpy(), expected, rtol=1e-5, atol=1e-6)
        n = len(clips[rel])
        assert torch.all(x[n:, 0] == x[-1, 0])  # the padded tail is the standardised zero


def test_the_8khz_input_is_the_16khz_standardised_clip_decimated(sc_root):
    """The reference normalises the 16 kHz tensors, then its eval collate keeps every second sample: 8 kHz
    position j carries the statistics of 16 kHz position 2j."""
    root, clips = sc_root
    data = speech.load(root, DataConfig())
    splits = speech.scan(root / speech.RAW_DIR)
    raw = {s: reference_inputs(clips, splits[s]) for s in ("train", "test")}
    _, ref_test = reference_normalise_per_position(raw["train"], raw["test"])
    x8, y8, _ = data.collate_eval["test8k"]([data.test[i] for i in range(35)])
    assert x8.shape == (35, 8000, 1) and y8.tolist() == [label for _, label in splits["test"]]
    torch.testing.assert_close(x8[:, :, 0], ref_test[:, 0, ::2], rtol=1e-5, atol=2e-6)


def test_a_split_without_clips_is_a_data_error_naming_its_list(sc_root):
    """Before: a folder without a validation clip trained an epoch, then Lightning failed (exit 1)."""
    root, _ = sc_root
    (root / speech.RAW_DIR / "validation_list.txt").write_text("nosuchword/0_nohash_0.wav\n")
    with pytest.raises(DataError, match=r"split 'val' is empty: .*validation_list\.txt names no clip"):
        speech.prepare(root, DataConfig(), progress=False)
    r = run_suite("run", "--task", "speech", "--model", "s4d", "--preset", "smoke", "--data-dir", str(root),
                  "--max-epochs", "1", *FEW_BATCHES)
    assert r.returncode == 4 and "split 'val' is empty" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_the_8khz_test_is_every_second_sample_at_rate_2(sc_root):
    root, _ = sc_root
    data = speech.load(root, DataConfig())
    assert data.eval_splits == ["val", "test", "test8k"]
    assert data.split("test8k") is data.test and data.eval_rate == {"test8k": 2.0}
    batch = [data.test[i] for i in range(3)]
    x16, y16, _ = data.collate(batch)
    x8, y8, lengths = data.collate_eval["test8k"](batch)
    assert x8.shape == (3, 8000, 1) and lengths is None and torch.equal(y8, y16)
    assert torch.equal(x8, x16[:, ::2])


def tone(freq: float, n: int = 16000, rate: int = 16000) -> torch.Tensor:
    return torch.sin(2 * torch.pi * freq * torch.arange(n) / rate)[:, None]  # (n, 1)


def test_torchaudio_option_filters_what_decimation_aliases(sc_root):
    """A 6 kHz tone lies above the 4 kHz Nyquist limit of 8 kHz audio: x[::2] folds it to 2 kHz at full
    strength, torchaudio's resampling removes it; a 500 Hz tone passes both."""
    root, _ = sc_root
    data = speech.load(root, DataConfig(speech=speech.SpeechOptions(resample="torchaudio")))
    assert data.collate_eval["test8k"] is speech.resample_clips
    for freq, kept in ((500.0, True), (6000.0, False)):
        batch = [(tone(freq), 0)]
        resampled = speech.resample_clips(batch)[0][0, 500:-500, 0]
        decimated = speech.decimate_clips(batch)[0][0, 500:-500, 0]
        assert resampled.shape == decimated.shape
        assert decimated.pow(2).mean().sqrt() > 0.6  # a sine's RMS is 0.707
        assert (resampled.pow(2).mean().sqrt() > 0.6) == kept


def test_missing_data_names_the_fetch_and_the_url(tmp_path):
    with pytest.raises(DataError) as err:
        speech.prepare(tmp_path, DataConfig())
    text = str(err.value)
    assert "validation_list.txt" in text and "suite data fetch speech" in text and speech.URL in text


def test_corrupt_wav_is_a_data_error_naming_it(sc_root):
    root, _ = sc_root
    bad = root / speech.RAW_DIR / "yes" / "00000001_nohash_1.wav"
    bad.write_bytes(b"not a wav file at all")
    with pytest.raises(DataError, match=r"yes/00000001_nohash_1\.wav"):
        speech.prepare(root, DataConfig(), progress=False)


def test_corrupt_cache_is_detected_and_rebuilt(sc_root):
    root, _ = sc_root
    entry = speech.prepare(root, DataConfig(), progress=False)
    assert speech.status(root, DataConfig()).verified is True
    (entry / "train_x.npy").write_bytes(b"garbage")
    assert speech.status(root, DataConfig()).verified is False
    assert speech.prepare(root, DataConfig(), progress=False) == entry
    assert speech.status(root, DataConfig()).verified is True and len(speech.load(root, DataConfig()).train) == 70


def test_fetch_offline_fails_fast_with_the_url(tmp_path, monkeypatch):
    monkeypatch.setattr(speech, "URL", "http://127.0.0.1:9/speech_commands_v0.02.tar.gz")
    with pytest.raises(DataError) as err:
        speech.fetch(tmp_path, DataConfig(), progress=False)
    assert "http://127.0.0.1:9/speech_commands_v0.02.tar.gz" in str(err.value)
    assert str(tmp_path / speech.ARCHIVE) in str(err.value)


@pytest.fixture
def served_archive(tmp_path):
    """The fixture tree packed like the real archive (members ./<word>/..., ./validation_list.txt) and
    served over HTTP from this machine."""
    src = tmp_path / "src"
    write_speech_commands(src)
    site = tmp_path / "site"
    site.mkdir()
    with tarfile.open(site / "speech_commands_v0.02.tar.gz", "w:gz") as tar:
        tar.add(src, arcname=".")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    digest = hashlib.sha256((site / "speech_commands_v0.02.tar.gz").read_bytes()).hexdigest()
    yield f"http://127.0.0.1:{server.server_port}/speech_commands_v0.02.tar.gz", digest
    server.shutdown()


def test_fetch_downloads_checks_and_unpacks_the_archive(tmp_path, monkeypatch, served_archive):
    url, digest = served_archive
    root = tmp_path / "data"
    monkeypatch.setattr(speech, "URL", url)
    monkeypatch.setattr(speech, "SHA256", "0" * 64)
    with pytest.raises(DataError, match="checksum mismatch"):
        speech.fetch(root, DataConfig(), progress=False)
    monkeypatch.setattr(speech, "SHA256", digest)
    speech.fetch(root, DataConfig(), progress=False)
    assert (root / speech.RAW_DIR / "testing_list.txt").is_file()
    assert speech.status(root, DataConfig()).present
    assert len(speech.load(root, DataConfig()).test) == 35


# ------------------------------------------------------------------------------------------------
# through the CLI
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("speech_e2e")
    write_speech_commands(tmp / "data" / speech.RAW_DIR)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    env = {"SUITE_DATA": "", "MLFLOW_TRACKING_URI": uri}
    r = run_suite("run", "--task", "speech", "--model", "s4d", "--preset", "smoke", "--data-dir", str(tmp / "data"),
                  "--max-epochs", "1", *FEW_BATCHES, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("speech").experiment_id])
    return client, run, tmp, env


def test_speech_run_logs_the_8khz_test(speech_run):
    client, run, _, _ = speech_run
    assert run.info.status == "FINISHED" and run.data.tags["suite.task"] == "speech"
    m = run.data.metrics
    for key in ("val/accuracy", "test/accuracy", "test8k/accuracy", "test8k/loss"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 1, key
    assert 0.0 <= m["best/test8k/accuracy"] <= 1.0
    assert m["best/test8k/accuracy"] == m["test8k/accuracy"]  # one epoch: the best one


def test_test8k_is_the_checkpoint_on_every_second_sample_at_rate_2(speech_run):
    """Independently of the trainer: the run's best checkpoint, fed the reference's 8 kHz input (the test
    clips read from their WAV files, standardised per position at 16 kHz, every second sample) with its
    step size doubled, gives the logged test8k loss and accuracy; at rate 1 (the plain 16 kHz step) it
    does not."""
    from suite.config import RunConfig, from_dict
    from suite.train.build import build_model
    from suite.train.record import run_checkpoint_dir

    _, run, tmp, env = speech_run
    ckpt = run_checkpoint_dir(env["MLFLOW_TRACKING_URI"], run.info.run_id) / "best.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = from_dict(RunConfig, state["suite_config"])
    folder = tmp / "data" / speech.RAW_DIR
    splits = speech.scan(folder)
    clips = {rel: read_pcm16(folder / rel) for s in ("train", "test") for rel, _ in splits[s]}
    _, ref_test = reference_normalise_per_position(reference_inputs(clips, splits["train"]),
                                                   reference_inputs(clips, splits["test"]))
    t = cfg.trainer
    n = min(len(splits["test"]), int(t.limit_val_batches) * (t.eval_batch_size or t.batch_size))  # what was evaluated
    x8 = ref_test[:n, 0, ::2, None]  # (n, 8000, 1)
    y = torch.tensor([label for _, label in splits["test"][:n]])
    data = speech.load(tmp / "data", cfg.data)
    model = build_model(cfg, data)
    model.load_state_dict({k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")})
    model.eval()
    with torch.no_grad():
        out = {rate: model(x8, None, rate) for rate in (2.0 * cfg.model.rate, 1.0 * cfg.model.rate)}
    loss = {rate: torch.nn.functional.cross_entropy(o, y).item() for rate, o in out.items()}
    m = run.data.metrics
    rate2, rate1 = 2.0 * cfg.model.rate, 1.0 * cfg.model.rate
    # Three training batches leave the logits close to the biases, so the rates' losses differ by only ~4e-5
    # (here 3.440826 at rate 2, 3.440789 at rate 1); the same computation agrees to float32 rounding (~1e-7).
    assert m["best/test8k/loss"] == pytest.approx(loss[rate2], abs=1e-6)
    assert abs(m["best/test8k/loss"] - loss[rate1]) > 1e-5
    assert m["best/test8k/accuracy"] == pytest.approx((out[rate2].argmax(-1) == y).float().mean().item())


def test_speech8k_from_run_evaluates_the_best_checkpoint_at_8khz(speech_run):
    client, source, tmp, env = speech_run
    r = run_suite("run", "--task", "speech8k", "--model", "s4d", "--preset", "smoke", "--data-dir",
                  str(tmp / "data"), "--from-run", source.info.run_id, *FEW_BATCHES, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = client.search_runs([client.get_experiment_by_name("speech").experiment_id],
                              f"tags.`suite.from_run` = '{source.info.run_id}'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["suite.task"] == "speech8k"
    # the tags of every run (suite.train.record.run_tags): the trained model's, the owner's, the description
    for key in ("suite.model", "suite.preset", "suite.recipe", "suite.recipe_source", "suite.seed"):
        assert run.data.tags[key] == source.data.tags[key], key
    assert {"suite.host", "suite.pid", "suite.git_commit", "suite.device", "mlflow.note.content"} <= set(run.data.tags)
    m, src = run.data.metrics, source.data.metrics
    # The same weights on the same data give the numbers the training logged at its best epoch.
    assert m["val/accuracy"] == pytest.approx(src["best/val/accuracy"])
    assert m["test8k/accuracy"] == pytest.approx(src["best/test8k/accuracy"])
    assert m["best/test8k/accuracy"] == m["test8k/accuracy"] and m["best/test/accuracy"] == m["test/accuracy"]
    assert run.data.params["model.d_model"] == "32"


def test_from_run_refuses_a_mismatched_model_task_or_run(speech_run, monkeypatch):
    from suite.config import resolve
    from suite.errors import ConfigError, TrackingError
    from suite.train.evaluate import evaluate_from_run

    _, source, tmp, env = speech_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    with pytest.raises(ConfigError, match="--model s4, but run .* trained model 's4d'"):
        evaluate_from_run(resolve("speech8k", "s4", "smoke"), source.info.run_id)
    with pytest.raises(ConfigError, match="--from-run is for the task speech8k"):
        evaluate_from_run(resolve("speech", "s4d", "smoke"), source.info.run_id)
    with pytest.raises(TrackingError, match="no MLflow run '0+'"):
        evaluate_from_run(resolve("speech8k", "s4d", "smoke"), "0" * 32)


def test_speech8k_trains_like_speech_and_is_tagged_speech8k(tmp_path):
    write_speech_commands(tmp_path / "data" / speech.RAW_DIR)
    r = run_suite("run", "--task", "speech8k", "--model", "s4d", "--preset", "smoke", "--data-dir",
                  str(tmp_path / "data"), "--max-epochs", "1", *FEW_BATCHES)
    assert r.returncode == 0, r.stderr[-3000:]
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    (run,) = client.search_runs([client.get_experiment_by_name("speech").experiment_id])
    assert run.data.tags["suite.task"] == "speech8k"
    assert "best/test8k/accuracy" in run.data.metrics and run.data.params["optim.lr"] == "0.004"


def test_registry_reports_speech8k_on_the_8khz_split():
    from suite import registry

    assert registry.task("speech8k").split == "test8k" and registry.task("speech").split == "test"
