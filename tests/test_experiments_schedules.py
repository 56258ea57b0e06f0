"""``hgref schedules`` (MARTHE §5 / Fig. 2) end to end on real MNIST in a tiny configuration."""
import json

import numpy as np
import pytest

from hgref.cli import main
from hgref.experiments.schedules import DEFAULT, PAPER, TINY, configure, schedule_specs


def test_schedules_tiny_end_to_end(tmp_path, mnist_data):     # mnist_data: skipped offline
    assert main(["schedules", "--tiny", "--out", str(tmp_path), "--quiet", "--jobs", "1"]) == 0
    folder = tmp_path / "schedules"
    data = json.loads((folder / "schedules.json").read_text())
    methods = {r["config"]["method"] for r in data["runs"]}
    assert methods == {"constant", "hd", "rtho", "marthe_mu", "marthe", "lrs_opt"}
    for run in data["runs"]:
        res = run["result"]
        assert res["diverged_at"] is None and len(res["etas"]) == TINY.steps
        assert 0.0 <= res["metrics"]["val_acc"] <= 1.0
        assert res["val_loss"] == pytest.approx(res["metrics"]["val_loss"], rel=1e-12)
    const = next(r for r in data["runs"] if r["config"]["method"] == "constant")
    assert np.all(np.array(const["result"]["etas"]) == TINY.eta0)
    lrs = next(r for r in data["runs"] if r["config"]["method"] == "lrs_opt")
    assert len(lrs["result"]["lrs_opt_history"]) == TINY.lrs_opt_iterations
    best = data["summary"]["best"]
    assert set(best) >= {"constant", "hd", "rtho", "marthe_mu", "marthe", "lrs_opt"}
    assert (folder / "schedules.png").stat().st_size > 10_000
    assert not list((folder / "runs").glob("*.scratch"))


def test_configurations():
    assert PAPER.hidden == (500, 500) and len(PAPER.seeds) == 20 and PAPER.lrs_opt_iterations == 5000
    assert PAPER.steps == DEFAULT.steps == 512 and PAPER.eta0 == 0.01 and PAPER.batch_size == 100
    setup = configure(DEFAULT, seeds=[3], methods=("constant", "lrs_opt"), lrs_opt_seeds=1)
    keys = [s.key for s in schedule_specs(setup)]
    assert keys == ["seed=3-lrs_opt", "seed=3-constant"]
