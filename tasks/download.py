"""Downloads from the real sources: resumable, with a progress bar, checked where a checksum is known.

A download goes to `<dest>.part` first and is renamed only when complete (and verified), so a killed
download resumes from where it stopped (HTTP Range) and a partial file is never mistaken for data.
Offline, the first connection error becomes a DataError naming the URL and the exact place to put a
file downloaded by hand.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tasks.errors import DataError

CHUNK = 1 << 20
TIMEOUT_S = 20


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _progress(total: int | None, initial: int, name: str):
    from tasks.progress import bar as progress_bar

    return progress_bar(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name)


def fetch_url(url: str, dest: Path, sha256_hex: str | None = None, progress: bool = True) -> Path:
    """Download `url` to `dest` unless a complete, verified file is already there; return `dest`.

    Resumes `<dest>.part` with an HTTP Range request; verifies `sha256_hex` when given (a mismatch deletes
    the file and raises DataError); any network failure raises DataError with the manual-download fix.
    """
    dest = Path(dest)
    if dest.is_file():
        if sha256_hex is None or sha256(dest) == sha256_hex:
            return dest
        raise DataError(
            f"{dest} exists but its SHA-256 is not the published {sha256_hex}.",
            hint=f"delete it and run the fetch again, or download {url} by hand to {dest}",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "ssm-suite", **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file is already complete
            response = None
        else:
            raise _offline(url, dest, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _offline(url, dest, str(getattr(exc, "reason", exc))) from None
    if response is not None:
        with response:
            resumed = response.status == 206
            if not resumed:
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length else None
            bar = _progress(total, have, dest.name) if progress else None
            try:
                with open(part, "ab" if resumed else "wb") as f:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        f.write(block)
                        if bar is not None:
                            bar.update(len(block))
            except (urllib.error.URLError, OSError) as exc:
                raise _offline(url, dest, f"connection lost after {part.stat().st_size:,} bytes ({exc}); "
                                          "run the same command again to resume") from None
            finally:
                if bar is not None:
                    bar.close()
    if sha256_hex is not None:
        digest = sha256(part)
        if digest != sha256_hex:
            part.unlink()
            raise DataError(
                f"checksum mismatch for {url}: got SHA-256 {digest}, expected {sha256_hex}.",
                hint="the partial download was deleted; run the fetch again (or check the source has not changed)",
            )
    part.replace(dest)
    return dest


def _offline(url: str, dest: Path, reason: str) -> DataError:
    return DataError(
        f"cannot download {url}: {reason}.",
        hint=f"on a machine with internet access download it by hand and put it at {dest} "
             "(the same command then uses it), or check your network / proxy settings",
    )


def extract(archive: Path, into: Path, members: str | None = None, progress: bool = True) -> None:
    """Unpack a .tar(.gz) or .zip archive into `into`; `members` keeps only paths starting with that prefix.

    Unpacks into a temporary sibling folder and moves the result into place, so an interrupted
    extraction leaves nothing that looks complete. Paths escaping `into` are refused.
    """
    into = Path(into)
    tmp = into.with_name(into.name + ".extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    name = archive.name
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                names = [n for n in z.namelist() if members is None or n.startswith(members)]
                for n in _bar(names, name, progress):
                    _check_inside(tmp, n)
                    z.extract(n, tmp)
        else:
            with tarfile.open(archive) as t:
                for m in _bar(t, name, progress):
                    if members is not None and not m.name.startswith(members):
                        continue
                    _check_inside(tmp, m.name)
                    t.extract(m, tmp, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"{archive} is not a readable archive ({exc}).",
                        hint=f"delete {archive} and fetch it again") from None
    into.mkdir(parents=True, exist_ok=True)
    for child in tmp.iterdir():
        target = into / child.name
        if target.exists():
            _merge(child, target)
        else:
            child.replace(target)
    shutil.rmtree(tmp, ignore_errors=True)


def _merge(src: Path, dst: Path) -> None:
    if src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _merge(child, dst / child.name) if (dst / child.name).exists() else child.replace(dst / child.name)
    else:
        src.replace(dst)


def _check_inside(root: Path, name: str) -> None:
    if not (root / name).resolve().is_relative_to(root.resolve()):
        raise DataError(f"archive member {name!r} would be written outside {root}; refusing to unpack.")


def _bar(items, name: str, progress: bool):
    if not progress:
        return items
    from tasks.progress import bar as progress_bar

    return progress_bar(items, desc=f"unpacking {name}", unit=" files")
