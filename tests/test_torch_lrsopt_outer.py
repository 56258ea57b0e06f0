"""LRS-OPT through the torch reverse mode: the same outer loop as the NumPy oracle (float64
agreement on a small §5 network) and ``hgref schedules --paper-scale --device cpu`` end to end
in a tiny configuration."""
import json

import numpy as np

import _torch_helpers  # noqa: F401  (one torch thread)
from hgref import dynamics
from hgref.cli import main
from hgref.experiments.schedules import PAPER
from hgref.lrsopt import adam, lrs_opt_stochastic
from hgref.oracle import hypergradient
from hgref.problems import mnist_mlp
from hgref.torch import lrs_opt, schedule_hypergradient
from hgref.torch.mnist import mnist_torch

T = 16


def small_section5_problem():
    """The §5 network shape (two hidden ReLU layers, batch 100, Glorot) at width 16."""
    return mnist_mlp((16, 16), seed=2, batch_size=100, sizes=(700, 100, 100), split_seed=0)


def test_torch_reverse_mode_equals_numpy_oracle_float64():
    problem = small_section5_problem()
    schedule = np.linspace(0.3, 0.05, T)
    hg = hypergradient(problem, dynamics.sgd(), schedule, 7)
    value, grad = schedule_hypergradient(mnist_torch(problem), schedule, "sgd", seed=7)
    assert abs(float(value) - hg.value) <= 1e-12 * abs(hg.value)
    assert np.max(np.abs(grad.numpy() - hg.grad)) <= 1e-10 * np.max(np.abs(hg.grad))


def test_torch_lrs_opt_follows_the_numpy_outer_loop():
    """Same outer optimizer, same fresh minibatch seeds: the iterates agree to rounding."""
    problem = small_section5_problem()
    ref = lrs_opt_stochastic(problem, dynamics.sgd(), steps=T, outer=adam(0.01), iterations=3, seed=5)
    res = lrs_opt(mnist_torch(problem), np.full(T, 0.01), 3, outer=adam(0.01), seed=5)
    assert res.nit == ref.nit == 3
    np.testing.assert_allclose(res.history, ref.history, rtol=1e-12)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-10, atol=1e-14)
    assert abs(res.fun - ref.fun) <= 1e-12 * abs(ref.fun)


def test_paper_scale_command_tiny_on_cpu(tmp_path, mnist_data):     # mnist_data: skipped offline
    argv = ["schedules", "--paper-scale", "--device", "cpu", "--hidden", "8", "--steps", "12", "--seed", "0",
            "--betas", "1e-2", "--mus", "0.9", "--lrs-opt-iterations", "2", "--lrs-opt-seeds", "1",
            "--out", str(tmp_path), "--quiet", "--jobs", "1"]
    assert main(argv) == 0
    data = json.loads((tmp_path / "schedules" / "schedules.json").read_text())
    assert data["config"]["sizes"] == list(PAPER.sizes) and data["config"]["lrs_opt_outer"] == "pgd"
    lrs = next(r for r in data["runs"] if r["config"]["method"] == "lrs_opt")
    assert lrs["key"] == "seed=0-lrs_opt"
    assert lrs["config"]["device"] == "cpu" and lrs["config"]["torch_dtype"] == "float32"
    assert len(lrs["result"]["etas"]) == 12 and len(lrs["result"]["lrs_opt_history"]) == 2
    assert {r["config"]["method"] for r in data["runs"]} == set(PAPER.methods)
    assert (tmp_path / "schedules" / "schedules_convergence.png").exists()
    assert main(argv[:-5] + ["--device", "cuda:99", "--out", str(tmp_path), "--quiet"]) == 2
