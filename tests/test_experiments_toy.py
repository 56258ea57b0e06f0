"""``hgref toy`` (MARTHE Fig. 1) end to end in a reduced-steps configuration."""
import json

import numpy as np

from hgref import problems
from hgref.cli import main
from hgref.experiments.toy import TOY_SETUP, best_runs, toy_specs


def test_toy_reduced_steps_end_to_end(tmp_path):
    assert main(["toy", "--out", str(tmp_path), "--steps", "25", "--quiet", "--formats", "png,svg"]) == 0
    folder = tmp_path / "toy"
    data = json.loads((folder / "toy.json").read_text())
    assert data["experiment"] == "toy" and data["config"]["steps"] == 25
    n = sum(len(b) for setup in TOY_SETUP.values() for b in setup["betas"].values())
    assert len(data["runs"]) == n
    for run in data["runs"]:
        res = run["result"]
        if res["diverged_at"] is None:
            assert len(res["etas"]) == 25 and len(res["path"]) == 26
            assert res["best_objective"] <= res["final_objective"]
            # E = L: the objective recorded at the last point of the path
            p = problems.beale() if run["config"]["problem"] == "beale" else problems.bukin()
            assert res["final_objective"] == float(p.objective(np.array(res["path"][-1])))
    for name, methods in data["summary"].items():
        for method, entry in methods.items():
            assert entry["best_beta"] is not None, (name, method)
            assert entry["best_beta"] not in entry["diverged_betas"]
    assert (folder / "toy.png").stat().st_size > 10_000 and (folder / "toy.svg").stat().st_size > 10_000


def test_best_run_is_the_lowest_non_diverged():
    recs = {"a": {"config": {"problem": "p", "method": "hd", "beta": 1.0},
                  "result": {"diverged_at": 3, "best_objective": 0.0}},
            "b": {"config": {"problem": "p", "method": "hd", "beta": 0.1},
                  "result": {"diverged_at": None, "best_objective": 0.5}},
            "c": {"config": {"problem": "p", "method": "hd", "beta": 0.01},
                  "result": {"diverged_at": None, "best_objective": 0.7}}}
    assert best_runs(recs) == {("p", "hd"): "b"}


def test_specs_cover_the_grid_and_lrs_opt():
    specs = toy_specs(steps=10, problem_names=("bukin",), methods=("hd",), lrs_opt=True)
    assert [s.config["method"] for s in specs] == ["hd"] * len(TOY_SETUP["bukin"]["betas"]["hd"]) + ["lrs_opt"]
    assert len({s.key for s in specs}) == len(specs)
