"""``hgref hd`` (HD with momentum/Adam lops; HD reproducibility grid) end to end on MNIST, tiny."""
import json

import numpy as np

from hgref.cli import main
from hgref.experiments.hd import BETA, DEFAULT, PAPER, THRESHOLD, configure, hd_specs, iterations_to_threshold, smoothed


def test_hd_tiny_end_to_end(tmp_path, mnist_data):     # mnist_data: skipped offline
    argv = ["hd", "--tiny", "--out", str(tmp_path), "--quiet", "--jobs", "1", "--ops", "sgd,adam",
            "--lops", "none,adam", "--alpha0s", "0.001"]
    assert main(argv) == 0
    folder = tmp_path / "hd"
    data = json.loads((folder / "hd.json").read_text())
    table = data["summary"]["table"]
    assert set(table) == {f"{m}/{o}/{l}" for m in ("logreg", "mlp") for o in ("sgd", "adam")
                          for l in ("none", "adam")}
    for run in data["runs"]:
        c, r = run["config"], run["result"]
        assert len(r["alphas"]) == c["steps"] == r["steps_per_epoch"]
        if c["lop"] == "none":
            assert np.all(np.array(r["alphas"]) == c["alpha0"])
        elif c["beta"] != BETA[c["op"]]:
            assert (c["model"], c["op"], c["lop"]) == ("logreg", "sgd", "sgd")   # the heatmap grid
    assert set(data["summary"]["grid"]) == {"1e-04", "0.01"}
    for name in ("hd_curves_logreg.png", "hd_curves_mlp.png", "hd_grid.png"):
        assert (folder / name).stat().st_size > 10_000


def test_iterations_to_threshold_uses_full_windows():
    losses = [0.1] + [1.0] * 9 + [0.5] * 10
    assert iterations_to_threshold(losses, 0.75, window=4) == 13     # mean of the last 4 is 0.75 at i=12, 0.625 at 13
    assert iterations_to_threshold(losses, 0.05, window=4) is None
    np.testing.assert_allclose(smoothed([1.0, 3.0, 5.0], 2), [1.0, 2.0, 4.0])


def test_paper_settings():
    assert BETA == {"sgd": 1e-3, "sgdn": 1e-3, "adam": 1e-7}
    assert THRESHOLD == {"sgd": 0.75, "sgdn": 0.3, "adam": 0.2}
    assert PAPER.alpha0s == (1e-2, 5e-3, 1e-3, 5e-4, 1e-4) and PAPER.alpha0 == 1e-3
    assert PAPER.epochs == {"logreg": 20, "mlp": 100} and PAPER.mlp_hidden == (1000, 1000)
    specs = hd_specs(configure(DEFAULT, models=("logreg",), ops=("sgd",), lops=("sgd",), alpha0s=(1e-3,)))
    configs = [json.dumps(s.config, sort_keys=True) for s in specs]
    assert len(configs) == len(set(configs)), "the grid must not repeat a table run"
