"""Checks of a figure's data (not its pixels), shared by tests/test_figures*.py."""
from __future__ import annotations

import numpy as np

from hgref.plotting import series

#: gids of helper marks drawn in axes coordinates (their y is a band position, not data).
AXES_MARKS = {"diverged", "out_of_view"}


def data_lines(ax):
    """The data series of ``ax``: every line but the helpers' marks in axes coordinates."""
    return [s for s in series(ax) if s["gid"] not in AXES_MARKS and s["coords"] in ("data", "y")]


def by_label(ax):
    return {s["label"]: s for s in data_lines(ax) if not s["label"].startswith("_")}


def out_of_view_note(ax):
    """The "below/above axis: …" entries of ``ax`` (its legend or an inline note), one string."""
    texts = [t.get_text() for t in ax.texts if t.get_gid() == "out_of_view_note"]
    legend = ax.get_legend()
    if legend is not None:
        texts += [t.get_text() for t in legend.get_texts()
                  if t.get_text().split(":")[0] in ("below axis", "above axis")]
    return "; ".join(texts)


def assert_in_view(ax, allow=()):
    """Every finite point of every data line lies inside the axes limits, except lines whose
    label contains one of ``allow`` and points listed in the axes' "below axis: …" note."""
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    note = out_of_view_note(ax)
    for s in data_lines(ax):
        if any(a in s["label"] for a in allow):
            continue
        xs = s["x"] if s["coords"] == "data" else np.full(s["y"].shape, 0.5 * (x0 + x1))  # axhline: x in axes
        ok = np.isfinite(xs) & np.isfinite(s["y"])
        x, y = xs[ok], s["y"][ok]
        outside = (x < x0 - 1e-9 * abs(x0)) | (x > x1 + 1e-9 * abs(x1)) | (y < y0 - 1e-12) | (y > y1 + 1e-12)
        if outside.any():
            assert note, f"{s['label']!r}: {outside.sum()} points outside {((x0, x1), (y0, y1))} and no note"
            assert s["label"] in note or any(part in note for part in s["label"].split(",")), (s["label"], note)


def assert_axes_marks_inside(ax):
    """Diverged / out-of-view marks (axes coordinates in y) sit inside the axes, x in view."""
    (x0, x1) = sorted(ax.get_xlim())
    for s in series(ax):
        if s["gid"] in AXES_MARKS:
            assert np.all((s["y"] >= 0) & (s["y"] <= 1)), s
            assert np.all((s["x"] >= x0) & (s["x"] <= x1)), (s["label"], s["x"], (x0, x1))


def assert_legends_off_data(fig):
    """Every legend's box is outside the data area of every axes (drawn to measure)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_window_extent(renderer) for ax in fig.axes
             if ax.get_gid() != "zoom" and ax.get_label() != "<colorbar>"]
    legends = [leg for ax in fig.axes for leg in [ax.get_legend()] if leg is not None] + list(fig.legends)
    assert legends, "the figure has no legend"
    for leg in legends:
        lb = leg.get_window_extent(renderer)
        for box in boxes:
            overlap_w = min(lb.x1, box.x1) - max(lb.x0, box.x0)
            overlap_h = min(lb.y1, box.y1) - max(lb.y0, box.y0)
            assert overlap_w <= 1 or overlap_h <= 1, f"legend overlaps an axes: {lb} vs {box}"


def no_sci_log_labels(ax, axis="y"):
    """Tick labels of ``axis`` as drawn (after ``fig.canvas.draw()``)."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    return [t.get_text() for t in a.get_ticklabels() if t.get_text()]
