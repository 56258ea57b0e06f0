"""``hgref schedules`` (MARTHE §5 / Fig. 2) end to end on real MNIST in a tiny configuration;
configurations, Appendix B seeding, the divergence rule and the summary's diverged counts."""
import json

import numpy as np
import pytest

from hgref.cli import main
from hgref.experiments.flags import ETA_BOUND, divergence_flag
from hgref.experiments.schedules import (BETAS, DEFAULT, PAPER, TINY, configure, problem_of, schedule_specs,
                                         summarize)


def test_schedules_tiny_end_to_end(tmp_path, mnist_data):     # mnist_data: skipped offline
    assert main(["schedules", "--tiny", "--out", str(tmp_path), "--quiet", "--jobs", "1"]) == 0
    folder = tmp_path / "schedules"
    data = json.loads((folder / "schedules.json").read_text())
    methods = {r["config"]["method"] for r in data["runs"]}
    assert methods == {"constant", "hd", "rtho", "marthe_mu", "marthe_hmu", "marthe", "lrs_opt"}
    planted = next(r for r in data["runs"] if r["key"] == "seed=0-rtho-beta=10")
    flag = planted["result"]["flag"]
    assert flag is not None and "eta" in flag["reason"]
    assert max(abs(e) for e in planted["result"]["etas"][flag["step"]:flag["step"] + 1]) > ETA_BOUND
    for run in data["runs"]:
        res = run["result"]
        assert len(res["etas"]) == TINY.steps and res["diverged_at"] is None
        assert 0.0 <= res["metrics"]["val_acc"] <= 1.0
        assert res["val_loss"] == pytest.approx(res["metrics"]["val_loss"], rel=1e-12)
        assert (res["flag"] is None) == (run["key"] != "seed=0-rtho-beta=10")
    const = next(r for r in data["runs"] if r["config"]["method"] == "constant")
    assert np.all(np.array(const["result"]["etas"]) == TINY.eta0)
    lrs = next(r for r in data["runs"] if r["key"] == "seed=0-lrs_opt")
    assert len(lrs["result"]["lrs_opt_history"]) == TINY.lrs_opt_iterations
    assert [e["iteration"] for e in lrs["result"]["lrs_opt_evals"]] == list(range(TINY.lrs_opt_iterations + 1))
    summary = data["summary"]
    rtho = summary["groups"]["rtho"]["by_beta"]
    assert rtho["10"]["n_diverged"] == 1 and rtho["10"]["n_seeds"] == 1 and rtho["0.01"]["n_diverged"] == 0
    assert summary["groups"]["rtho"]["best_beta"] == "0.01"
    best = summary["best"]
    assert set(best) >= {"constant", "hd", "rtho", "marthe_mu", "marthe_hmu", "marthe", "lrs_opt"}
    assert all({"val_acc_mean", "val_acc_sd", "n_seeds", "n_diverged"} <= set(row) for row in best.values())
    assert (folder / "schedules.png").stat().st_size > 10_000
    assert (folder / "schedules_convergence.png").stat().st_size > 10_000
    assert not list((folder / "runs").glob("*.scratch"))


def test_configurations():
    assert PAPER.hidden == (500, 500) and len(PAPER.seeds) == 20 and PAPER.lrs_opt_iterations == 5000
    assert PAPER.lrs_opt_outer == "pgd" and PAPER.lrs_opt_lr == 0.1 and PAPER.lrs_opt_seeds == 4
    assert PAPER.steps == DEFAULT.steps == 512 and PAPER.eta0 == 0.01 and PAPER.batch_size == 100
    assert PAPER.sizes == (7000, 700, 2300)
    assert min(BETAS["marthe"]) == 1e-9 and set(BETAS) == {"hd", "rtho", "marthe_mu", "marthe_hmu", "marthe"}
    setup = configure(DEFAULT, seeds=[3], methods=("constant", "lrs_opt"), lrs_opt_seeds=1)
    keys = [s.key for s in schedule_specs(setup)]
    assert keys == ["seed=3-lrs_opt", "seed=3-constant"]
    one = configure(DEFAULT, betas=[1e-3], lrs_opt_max_change=0, lrs_opt_restart=0)
    assert all(g == (1e-3,) for g in one.betas.values())
    assert one.lrs_opt_max_change is None and one.lrs_opt_restart is None
    with pytest.raises(ValueError, match="lrs_opt_outer"):
        configure(DEFAULT, lrs_opt_outer="lbfgs")


def test_appendix_b_seeding_one_split_seed_controls_w0_and_batches():
    """The seed changes w_0 and the minibatch order; the 7000/700/2300 split is shared."""
    cfg = {"hidden": [4], "batch_size": 100, "init": "glorot", "sizes": [300, 100, 100], "split_seed": 0}
    p0, p1 = problem_of(dict(cfg, seed=0)), problem_of(dict(cfg, seed=1))
    assert not np.array_equal(p0.w0, p1.w0)
    w = p0.w0
    X0, _ = p0.batch(0, 0)
    X1, _ = p1.batch(0, 1)
    assert not np.array_equal(X0, X1)
    np.testing.assert_array_equal(p0.batch(0, 5)[0], p1.batch(0, 5)[0])     # same training set
    assert p0.metrics(w) == p1.metrics(w)                                    # same validation/test sets


def test_divergence_rule():
    assert divergence_flag([0.1, 2e3, 0.1], [2.3, 1.0, 0.5]) == {"step": 1, "reason": "|eta| = 2e+03 > 1e+03"}
    assert divergence_flag([0.1, np.nan], [2.3, 1.0])["reason"] == "non-finite eta"
    assert divergence_flag([0.1, 0.1], [2.3, np.inf]) == {"step": 1, "reason": "non-finite loss"}
    assert divergence_flag([0.1] * 3, [2.3, 2.0], diverged_at=2, what="weights")["step"] == 2
    flag = divergence_flag([0.1] * 10, [2.3] + [2.0] * 7 + [2.5, 2.6], window=2)
    assert flag["step"] == 8 and "above its start" in flag["reason"]
    assert divergence_flag([0.1] * 10, [2.3] * 10) is None and divergence_flag([], []) is None


def test_summary_counts_flagged_seeds_and_skips_them_in_means():
    def rec(seed, acc, flag=None):
        return {"config": {"method": "hd", "beta": 1e-3, "seed": seed},
                "result": {"diverged_at": None, "flag": flag, "metrics": {"val_acc": acc, "val_loss": 1 - acc}}}
    records = {"a": rec(0, 0.9), "b": rec(1, 0.8), "c": rec(2, 0.1, {"step": 3, "reason": "|eta| = 2e+03 > 1e+03"})}
    row = summarize(records)["groups"]["hd"]["by_beta"]["1e-03"]
    assert row["n_seeds"] == 3 and row["n_diverged"] == 1 and row["val_acc_mean"] == pytest.approx(0.85)
    assert row["flags"] == {"2": {"step": 3, "reason": "|eta| = 2e+03 > 1e+03"}}
    assert summarize(records)["groups"]["hd"]["best_beta"] is None
