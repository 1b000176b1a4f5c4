"""The downloader against a real local HTTP server: resume, checksum, offline errors, safe unpacking."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from tasks import download
from tasks.errors import DataError
from tests.conftest import run_suite


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support (what the real sources offer), quietly; `served` records each
    GET as (path, Range header or None, bytes of the body sent)."""

    served: list[tuple[str, str | None, int]]

    def log_message(self, *args):
        pass

    def send_head(self):
        body = self._send_head()
        if body is not None:
            size = len(body.getvalue()) if isinstance(body, io.BytesIO) else os.fstat(body.fileno()).st_size
            self.served.append((self.path, self.headers.get("Range"), size))
        return body

    def _send_head(self):
        range_header = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not range_header or not path.is_file():
            return super().send_head()
        start = int(range_header.removeprefix("bytes=").split("-")[0])
        data = path.read_bytes()
        if start >= len(data):
            self.send_error(416)
            return None
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        return io.BytesIO(data[start:])


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    served: list[tuple[str, str | None, int]] = []
    handler = functools.partial(type("Handler", (RangeHandler,), {"served": served}), directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()


def test_download_verifies_checksum_and_renames_only_when_complete(server, tmp_path):
    root, base, _ = server
    payload = bytes(range(256)) * 4000
    (root / "a.bin").write_bytes(payload)
    dest = tmp_path / "dl" / "a.bin"
    download.fetch_url(f"{base}/a.bin", dest, hashlib.sha256(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload
    assert not dest.with_name("a.bin.part").exists()


def test_download_resumes_a_partial_file(server, tmp_path):
    """The part file's bytes are kept: the server is asked for the rest only (Range), and sends only that."""
    root, base, served = server
    payload = b"0123456789" * 100_000
    (root / "big.bin").write_bytes(payload)
    dest = tmp_path / "big.bin"
    dest.with_name("big.bin.part").write_bytes(payload[:123_456])  # what a killed download leaves
    download.fetch_url(f"{base}/big.bin", dest, hashlib.sha256(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload
    assert served == [("/big.bin", "bytes=123456-", len(payload) - 123_456)]


def test_a_fresh_download_asks_for_the_whole_file(server, tmp_path):
    root, base, served = server
    (root / "new.bin").write_bytes(b"x" * 5000)
    download.fetch_url(f"{base}/new.bin", tmp_path / "new.bin", progress=False)
    assert served == [("/new.bin", None, 5000)]


def test_a_complete_part_file_is_kept_when_the_server_answers_416(server, tmp_path):
    """A kill after the last byte but before the rename: the Range starts at the end, the server says 416."""
    root, base, served = server
    payload = b"abc" * 1000
    (root / "done.bin").write_bytes(payload)
    dest = tmp_path / "done.bin"
    dest.with_name("done.bin.part").write_bytes(payload)
    download.fetch_url(f"{base}/done.bin", dest, hashlib.sha256(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload and served == []  # nothing sent again (416 has no body)


def test_a_server_without_range_support_restarts_the_file(tmp_path):
    """A 200 answer to a Range request is the whole file: the part file is replaced, not appended to."""
    root = tmp_path / "served"
    root.mkdir()
    payload = b"full file " * 3000
    (root / "f.bin").write_bytes(payload)
    handler = functools.partial(QuietHandler, directory=str(root))  # the standard handler ignores Range
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        dest = tmp_path / "f.bin"
        dest.with_name("f.bin.part").write_bytes(b"stale bytes from another version")
        download.fetch_url(f"http://127.0.0.1:{httpd.server_address[1]}/f.bin", dest,
                           hashlib.sha256(payload).hexdigest(), progress=False)
        assert dest.read_bytes() == payload
    finally:
        httpd.shutdown()


def test_checksum_mismatch_deletes_the_download_and_says_so(server, tmp_path):
    root, base, _ = server
    (root / "x.bin").write_bytes(b"not what was published")
    dest = tmp_path / "x.bin"
    with pytest.raises(DataError, match="checksum mismatch"):
        download.fetch_url(f"{base}/x.bin", dest, "0" * 64, progress=False)
    assert not dest.exists() and not dest.with_name("x.bin.part").exists()


def test_offline_fails_fast_naming_url_and_destination(tmp_path):
    dest = tmp_path / "downloads" / "lra_release.gz"
    url = "http://127.0.0.1:9/lra_release.gz"  # nothing listens on port 9
    with pytest.raises(DataError) as err:
        download.fetch_url(url, dest, progress=False)
    assert url in str(err.value) and str(dest) in str(err.value)


def test_extract_unpacks_only_the_requested_members(tmp_path):
    archive = tmp_path / "release.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        for name, text in {"lra_release/listops-1000/basic_test.tsv": "Source\tTarget\n",
                           "lra_release/tsv_data/new_aan_pairs.test.tsv": "x"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            t.addfile(info, io.BytesIO(text.encode()))
    download.extract(archive, tmp_path / "root", members="lra_release/listops-1000", progress=False)
    assert (tmp_path / "root/lra_release/listops-1000/basic_test.tsv").read_text() == "Source\tTarget\n"
    assert not (tmp_path / "root/lra_release/tsv_data").exists()


def test_extract_refuses_paths_outside_the_target(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as t:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DataError):
        download.extract(archive, tmp_path / "root", progress=False)
    assert not (tmp_path / "escaped.txt").exists()


def test_corrupt_archive_is_a_data_error(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DataError, match="not a readable archive"):
        download.extract(archive, tmp_path / "root", progress=False)


def test_fetch_listops_through_the_cli_offline_names_the_manual_path(tmp_path):
    r = run_suite("data", "fetch", "listops", "--data-dir", str(tmp_path / "d"),
                  env={"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                       "no_proxy": "", "NO_PROXY": ""})  # an ambient no_proxy would bypass the dead proxy
    assert r.returncode == 4, r.stderr
    assert "lra_release.gz" in r.stderr and str(tmp_path / "d" / "downloads" / "lra_release.gz") in r.stderr
    assert "Traceback" not in r.stderr


def test_data_status_lists_every_task(tmp_path):
    r = run_suite("data", "status", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    for name in ("listops", "text", "retrieval", "image", "pathfinder", "pathx", "scifar", "speech", "speech8k",
                 "bidmc_hr", "bidmc_rr", "bidmc_spo2"):
        assert name in r.stdout
    listops = next(line for line in r.stdout.splitlines() if line.startswith("listops"))
    assert "no" in listops and "basic_train.tsv" in listops
