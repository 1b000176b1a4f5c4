"""What a reader of `suite report` sees (issue 15, "The report"): code renders as code in the HTML page, a curve's
epochs are whole numbers counted from 0 as `best/epoch` is, no split's point hides another, and the best validation
epoch the table reports is the one marked on the plot."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from suite import cli
from suite.report import plots, render


def _axes_of(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_a_one_epoch_curve_has_one_whole_epoch_tick_counted_from_0():
    history = {"train/loss": [(9, 1.2)], "val/loss": [(9, 1.1)], "test/loss": [(9, 1.1)],
               "train/accuracy": [(9, 0.4)], "val/accuracy": [(9, 0.5)], "test/accuracy": [(9, 0.5)]}
    fig = plots.curves_figure(history, {9: 0}, "accuracy", "one epoch")
    for ax in _axes_of(fig):
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks == [0.0], ticks  # not 0.96, 0.98, 1.00, ...
        assert ax.get_xlabel() == "epoch (from 0)"


def test_val_and_test_points_at_the_same_place_are_both_visible():
    history = {"val/accuracy": [(9, 0.5)], "test/accuracy": [(9, 0.5)], "train/accuracy": [(9, 0.4)]}
    fig = plots.curves_figure(history, {9: 0}, "accuracy", "same value")
    ax = _axes_of(fig)[1]
    marks = {line.get_marker(): line for line in ax.get_lines() if line.get_marker() not in (None, "None", "")}
    val, test = marks["s"], marks["^"]
    assert val.get_markerfacecolor() == "none"  # an open square around ...
    assert val.get_markersize() > test.get_markersize()  # ... a smaller filled triangle
    assert test.get_zorder() > val.get_zorder()  # drawn on top of it


def test_the_plot_marks_the_epoch_best_epoch_reports():
    # val accuracy best at the second epoch (epoch 1 from 0); best/epoch of suite.train.record.best_epoch_metrics says 1
    from suite.train.record import best_epoch_metrics

    history = {"epoch": [(10, 0), (20, 1), (30, 2)], "val/accuracy": [(10, 0.5), (20, 0.7), (30, 0.6)],
               "val/loss": [(10, 1.0), (20, 0.8), (30, 0.9)]}
    assert best_epoch_metrics(history, "accuracy", True)["best/epoch"] == 1
    fig = plots.curves_figure(history, {10: 0, 20: 1, 30: 2}, "accuracy", "best")
    for ax in _axes_of(fig):
        assert "best val (epoch 1)" in [line.get_label() for line in ax.get_lines()]
        xs = {tuple(line.get_xdata()) for line in ax.get_lines() if line.get_label() == "val"}
        assert xs == {(0, 1, 2)}  # the same count: epoch 1 is the second point


def test_an_unfinished_run_spans_its_recipe_epochs_and_ends_where_it_is():
    panel = plots.Panel("run", {"val": [(0, 50.0), (1, 55.0)], "train": [(0, 40.0), (1, 52.0)]}, 40,
                        "2/40 epochs, unfinished", [("S4D-LegS (paper)", 60.47)])
    fig = plots.panels_figure([panel], "accuracy (%)", True)
    (ax,) = _axes_of(fig)
    assert ax.get_xlim() == (-0.5, 39.5)
    assert all(max(line.get_xdata()) <= 1 for line in ax.get_lines() if line.get_label() in ("train", "val"))
    assert [line.get_ydata()[0] for line in ax.get_lines() if line.get_label().startswith("S4D-LegS")] == [60.47]
    assert all(t == int(t) for t in ax.get_xticks())


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.code: list[str] = []
        self._in_code = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self._in_code = self._in_code or tag == "code"

    def handle_endtag(self, tag):
        if tag == "code":
            self._in_code = False

    def handle_data(self, data):
        (self.code if self._in_code else self.text).append(data)


def test_backticks_render_as_code_in_the_html_page(tmp_path):
    out = tmp_path / "report.html"
    assert cli.main(["report", "--format", "html", "--out", str(out),
                     "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"]) == 0
    page = out.read_text()
    parsed = _Text()
    parsed.feed(page)
    assert not any("`" in t for t in parsed.text), [t for t in parsed.text if "`" in t][:3]
    assert "counterparts" in parsed.code and "suite run" in " ".join(parsed.code)
    assert render.html_text("a `<b>` c") == "a <code>&lt;b&gt;</code> c"  # escaped inside the code span too
    assert re.search(r"<p class=\"caption\">[^<]*FINISHED <code>suite run</code>", page)


def test_a_committed_runs_panel_shows_its_learning_rate_on_a_second_axis():
    """The schedule beside the curve: an unclamped cosine's restart is why a run's accuracy falls mid-run."""
    lr = [(0, 0.0), (1, 0.002), (2, 0.001), (3, 0.0), (4, 0.001)]
    panel = plots.Panel("run", {"val": [(e, 50.0 + e) for e in range(5)]}, 40, "5/40 epochs, unfinished", [], lr)
    fig = plots.panels_figure([panel], "accuracy (%)", True)
    axes = _axes_of(fig)
    assert len(axes) == 2  # the panel and its learning-rate axis
    lines = [line for ax in axes for line in ax.get_lines() if line.get_label().startswith("learning rate")]
    assert len(lines) == 1 and list(lines[0].get_ydata()) == [v for _, v in lr]
    assert "learning rate (epoch start)" in [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert len(_axes_of(plots.panels_figure([plots.Panel("run", panel.curves, 40)], "accuracy (%)", True))) == 1
