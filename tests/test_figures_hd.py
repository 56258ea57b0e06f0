"""The ``hgref hd`` figures show their data: one style per lop in every panel, α_t = 0 drawn,
a diverged run marked at its last finite value, readable ticks, legend off the data."""
import numpy as np
import pytest

from _figure_checks import assert_in_view, assert_legends_off_data, by_label, data_lines
from hgref.experiments.hd import TINY, configure
from hgref.experiments.hd_figures import LOP_METHODS, curves_figure, grid_figure, lop_style
from hgref.experiments.runner import format_value
from hgref.plotting import method_style

SETUP = configure(TINY, models=("logreg",))
STEPS, PER_EPOCH = 60, 20


def _result(op, lop):
    t = np.arange(STEPS)
    growth = 1 + 0.0002 * t if op == "adam" else 1 + t
    alphas = np.full(STEPS, SETUP.alpha0) if lop == "none" else SETUP.alpha0 * growth
    if (op, lop) == ("sgdn", "sgdn"):
        alphas = np.where((t > 20) & (t < 30), 0.0, alphas)          # the clip at 0 (Eq. 5)
    losses = 2.3 * np.exp(-t / (40.0 if lop == "none" else 15.0)) + 0.2
    diverged = (op, lop) == ("sgd", "adam")
    if diverged:
        losses[45:] = np.nan
    return {"diverged_at": 45 if diverged else None, "alphas": alphas[:45 if diverged else STEPS].tolist(),
            "train_losses": [None if not np.isfinite(v) else v for v in losses[:45 if diverged else STEPS]],
            "eval_steps": [0, 20, 40, 60][:3 if diverged else 4],
            "val_losses": [2.3, 1.0, 0.6, 0.5][:3 if diverged else 4], "steps_per_epoch": PER_EPOCH}


@pytest.fixture(scope="module")
def figure():
    recs = {f"seed=0-logreg-{op}-{lop}-alpha0={format_value(SETUP.alpha0)}": {"result": _result(op, lop)}
            for op in SETUP.ops for lop in SETUP.lops}
    fig = curves_figure(recs, SETUP, "logreg")
    yield fig
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_one_style_per_lop_in_every_panel(figure):
    axes = np.array(figure.axes).reshape(3, len(SETUP.ops))
    for ax in axes.ravel():
        labels = by_label(ax)
        for lop in SETUP.lops:
            lines = [s for lbl, s in labels.items() if lbl.startswith(lop_style(lop)["label"])]
            assert len(lines) == 1, (ax.get_title(), lop, list(labels))
            assert lines[0]["color"] == method_style(LOP_METHODS[lop])["color"].lower()
        assert_in_view(ax)


def test_zero_alpha_and_divergence_are_visible(figure):
    axes = np.array(figure.axes).reshape(3, len(SETUP.ops))
    ax = axes[0, SETUP.ops.index("sgdn")]
    assert ax.get_yscale() == "symlog" and ax.get_ylim()[0] <= 0.0
    sgd_col = axes[:, SETUP.ops.index("sgd")]
    for a in sgd_col:
        crosses = [s for s in data_lines(a) if s["gid"] == "diverged_end"]
        assert len(crosses) == 1 and crosses[0]["color"] == method_style("hd-adam")["color"].lower()
        assert np.isfinite(crosses[0]["y"]).all()
    assert any("diverged at 45" in lbl for lbl in by_label(sgd_col[0]))


def test_narrow_log_axis_reads_plain_decimals(figure):
    figure.canvas.draw()
    ax = np.array(figure.axes).reshape(3, len(SETUP.ops))[0, SETUP.ops.index("adam")]
    labels = [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()]
    assert labels and all("10^" not in lbl and "times" not in lbl for lbl in labels), labels
    assert all(float(lbl) > 0 for lbl in labels)


def test_legend_is_off_the_data(figure):
    assert_legends_off_data(figure)


def test_grid_figure_marks_diverged_cells():
    grid = {"1e-04": {"0.01": 0.5, "0.001": 0.9}, "0.01": {"0.01": None, "0.001": 0.3}}
    fig = grid_figure(grid)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0.300", "0.500", "0.900", "diverged"]
    import matplotlib.pyplot as plt
    plt.close(fig)
