"""hgref.plotting: one style per method, legends off the data, readable log ticks, zero
values and diverged runs visible, out-of-view values listed; and the data checks of tests/."""
import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from _figure_checks import assert_in_view, assert_legends_off_data
from hgref import plotting
from hgref.experiments._figures import pyplot

matplotlib.use("Agg")


@pytest.fixture
def ax():
    plt = pyplot()
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_method_style_unknown_names_the_accepted_values():
    with pytest.raises(ValueError, match="unknown method 'foo'; accepted values: constant, lrs_opt, hd"):
        plotting.method_style("foo")
    assert plotting.method_style("marthe_mu=0.99")["color"] == plotting.METHOD_STYLES["marthe_mu"]["color"]
    colours = [s["color"] for k, s in plotting.METHOD_STYLES.items()]
    assert len(set(colours[:9])) == 9, "hgref's own methods have distinct colours"


def test_group_styles_family_colour_variant_line_style():
    styles = plotting.group_styles(["hd", "marthe_mu=0.99", "marthe_mu=0.9", "rtho"])
    assert styles["marthe_mu=0.9"]["color"] == styles["marthe_mu=0.99"]["color"]
    assert styles["marthe_mu=0.9"]["ls"] != styles["marthe_mu=0.99"]["ls"]
    assert styles["marthe_mu=0.9"]["label"] == "MARTHE μ = 0.9" and styles["hd"]["label"] == "HD"
    assert styles["hd"]["ls"] == plotting.METHOD_STYLES["hd"]["ls"]


def test_line_style_markers_are_spread_and_phase_shifted():
    a, b = plotting.line_style("hd", 500), plotting.line_style("rtho", 500, phase=0.5)
    assert a["markevery"] == (0, 62) and b["markevery"] == (31, 62)
    assert "markevery" not in plotting.line_style("exponential", 500)   # no marker, nothing to spread


@settings(max_examples=25, deadline=None)
@given(lo=st.floats(1e-6, 1e3), ratio=st.floats(1.05, 9.5))
def test_narrow_log_axis_has_plain_decimal_ticks(lo, ratio):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [lo, lo * ratio])
    ax.set_yscale("log")
    plotting.readable_log_ticks(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()]
    plt.close(fig)
    assert len(labels) >= 2, (lo, ratio, labels)
    assert all(float(lbl) > 0 for lbl in labels)          # plain numbers, no 10^k or ×10^k


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(1e-9, 1e3), min_size=1, max_size=20), st.integers(0, 3))
def test_zero_is_drawn_at_zero_and_every_value_in_view(values, zeros):
    plt = pyplot()
    fig, ax = plt.subplots()
    ys = np.array(values + [0.0] * zeros)
    ax.plot(np.arange(ys.size), ys)
    lin = plotting.log_axis_with_zero(ax, [ys])
    lo, hi = ax.get_ylim()
    assert lo <= ys.min() and ys.max() <= hi
    if zeros:
        assert ax.get_yscale() == "symlog" and 0 < lin <= ys[ys > 0].min()
        assert any(t.get_text() == "η = 0" for t in ax.texts)
    else:
        assert ax.get_yscale() == "log" and lin is None
    plt.close(fig)


def test_diverged_bands_do_not_overlap_and_sit_inside(ax):
    ax.plot([1e-3, 1e-1], [1.0, 2.0])
    ax.set_xscale("log")
    a = plotting.mark_diverged(ax, [1e-2], plotting.method_style("hd"), row=0)
    b = plotting.mark_diverged(ax, [1e-2], plotting.method_style("rtho"), row=1)
    assert plotting.mark_diverged(ax, [], plotting.method_style("hd")) is None
    ya, yb = a.get_ydata()[0], b.get_ydata()[0]
    assert 0 < yb < ya < 1 and a.get_label() == "HD diverged"


def test_out_of_view_values_are_listed(ax):
    ax.plot([1, 2, 3], [90.0, 91.0, 37.8], label="RTHO")
    ax.set_ylim(85, 95)
    with pytest.raises(AssertionError, match="outside"):
        assert_in_view(ax)
    handles = plotting.note_out_of_view(ax, [(3, "RTHO β = 1e-02: 37.8 %", plotting.method_style("rtho"))])
    assert [h.get_label() for h in handles] == ["below axis: RTHO β = 1e-02: 37.8 %"]
    with pytest.raises(AssertionError, match="no note"):
        assert_in_view(ax)                                  # marked, but not yet listed
    plotting.legend_outside(ax, "right", handles=handles)
    assert_in_view(ax)
    assert plotting.note_out_of_view(ax, []) == []


def test_legend_outside_is_off_the_data(ax):
    ax.plot([0, 1], [0, 1], label="HD")
    plotting.legend_outside(ax, "right")
    assert_legends_off_data(ax.figure)
    with pytest.raises(ValueError, match="accepted values: right, below"):
        plotting.legend_outside(ax, "inside")


def test_series_reports_coordinates(ax):
    ax.plot([0, 1], [2, 3], label="a")
    ax.axhline(2.5, label="level")
    plotting.mark_diverged(ax, [0.5], plotting.method_style("hd"))
    coords = {s["label"]: s["coords"] for s in plotting.series(ax)}
    assert coords == {"a": "data", "level": "y", "HD diverged": "x"}


def test_contour_grid_vectorised_and_pointwise_agree():
    def f(w):
        return (w[0] - 1.0) ** 2 + w[1] ** 2

    def one_point(w):
        if np.ndim(w) != 1:
            raise TypeError("one point at a time")
        return float(f(w))

    xs, ys = np.linspace(-1, 1, 7), np.linspace(0, 2, 5)
    X, Y, Z = plotting._grid_values(f, xs, ys)
    np.testing.assert_array_equal(Z, plotting._grid_values(one_point, xs, ys)[2])
    assert Z.shape == (5, 7) and Z[0, -1] == f(np.array([1.0, 0.0]))
