"""``hgref toy`` (MARTHE Fig. 1): end to end in a reduced-steps configuration, and the paper's
two claims on the default setup (``TOY_SETUP``), which the figure is meant to show."""
import json

import numpy as np

from _toy_records import default_records
from hgref import problems
from hgref.cli import main
from hgref.experiments.toy import TOY_SETUP, best_runs, make_problem, summarize, toy_specs


def test_toy_reduced_steps_end_to_end(tmp_path):
    assert main(["toy", "--out", str(tmp_path), "--steps", "25", "--quiet", "--formats", "png,svg"]) == 0
    folder = tmp_path / "toy"
    data = json.loads((folder / "toy.json").read_text())
    assert data["experiment"] == "toy" and data["config"]["steps"] == 25
    assert data["config"]["selected_by"] == "final_objective"
    n = sum(len(b) for setup in TOY_SETUP.values() for b in setup["betas"].values())
    assert len(data["runs"]) == n
    for run in data["runs"]:
        res = run["result"]
        if res["diverged_at"] is None:
            assert len(res["etas"]) == 25 and len(res["path"]) == 26 and len(res["objectives"]) == 26
            assert res["best_objective"] <= res["final_objective"] == res["objectives"][-1]
            # E = L: the objective recorded at the last point of the path
            p = make_problem(run["config"]["problem"])
            assert res["final_objective"] == float(p.objective(np.array(res["path"][-1])))
            assert res["path"][0] == list(TOY_SETUP[run["config"]["problem"]]["w0"])
    for name, methods in data["summary"].items():
        for method, entry in methods.items():
            assert entry["beta"] is not None and entry["paper_beta"] is not None, (name, method)
            assert entry["beta"] not in entry["diverged_betas"]
            assert entry["paper_best_objective"] <= entry["best_objective"] <= entry["final_objective"]
    assert (folder / "toy.png").stat().st_size > 10_000 and (folder / "toy.svg").stat().st_size > 10_000


def test_selection_by_final_or_best_objective():
    recs = {"a": {"config": {"problem": "p", "method": "hd", "beta": 1.0},
                  "result": {"diverged_at": 3, "best_objective": 0.0, "final_objective": None}},
            "b": {"config": {"problem": "p", "method": "hd", "beta": 0.1},
                  "result": {"diverged_at": None, "best_objective": 0.5, "final_objective": 0.9}},
            "c": {"config": {"problem": "p", "method": "hd", "beta": 0.01},
                  "result": {"diverged_at": None, "best_objective": 0.7, "final_objective": 0.7}}}
    assert best_runs(recs) == {("p", "hd"): "c"}
    assert best_runs(recs, by="best_objective") == {("p", "hd"): "b"}
    entry = summarize(recs)["p"]["hd"]
    assert (entry["beta"], entry["paper_beta"], entry["diverged_betas"]) == (0.01, 0.1, [1.0])


def test_specs_cover_the_grid_and_lrs_opt():
    specs = toy_specs(steps=10, problem_names=("bukin",), methods=("hd",), lrs_opt=True)
    assert [s.config["method"] for s in specs] == ["hd"] * len(TOY_SETUP["bukin"]["betas"]["hd"]) + ["lrs_opt"]
    assert len({s.key for s in specs}) == len(specs)
    assert all(s.config["eps"] == TOY_SETUP["bukin"]["eps"] for s in specs)


def _selected(name, method):
    records = default_records()
    return records[best_runs(records)[(name, method)]]["result"]


def test_beale_rtho_leaves_the_plateau_hd_does_not():
    """MARTHE §3: on Beale's plateau RTHO (whole past) gets ahead of HD (one step), at every β."""
    records = default_records()
    hd, rtho = _selected("beale", "hd"), _selected("beale", "rtho")
    start = float(make_problem("beale").objective(make_problem("beale").w0))
    assert hd["final_objective"] < start / 10, "visible progress for HD too"
    assert rtho["final_objective"] < hd["final_objective"] / 10
    minimum = np.array([3.0, 0.5])
    def distance(res):
        return np.linalg.norm(np.array(res["path"][-1]) - minimum)
    assert distance(rtho) < 0.5 * distance(hd)
    hd_all = [r["result"]["final_objective"] for r in records.values()
              if (r["config"]["problem"], r["config"]["method"]) == ("beale", "hd")
              and r["result"]["diverged_at"] is None]
    assert min(hd_all) > rtho["final_objective"], "no finite HD β of the grid gets as far as RTHO"


def test_bukin_hd_keeps_the_valley_rtho_eta_collapses_to_zero():
    """MARTHE §3: on Bukin RTHO's η grows, then vanishes to 0 and the path stops beside the
    valley; HD damps η and ends on the valley floor √(√ε + ε)."""
    eps = TOY_SETUP["bukin"]["eps"]
    floor = np.sqrt(np.sqrt(eps) + eps)
    hd, rtho = _selected("bukin", "hd"), _selected("bukin", "rtho")
    eta0 = TOY_SETUP["bukin"]["eta0"]
    etas = np.array(rtho["etas"])
    first_zero = int(np.argmax(etas == 0.0))
    assert etas[first_zero] == 0.0 and np.all(etas[first_zero:] == 0.0) and first_zero < len(etas) - 50
    assert etas[:first_zero].max() > eta0, "η grows before it collapses"
    assert hd["final_objective"] <= floor * (1 + 1e-6) < rtho["final_objective"]
    assert min(hd["etas"]) > 0 and hd["etas"][-1] < eta0, "HD damps η without stopping"
    x, y = hd["path"][-1]
    assert abs(y - 0.01 * x) < abs(rtho["path"][-1][1] - 0.01 * rtho["path"][-1][0])
    assert problems.bukin(eps=eps).info["eps"] == eps
