"""The published rows of results/paper.yaml, checked against the table's columns and the model registry, and
the runs of ours each is the result of (`counterparts`: the Δ rows of a table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from suite import registry
from suite.errors import ConfigError
from suite.paths import RESULTS_DIR
from suite.report.columns import family_columns
from suite.report.runs import RunRecord, run_config

PAPER_FILE = RESULTS_DIR / "paper.yaml"
# The params a published row's counterpart is told apart by (see results/paper.yaml, `counterparts`).
COUNTERPART_PARAMS = {"init": "model.init", "liquid_mode": "model.liquid_mode", "liquid": "model.liquid_kernel"}
FROM_PAPER = {"abstract": "the paper's abstract", "text": "the paper's text"}  # results/paper.yaml `from_paper`


@dataclass(frozen=True)
class Counterpart:
    """Which of our runs a published row is the result of: model, recipe (tag suite.recipe) and, where given,
    the S4D init (param model.init), the Liquid-S4 mode (model.liquid_mode) and whether the liquid term is on
    (model.liquid_kernel other than 'none')."""

    model: str
    recipe: str
    init: str | None = None
    liquid_mode: str | None = None
    liquid: bool | None = None

    def matches(self, run: RunRecord) -> bool:
        if (run.model, run.recipe) != (self.model, self.recipe):
            return False
        cfg = run_config(run) or {}
        wanted = {COUNTERPART_PARAMS[k]: v for k, v in (("init", self.init), ("liquid_mode", self.liquid_mode))
                  if v is not None}
        if any(cfg.get(k) != v for k, v in wanted.items()):
            return False
        if self.liquid is not None:
            kernel = cfg.get(COUNTERPART_PARAMS["liquid"])
            return kernel is not None and (kernel != "none") == self.liquid
        return True


@dataclass(frozen=True)
class PaperRow:
    name: str
    values: dict[str, float]
    failed: tuple[str, ...]
    source: str
    unverified: bool  # the values not in `from_paper` come from a secondary source, unverified (marked †)
    counterparts: tuple[Counterpart, ...]
    from_paper: dict[str, str] = field(default_factory=dict)  # column -> "abstract" or "text"

    def is_unverified(self, column: str) -> bool:
        return self.unverified and column not in self.from_paper


def _counterparts(item: dict, where: str) -> tuple[Counterpart, ...]:
    out = []
    for spec in item.get("counterparts", []):
        allowed = {"model", "recipe", *COUNTERPART_PARAMS}
        if not isinstance(spec, dict) or not {"model", "recipe"} <= set(spec) or set(spec) - allowed:
            raise ConfigError(f"{where}: counterpart {spec!r} needs `model` and `recipe` and may add only "
                              f"{', '.join(COUNTERPART_PARAMS)}.",
                              hint="e.g. {model: s4d, recipe: s4, init: legs}")
        if spec["model"] not in registry.MODELS:
            raise ConfigError(f"{where}: unknown model '{spec['model']}' in `counterparts`.",
                              hint=f"models: {', '.join(registry.MODELS)}")
        out.append(Counterpart(**{k: (str(v) if k != "liquid" else bool(v)) for k, v in spec.items()}))
    return tuple(out)


def load_paper(family: str, path: Path = PAPER_FILE) -> list[PaperRow]:
    """The published rows of a family, checked against the table's columns and the model registry."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"published results file {path} is missing.",
                          hint="restore it: git checkout results/paper.yaml")
    data = yaml.safe_load(path.read_text()) or {}
    keys = {c.key for c in family_columns(family)}
    rows, seen = [], {}
    for i, item in enumerate(data.get(family, [])):
        where = f"{path}: {family} row {i + 1} ({item.get('name', 'no name')})"
        unknown = (set(item.get("values", {})) | set(item.get("failed", [])) | set(item.get("from_paper", {}))) - keys
        bad_source = {v for v in item.get("from_paper", {}).values()} - set(FROM_PAPER)
        if "name" not in item or unknown or bad_source:
            problem = ("has no name" if "name" not in item else f"unknown columns {sorted(unknown)}" if unknown
                       else f"unknown `from_paper` places {sorted(bad_source)}")
            raise ConfigError(f"{where}: {problem}.", hint=f"columns of {family}: {', '.join(sorted(keys))}; "
                                                           f"from_paper places: {', '.join(FROM_PAPER)}")
        counterparts = _counterparts(item, where)
        for c in counterparts:
            if c in seen:
                raise ConfigError(f"{where}: counterpart {c} is already the counterpart of '{seen[c]}'.",
                                  hint="each (model, recipe, init, liquid_mode, liquid) in one row per family")
            seen[c] = item["name"]
        rows.append(PaperRow(item["name"], {k: float(v) for k, v in item.get("values", {}).items()},
                             tuple(item.get("failed", [])), item.get("source", ""), bool(item.get("unverified")),
                             counterparts, dict(item.get("from_paper", {}))))
    return rows


def counterpart_of(runs: list[RunRecord], paper: list[PaperRow]) -> tuple[PaperRow | None, bool]:
    """The published row whose counterparts every run of a row matches; (None, True) when several do."""
    found = [p for p in paper if any(all(c.matches(r) for r in runs) for c in p.counterparts)]
    return (found[0], False) if len(found) == 1 else (None, len(found) > 1)
