"""HD (Baydin et al.; seed paper's SGDN/Adam lops) against the oracle and identities."""
import math

import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from hgref import DivergenceError, problems, rules, run
from hgref import dynamics as D
from hgref.oracle import prefix_hypergradients

DYNAMICS = {
    "sgd": lambda wd: D.sgd(weight_decay=wd),
    "heavy_ball": lambda wd: D.heavy_ball(0.9, weight_decay=wd),
    "nesterov": lambda wd: D.nesterov(0.8, weight_decay=wd),
    "adam": lambda wd: D.adam(weight_decay=wd),
    "adamw": lambda wd: D.adamw(weight_decay=wd),
}
COUPLED = sorted(set(DYNAMICS) - {"adamw"})     # weight decay in the gradient: L + λ/2‖w‖²
TOYS = {"beale": lambda: problems.beale(w0=(0.5, 0.8)), "bukin": lambda: problems.bukin(w0=(-5.0, 1.0))}
ETA0 = {"sgd": 1e-3, "heavy_ball": 1e-4, "nesterov": 1e-4, "adam": 1e-2, "adamw": 1e-2}


@pytest.fixture(scope="module")
def mnist_small():
    """A small MLP with L2 in L_t and E = validation cross-entropy (E ≠ L)."""
    return problems.mnist_mlp((8,), sizes=(200, 50, 50), batch_size=20, l2=1e-3)


@given(dyn=st.sampled_from(sorted(DYNAMICS)), toy=st.sampled_from(sorted(TOYS)),
       lop=st.sampled_from(rules.hd.__globals__["LOPS"]), wd=st.sampled_from([0.0, 0.1]),
       log_beta=st.floats(-9, -6), steps=st.integers(2, 15))
def test_hd_is_the_last_prefix_hypergradient(dyn, toy, lop, wd, log_beta, steps):
    """h_t = ∂E(w_t)/∂η_{t−1} = J[t, t−1] for every dynamics (pins SGDN/Adam formulas)."""
    problem, dynamics = TOYS[toy](), DYNAMICS[dyn](wd)
    beta = 10.0 ** log_beta * (1e3 if lop == "adam" else 1.0)
    tr = run(problem, dynamics, rules.hd(beta, lop, objective="validation"), ETA0[dyn], steps)
    J = prefix_hypergradients(problem, dynamics, tr.etas)
    h = tr.diagnostics["hd"]
    assert h[0] == 0.0 and tr.etas[0] == ETA0[dyn]
    ref = np.array([J[t, t - 1] for t in range(1, steps)])
    np.testing.assert_allclose(h[1:], ref, rtol=1e-10, atol=1e-300)
    np.testing.assert_array_equal(tr.diagnostics["hypergradient"], h)


def test_hd_on_mnist_with_validation_objective(mnist_small):
    """E ≠ L: h_t uses ∇E (validation), the dynamics the minibatch loss."""
    problem = mnist_small
    dynamics = D.nesterov(0.9)
    tr = run(problem, dynamics, rules.hd(1e-3, objective="validation"), 0.05, 6)
    J = prefix_hypergradients(problem, dynamics, tr.etas)
    np.testing.assert_allclose(tr.diagnostics["hd"][1:], [J[t, t - 1] for t in range(1, 6)], rtol=1e-10)


@pytest.mark.parametrize("dyn", COUPLED)
def test_train_objective_includes_weight_decay(dyn):
    """objective="train": h_t = ∂(L + λ/2‖w‖²)(w_t)/∂η_{t−1}, i.e. g_t includes λ w_t."""
    lam = 0.3
    base = problems.beale(w0=(0.5, 0.8))
    regularised = problems.make_problem(
        "beale+l2", base.w0, base.loss, objective=lambda w: base.loss(w, None) + lam / 2 * anp.dot(w, w))
    dynamics = DYNAMICS[dyn](lam)
    tr = run(regularised, dynamics, rules.hd(1e-6, objective="train"), ETA0[dyn], 10)
    J = prefix_hypergradients(regularised, dynamics, tr.etas)
    oracle = np.array([J[t, t - 1] for t in range(1, 10)])
    np.testing.assert_allclose(tr.diagnostics["hd"][1:], oracle, rtol=1e-10)
    # Without λ w_t the one-step hypergradient is a different number (the rejected choice).
    tr_val = run(base, dynamics, rules.hd(1e-6, objective="validation"), ETA0[dyn], 10)
    assert np.max(np.abs(tr_val.diagnostics["hd"][1:] - oracle) / np.abs(oracle)) > 1e-3


