"""hgref.torch.lrs_opt: the torch reverse-mode schedule hypergradient equals the oracle's
(``hgref.oracle.hypergradient``, float64)."""
import numpy as np
import pytest

import _torch_helpers  # noqa: F401  (one torch thread)
from hgref import dynamics
from hgref.oracle import hypergradient
from hgref.problems import mnist_mlp
from hgref.torch import lrs_opt, schedule_hypergradient
from hgref.torch.mnist import mnist_torch

T = 6


@pytest.fixture(scope="module")
def problem():
    return mnist_mlp(hidden=(8,), seed=1, batch_size=20, sizes=(200, 50, 50))


@pytest.mark.parametrize("name, hp", [("sgd", {}), ("heavy_ball", {"momentum": 0.9}),
                                      ("nesterov", {"momentum": 0.8}), ("adam", {})])
def test_schedule_hypergradient_equals_numpy_adjoint(problem, name, hp):
    schedule = np.linspace(0.05, 0.02, T) if name != "adam" else np.full(T, 1e-3)
    value, grad, _ = hypergradient(problem, dynamics.get_dynamics(name, weight_decay=1e-3, **hp), schedule, 3)
    tvalue, tgrad = schedule_hypergradient(mnist_torch(problem), schedule, name, seed=3,
                                           weight_decay=1e-3, **hp)
    assert abs(float(tvalue) - value) <= 1e-12 * abs(value)
    assert np.max(np.abs(tgrad.numpy() - grad)) <= 1e-10 * np.max(np.abs(grad))


def test_lrs_opt_descends_and_validates(problem):
    tp = mnist_torch(problem)
    res = lrs_opt(tp, np.full(T, 0.05), outer_steps=3, outer_lr=0.05, seed=0)
    assert res.x.shape == (T,) and res.nit == 3 and np.all(res.x >= 0)
    with pytest.raises(ValueError, match="schedule"):
        schedule_hypergradient(tp, [-0.1, 0.1])
    with pytest.raises(ValueError, match="dynamics"):
        schedule_hypergradient(tp, [0.1], "rmsprop")
    with pytest.raises(ValueError, match="outer_lr"):
        lrs_opt(tp, [0.1], 1, -1.0)
