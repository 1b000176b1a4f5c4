"""Learning curves as PNG: one run's loss and headline metric (`learning_curves`), and the committed runs side by
side, one panel each (`run_panels`).

Epochs count from 0 on every axis, as the `epoch` metric, `best/epoch`, metrics.csv of a bundle and Lightning do:
the epoch a table reports as the best validation is the x of the marked point. Ticks are whole epochs (a run of
one epoch gets one tick, not 0.96 … 1.04). The splits have their own marker and size, drawn so that none hides
another when they coincide (one-epoch runs, val and test sets of one distribution): train small dots, val large
open squares, test small filled triangles on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# split -> line style, marker, marker size, open marker, drawing order
STYLES = {"train": ("-", "o", 3, False, 2), "val": ("--", "s", 7, True, 3), "test": (":", "^", 4, False, 4)}


def _setup():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_split(ax, split: str, xs: list[int], ys: list[float]) -> None:
    style, marker, size, hollow, order = STYLES[split]
    line = ax.plot(xs, ys, style, label=split, zorder=order)[0]
    ax.plot(xs, ys, linestyle="none", marker=marker, ms=size, zorder=order + 0.5, color=line.get_color(),
            markerfacecolor="none" if hollow else line.get_color(), markeredgewidth=1.2)


def epoch_axis(ax, first: int, last: int) -> None:
    """Whole-epoch ticks from `first` to `last` (counted from 0), half an epoch of margin on each side."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(first - 0.5, last + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch (from 0)")


def best_epoch(points: list[tuple[int, float]], higher_is_better: bool) -> int | None:
    """The epoch of the best validation value: the first of equal ones, as `best/epoch` is chosen."""
    if not points:
        return None
    pick = max if higher_is_better else min
    return pick(points, key=lambda p: p[1])[0]


def learning_curves(histories: dict[str, list[tuple[int, float]]], epochs: dict[int, int], metric: str,
                    title: str, out: Path) -> Path:
    """Plot `<split>/loss` and `<split>/<metric>` against the epoch into the PNG `out`. `epochs` maps a step to its
    epoch (from 0); the best validation epoch is marked on both panels."""
    return _save(curves_figure(histories, epochs, metric, title), out)


def _save(fig, out: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def curves_figure(histories: dict[str, list[tuple[int, float]]], epochs: dict[int, int], metric: str, title: str):
    """The matplotlib figure of `learning_curves`."""
    plt = _setup()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    xs_all: list[int] = []
    val = [(epochs.get(step, step), v) for step, v in histories.get(f"val/{metric}", [])]
    best = best_epoch(val, metric == "accuracy")
    for ax, quantity in zip(axes, ("loss", metric)):
        for split in STYLES:
            points = histories.get(f"{split}/{quantity}", [])
            if points:
                xs = [epochs.get(step, step) for step, _ in points]
                xs_all += xs
                _plot_split(ax, split, xs, [v for _, v in points])
        if best is not None:
            ax.axvline(best, color="0.6", lw=0.8, zorder=1, label=f"best val (epoch {best})")
        ax.set_ylabel(quantity)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes:
        epoch_axis(ax, min(xs_all, default=0), max(xs_all, default=0))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _lr_axis(ax, lr: list[tuple[int, float]]) -> list:
    """The learning rate on a right-hand axis of `ax` (a schedule's restarts explain a curve's dips); the line."""
    right = ax.twinx()
    (line,) = right.plot([e for e, _ in lr], [v for _, v in lr], color="0.55", lw=0.9, ls=":", marker=".",
                         markersize=3, label="learning rate (epoch start)")
    right.set_ylim(bottom=0)
    right.set_ylabel("learning rate", fontsize=7, color="0.45")
    right.tick_params(labelsize=7, colors="0.45")
    right.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    return [line]


@dataclass
class Panel:
    """One committed run: its per-epoch values of the headline metric and where it stands."""

    title: str
    curves: dict[str, list[tuple[int, float]]]  # split -> (epoch from 0, value in the table's unit)
    max_epochs: int | None  # the recipe's epochs: the x axis spans them, so an unfinished curve ends where it is
    subtitle: str = ""  # e.g. "12/40 epochs, unfinished"
    references: list[tuple[str, float]] = field(default_factory=list)  # published numbers, drawn as lines
    lr: list[tuple[int, float]] = field(default_factory=list)  # (epoch, the backbone's learning rate at its start)


def run_panels(panels: list[Panel], ylabel: str, higher_is_better: bool, out: Path, columns: int = 3) -> Path:
    """One panel per run (train/val/test of the headline metric per epoch), on a grid of `columns`, into the PNG
    `out`; the x axis of a panel spans the run's recipe epochs, the best validation epoch is marked, published
    numbers are grey lines."""
    return _save(panels_figure(panels, ylabel, higher_is_better, columns), out)


def panels_figure(panels: list[Panel], ylabel: str, higher_is_better: bool, columns: int = 3):
    """The matplotlib figure of `run_panels`."""
    plt = _setup()
    cols = max(1, min(columns, len(panels)))
    rows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for split in STYLES:
            points = panel.curves.get(split, [])
            if points:
                _plot_split(ax, split, [e for e, _ in points], [v for _, v in points])
        best = best_epoch(panel.curves.get("val", []), higher_is_better)
        if best is not None:
            ax.axvline(best, color="0.6", lw=0.8, zorder=1, label=f"best val (epoch {best})")
        for name, value in panel.references:
            ax.axhline(value, color="0.35", lw=0.9, ls=(0, (6, 3)), zorder=1, label=f"{name} {value:g}")
        extra = _lr_axis(ax, panel.lr) if panel.lr else []
        done = [e for points in panel.curves.values() for e, _ in points]
        last = max(panel.max_epochs - 1 if panel.max_epochs else 0, max(done, default=0))
        epoch_axis(ax, 0, last)
        ax.set_ylabel(ylabel)
        ax.set_title(panel.title + (f"\n{panel.subtitle}" if panel.subtitle else ""), fontsize=9)
        ax.grid(alpha=0.3)
        if done or panel.references:
            handles, labels = ax.get_legend_handles_labels()
            ax.legend(handles + extra, labels + [h.get_label() for h in extra], fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no epoch validated yet", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