def test_train_objective_under_adamw_is_the_loss(mnist_small):
    """AdamW (decoupled decay): objective="train" is h_t = ∂L_t(w_t)/∂η_{t−1}, the loss whose
    gradient AdamW is fed (torch's p.grad); ∂(L_t + λ/2‖w‖²)/∂η_{t−1} is a different number."""
    problem, lam = mnist_small, 0.1
    dynamics = D.adamw(weight_decay=lam)
    tr = run(problem, dynamics, rules.hd(1e-6, objective="train"), 1e-3, 8)

    def loss_grad(t, w):
        return problem.value_and_grad(w, problem.batch(t, 0))[1]

    J = prefix_hypergradients(problem, dynamics, tr.etas, objective_grad=loss_grad)
    oracle = np.array([J[t, t - 1] for t in range(1, 8)])
    np.testing.assert_allclose(tr.diagnostics["hd"][1:], oracle, rtol=1e-10)
    J_l2 = prefix_hypergradients(problem, dynamics, tr.etas,
                                 objective_grad=lambda t, w: loss_grad(t, w) + lam * w)
    rejected = np.array([J_l2[t, t - 1] for t in range(1, 8)])
    assert np.max(np.abs(rejected - oracle) / np.abs(oracle)) > 1e-3


def _replay_lop(h, eta0, beta, lop, mu=0.9, b1=0.9, b2=0.999, eps=1e-8):
    """The seed paper's Algorithms 1 and 2 written out from the hypergradient sequence."""
    etas, eta, v, m, s = [eta0], eta0, 0.0, 0.0, 0.0
    for k, hk in enumerate(h[1:], start=1):
        if lop == "sgd":
            step = hk
        elif lop == "sgdn":
            v = mu * v + hk
            step = hk + mu * v
        else:
            m, s = b1 * m + (1 - b1) * hk, b2 * s + (1 - b2) * hk ** 2
            step = m / (1 - b1 ** k) / (math.sqrt(s / (1 - b2 ** k)) + eps)
        eta = max(eta - beta * step, 0.0)
        etas.append(eta)
    return np.array(etas)


@pytest.mark.parametrize("lop,beta", [("sgd", 1e-5), ("sgdn", 1e-5), ("adam", 1e-3)])
@pytest.mark.parametrize("dyn", ["sgd", "adam"])
def test_lop_updates_follow_seed_algorithms(lop, beta, dyn):
    problem = problems.beale(w0=(0.5, 0.8))
    tr = run(problem, DYNAMICS[dyn](0.0), rules.hd(beta, lop), ETA0[dyn], 40)
    ref = _replay_lop(tr.diagnostics["hd"], ETA0[dyn], beta, lop)
    np.testing.assert_allclose(tr.etas, ref, rtol=1e-13, atol=0)


def test_hd_equals_marthe_with_mu_zero():
    """MARTHE(μ = 0, fixed β) is HD (lop SGD, objective E), step for step."""
    problem = problems.bukin(w0=(-5.0, 1.0))
    for dyn in ("sgd", "heavy_ball", "adam"):
        a = run(problem, DYNAMICS[dyn](0.1), rules.hd(1e-4, objective="validation"), ETA0[dyn], 60)
        b = run(problem, DYNAMICS[dyn](0.1), rules.marthe(1e-4, 0.0, adapt_beta=False), ETA0[dyn], 60)
        np.testing.assert_allclose(b.etas, a.etas, rtol=1e-13, atol=0)
        np.testing.assert_allclose(b.diagnostics["hypergradient"], a.diagnostics["hd"], rtol=1e-12, atol=0)


def test_eta_clipped_at_zero_and_divergence_reported():
    tr = run(problems.bukin(w0=(-5.0, 1.0)), D.sgd(), rules.hd(1.0), 1e-2, 100)
    assert np.all(tr.etas >= 0) and np.any(tr.etas == 0)
    with pytest.raises(DivergenceError) as err:
        run(problems.beale(), D.sgd(), rules.hd(1e4), 1e-3, 200)
    tr = run(problems.beale(), D.sgd(), rules.hd(1e4), 1e-3, 200, on_divergence="return")
    assert tr.diverged_at == err.value.step and len(tr.etas) == err.value.step
    assert np.all(np.isfinite(tr.etas))


@pytest.mark.parametrize("kwargs,arg", [
    ({"beta": -1.0}, "beta"), ({"beta": float("nan")}, "beta"), ({"beta": float("inf")}, "beta"),
    ({"beta": 1e-3, "lop": "rmsprop"}, "lop"), ({"beta": 1e-3, "objective": "test"}, "objective"),
    ({"beta": 1e-3, "momentum": 1.5}, "momentum"), ({"beta": 1e-3, "lop": "adam", "b2": 1.0}, "b2"),
    ({"beta": "0.1"}, "beta"),
])
def test_bad_arguments(kwargs, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        rules.hd(**kwargs)


def test_bad_eta0():
    with pytest.raises(ValueError, match="eta0"):
        run(problems.beale(), D.sgd(), rules.hd(1e-3), -0.1, 3)
