"""The ``hgref toy`` figure shows its data: every selected run in every panel, one colour per
method across panels, everything inside the axes, diverged β marked, η = 0 drawn."""
import numpy as np
import pytest

from _figure_checks import assert_axes_marks_inside, assert_in_view, assert_legends_off_data, by_label, data_lines
from _toy_records import default_records
from hgref.experiments.toy import METHODS, best_runs
from hgref.experiments.toy_figure import MARKS, build_figure
from hgref.plotting import method_style, series


@pytest.fixture(scope="module")
def figure():
    fig = build_figure(default_records())
    yield fig
    import matplotlib.pyplot as plt
    plt.close(fig)


def _main_axes(fig):
    axes = fig.axes
    return [axes[i:i + 4] for i in range(0, len(axes), 4)]


def test_every_selected_run_in_every_panel_with_one_colour(figure):
    records = default_records()
    chosen = best_runs(records)
    for row, name in zip(_main_axes(figure), ("beale", "bukin")):
        ax_p, ax_e, ax_b, ax_s = row
        for method in METHODS:
            rec = records[chosen[(name, method)]]
            colour = method_style(method)["color"].lower()
            label = next(lbl for lbl in by_label(ax_p) if lbl.startswith(method_style(method)["label"]))
            for ax in (ax_p, ax_e, ax_s):
                line = by_label(ax)[label]
                assert line["color"] == colour, (name, method, ax.get_title())
            path = np.array(rec["result"]["path"])
            np.testing.assert_array_equal(by_label(ax_p)[label]["x"], path[:, 0])
            np.testing.assert_array_equal(by_label(ax_s)[label]["y"], rec["result"]["etas"])
            np.testing.assert_array_equal(by_label(ax_e)[label]["y"], rec["result"]["objectives"])
            assert np.all(np.isfinite(path)) and np.all(np.isfinite(rec["result"]["objectives"]))
            beta_lines = [s for s in data_lines(ax_b) if s["label"].startswith(method_style(method)["label"] + ":")]
            assert {s["color"] for s in beta_lines} == {colour} and len(beta_lines) == 2


def test_everything_inside_the_axes_and_diverged_marked(figure):
    records = default_records()
    for row, name in zip(_main_axes(figure), ("beale", "bukin")):
        for ax in row:
            assert_in_view(ax)
            assert_axes_marks_inside(ax)
        ax_b = row[2]
        crosses = [s for s in series(ax_b) if s["gid"] == "diverged"]
        n_div = sum(r["result"]["diverged_at"] is not None for r in records.values() if r["config"]["problem"] == name)
        assert sum(len(s["x"]) for s in crosses) == n_div
        assert len({float(s["y"][0]) for s in crosses}) == len({s["label"] for s in crosses}), "one band per method"
        assert {s["color"] for s in crosses} <= {method_style(m)["color"].lower() for m in METHODS}
        # the minimum (Beale) is inside the trajectory panel; Bukin's valley crosses it
        kind, where, _ = MARKS[name]
        if kind == "point":
            (x0, x1), (y0, y1) = row[0].get_xlim(), row[0].get_ylim()
            assert x0 < where[0] < x1 and y0 < where[1] < y1


def test_zero_learning_rate_is_drawn_at_zero(figure):
    records = default_records()
    ax_s = _main_axes(figure)[1][3]
    rtho = records[best_runs(records)[("bukin", "rtho")]]["result"]["etas"]
    assert min(rtho) == 0.0, "RTHO's η reaches 0 on Bukin (the paper's claim)"
    assert ax_s.get_yscale() == "symlog" and ax_s.get_ylim()[0] <= 0.0


def test_zoom_inset_holds_the_ends_of_the_paths(figure):
    zooms = [child for ax in figure.axes for child in ax.child_axes if child.get_gid() == "zoom"]
    assert zooms, "Bukin's paths end in a region far smaller than the panel"
    for ax in zooms:
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        for s in data_lines(ax):
            if s["gid"] == "end":
                assert x0 <= s["x"][0] <= x1 and y0 <= s["y"][0] <= y1


def test_legends_are_off_the_data(figure):
    assert_legends_off_data(figure)
