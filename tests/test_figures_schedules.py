"""The ``hgref schedules`` figure (MARTHE Fig. 2 layout) shows its data: synthetic records
through the real ``summarize`` with a collapse far below the constant level, seeds that
diverge, a β where every seed diverges and schedules that stop at η = 0."""
import numpy as np
import pytest

from _figure_checks import (assert_axes_marks_inside, assert_in_view, assert_legends_off_data, by_label,
                            data_lines, out_of_view_note)
from hgref.experiments.schedules import summarize
from hgref.experiments.schedules_figure import accuracy_limits, build_figure
from hgref.plotting import group_label, method_style, series

T, SEEDS, BETAS = 40, (0, 1, 2), (1e-4, 1e-3, 1e-2)


def _acc(group, beta, seed):
    base = {"constant": 0.84, "lrs_opt": 0.92, "hd": 0.90, "rtho": 0.945, "marthe_mu=0.9": 0.93,
            "marthe_mu=0.99": 0.944, "marthe": 0.92}[group]
    if group == "rtho" and beta == 1e-2:
        return 0.378 + 0.01 * seed                     # the collapse far below the axis
    return base - 0.01 * abs(np.log10(beta or 1e-3) + 3) + 0.004 * seed


def _record(group, beta, seed):
    method, _, mu = group.partition("=")
    diverged = (group == "hd" and beta == 1e-2) or (group == "marthe" and beta == 1e-3 and seed == 1)
    t = np.arange(T)
    etas = 0.01 + 0.1 * (1 - np.exp(-t / 5.0)) * (1 + (beta or 0))
    if group == "rtho":
        etas = np.where(t > 30, 0.0, etas)            # stops: drawn at η = 0
    if group == "constant":
        etas = np.full(T, 0.01)
    cfg = {"method": method, "seed": seed, **({"beta": beta} if beta is not None else {}),
           **({"mu": float(mu)} if mu else {})}
    acc = None if diverged else _acc(group, beta, seed)
    return {"config": cfg, "result": {"diverged_at": 7 if diverged else None, "etas": etas.tolist(),
                                      "metrics": {} if diverged else {"val_acc": acc, "test_acc": acc}}}


@pytest.fixture(scope="module")
def data():
    recs = {}
    for seed in SEEDS:
        for group in ("constant", "hd", "rtho", "marthe_mu=0.9", "marthe_mu=0.99", "marthe"):
            for beta in ((None,) if group == "constant" else BETAS):
                recs[f"{seed}-{group}-{beta}"] = _record(group, beta, seed)
        if seed < 2:
            recs[f"{seed}-lrs_opt"] = _record("lrs_opt", None, seed)
    summary = summarize(recs)
    fig = build_figure(recs, summary)
    yield recs, summary, fig
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_every_group_in_centre_and_right_with_one_style(data):
    _, summary, fig = data
    ax_l, ax_c, ax_r = fig.axes[:3]
    centre, right = by_label(ax_c), by_label(ax_r)
    for group in summary["groups"]:
        label = group_label(group)
        colour = method_style(group)["color"].lower()
        def match(lbl):
            return lbl == label or lbl.startswith(label + ",") or lbl.startswith(label + " (")
        c = [s for lbl, s in centre.items() if match(lbl)]
        assert len(c) == 1 and c[0]["color"] == colour, (group, list(centre))
        r = [s for lbl, s in right.items() if match(lbl)]
        assert len(r) == 1 and r[0]["color"] == colour, (group, list(right))
    # variants of one family: same colour, different line style
    ls = {line.get_label(): line.get_linestyle() for line in ax_r.get_lines()}
    assert ls["MARTHE μ = 0.9"] != ls["MARTHE μ = 0.99"]
    lrs = [s for s in data_lines(ax_l) if s["label"].startswith("LRS-OPT seed")]
    assert len(lrs) == 2 and {s["color"] for s in lrs} == {method_style("lrs_opt")["color"].lower()}


def test_collapse_below_the_axis_is_listed_not_hidden(data):
    _, summary, fig = data
    ax_r = fig.axes[2]
    low = ax_r.get_ylim()[0]
    rtho = summary["groups"]["rtho"]["by_beta"]["0.01"]
    assert 100 * rtho["val_acc_mean"] < low
    note = out_of_view_note(ax_r)
    assert note == f"below axis: RTHO β = 1e-02: {100 * rtho['val_acc_mean']:.1f} %"
    marks = [s for s in series(ax_r) if s["gid"] == "out_of_view"]
    assert [float(s["x"][0]) for s in marks] == [1e-2]
    for ax in fig.axes[:3]:
        assert_in_view(ax)
        assert_axes_marks_inside(ax)


def test_diverged_seeds_and_all_diverged_beta_are_marked(data):
    _, summary, fig = data
    ax_r = fig.axes[2]
    rings = [s for s in series(ax_r) if s["gid"] == "diverged_seeds"]
    assert [float(s["x"][0]) for s in rings] == [1e-3]                      # MARTHE, 1 of 3 seeds
    assert any(t.get_text() == "1/3 div." for t in ax_r.texts)
    crosses = [s for s in series(ax_r) if s["gid"] == "diverged"]
    assert len(crosses) == 1 and list(crosses[0]["x"]) == [1e-2]
    assert crosses[0]["color"] == method_style("hd")["color"].lower()


def test_zero_eta_visible_in_the_centre(data):
    _, _, fig = data
    ax_c = fig.axes[1]
    rtho = next(s for lbl, s in by_label(ax_c).items() if lbl.startswith("RTHO"))
    assert rtho["y"].min() == 0.0 and ax_c.get_yscale() == "symlog" and ax_c.get_ylim()[0] <= 0.0


def test_legends_are_off_the_data(data):
    assert_legends_off_data(data[2])


def test_accuracy_limits_stop_below_the_reference():
    rows = {"a": [{"val_acc_mean": 0.9, "val_acc_sd": 0.01}, {"val_acc_mean": 0.3, "val_acc_sd": 0.0}]}
    low, high = accuracy_limits(rows, [0.8], below=8.0)
    assert 30 < low < 80 - 8 + 1e-9 and high > 91
    assert accuracy_limits({"a": [{"val_acc_mean": 0.85, "val_acc_sd": 0.0}]}, [0.8])[0] == 79.5
