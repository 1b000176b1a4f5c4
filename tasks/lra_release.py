"""The Long Range Arena release archive: one tarball holding ListOps, AAN (Retrieval) and Pathfinder/Path-X.

`lra_release.gz` (a gzipped tar, about 7 GB) unpacks to `lra_release/{listops-1000, tsv_data,
pathfinder32, pathfinder64, pathfinder128, pathfinder256}/`. `fetch` downloads it once to
<root>/downloads/ (resumable) and unpacks only the members a task needs, into <root>/.
"""

from __future__ import annotations

from pathlib import Path

from tasks import download

URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"
ARCHIVE = Path("downloads") / "lra_release.gz"


def fetch(root: Path, member: str, progress: bool = True) -> Path:
    """Make sure <root>/lra_release/<member>/ is unpacked from the release archive; return that folder."""
    target = root / "lra_release" / member
    if target.is_dir() and any(target.iterdir()):
        return target
    archive = download.fetch_url(URL, root / ARCHIVE, progress=progress)
    download.extract(archive, root, members=f"lra_release/{member}", progress=progress)
    return target
