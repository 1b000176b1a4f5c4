"""Reader for the `.ts` time-series format of the UEA/UCR and Monash TSER archives (sktime's format).

A file is: `#` comment lines, then header tags (case-insensitive), then `@data` and one case per line:

    @problemName BIDMC32HR
    @timeStamps false
    @missing false
    @univariate false
    @dimensions 2
    @equalLength true
    @seriesLength 4000
    @targetlabel true
    @data
    0.51,0.49,...:0.12,0.10,...:93.0

Dimensions are separated by ':', values by ',', '?' is a missing value (read as NaN), and with
`@targetlabel true` the last field is the real-valued target. Only this layout (no timestamps) is
read; anything malformed is a DataError naming the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tasks.errors import DataError

BOOL_TAGS = ("timestamps", "missing", "univariate", "equallength", "targetlabel", "classlabel")
INT_TAGS = ("dimensions", "serieslength")


@dataclass
class TsFile:
    x: np.ndarray  # (n_cases, length, n_dimensions) float32, NaN where the file has '?'
    y: np.ndarray  # (n_cases,) float64 targets
    header: dict = field(default_factory=dict)  # tag (lower case) -> value: bool, int or str


def _error(path: Path, line: int, what: str) -> DataError:
    return DataError(f"{path}, line {line}: {what}.",
                     hint="the file is damaged or not a Monash regression .ts file; delete it and fetch it again")


def _parse_header(path: Path, number: int, text: str, header: dict) -> None:
    tag, _, value = text[1:].partition(" ")
    tag, value = tag.lower(), value.strip()
    if tag in BOOL_TAGS:
        word = value.split(" ")[0].lower()
        if word not in ("true", "false"):
            raise _error(path, number, f"@{tag} needs true or false, found {value!r}")
        header[tag] = word == "true"
    elif tag in INT_TAGS:
        if not value.isdigit():
            raise _error(path, number, f"@{tag} needs a whole number, found {value!r}")
        header[tag] = int(value)
    else:
        header[tag] = value


def _parse_case(path: Path, number: int, text: str, n_dims: int | None) -> tuple[list[np.ndarray], float]:
    fields = text.split(":")
    *dims, target = fields
    if not dims:
        raise _error(path, number, "expected '<values>:...:<target>', found no ':'")
    if n_dims is not None and len(dims) != n_dims:
        raise _error(path, number, f"expected {n_dims} dimensions, found {len(dims)}")
    series = []
    for d, values in enumerate(dims, start=1):
        try:
            series.append(np.array(values.replace("?", "nan").split(","), dtype=np.float64))
        except ValueError as exc:
            raise _error(path, number, f"dimension {d} holds a value that is not a number ({exc})") from None
    try:
        y = float(target)
    except ValueError:
        raise _error(path, number, f"the target {target.strip()!r} is not a number") from None
    return series, y


def read_ts(path: Path, progress: bool = False) -> TsFile:
    """Parse a regression `.ts` file (equal-length series, no timestamps) into arrays."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist.", hint="fetch the dataset again")
    header: dict = {}
    cases: list[list[np.ndarray]] = []
    targets: list[float] = []
    in_data = False
    with open(path, encoding="latin-1") as f:
        lines = f
        if progress:
            from tasks.progress import bar as progress_bar

            lines = progress_bar(f, desc=f"parsing {path.name}", unit=" lines")
        for number, raw in enumerate(lines, start=1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            if not in_data:
                if not text.startswith("@"):
                    raise _error(path, number, f"expected a header tag or @data, found {text[:40]!r}")
                if text.lower() == "@data":
                    _check_header(path, number, header)
                    in_data = True
                else:
                    _parse_header(path, number, text, header)
                continue
            series, y = _parse_case(path, number, text, header.get("dimensions"))
            length = header.get("serieslength", len(series[0]))
            if any(len(s) != length for s in series):
                raise _error(path, number, f"expected series of length {length}, found "
                                           f"{', '.join(str(len(s)) for s in series)}")
            if not header.get("missing", True) and any(np.isnan(s).any() for s in series):
                raise _error(path, number, "a missing value '?' in a file whose header says @missing false")
            cases.append(series)
            targets.append(y)
    if not in_data:
        raise DataError(f"{path}: no @data line; this is not a .ts file.", hint="delete it and fetch it again")
    if not cases:
        raise DataError(f"{path}: the @data section is empty.", hint="delete it and fetch it again")
    x = np.stack([np.stack(c, axis=-1) for c in cases]).astype(np.float32)  # (n, length, dims)
    return TsFile(x, np.array(targets, dtype=np.float64), header)


def _check_header(path: Path, number: int, header: dict) -> None:
    if header.get("timestamps"):
        raise _error(path, number, "files with @timeStamps true are not supported")
    if not header.get("targetlabel"):
        raise _error(path, number, "not a regression file (the header lacks '@targetlabel true')")
    if header.get("equallength") is False:
        raise _error(path, number, "files with @equalLength false are not supported")
