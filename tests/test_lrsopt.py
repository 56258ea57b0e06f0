"""LRS-OPT: L-BFGS-B beats every constant schedule of a grid; the §5 projected gradient
protocol (fresh minibatches, exact resume, divergence report); result fields; bad input."""
import json

import autograd.numpy as anp
import numpy as np
import pytest

from hgref import DivergenceError, dynamics as D, problems
from hgref.lrsopt import lrs_opt, lrs_opt_pgd, outer_seed
from hgref.oracle import hypergradient
from hgref.oracle.unroll import final_objective, sweep
from hgref.problems import make_problem

T = 500


def best_constant(problem, dyn, grid):
    """min over the grid of f_T(c·1_T), diverging constants excluded: (f, c)."""
    best = (np.inf, None)
    for c in grid:
        try:
            f = final_objective(problem, sweep(problem, dyn, np.full(T, c), 0, dyn.init(problem.w0))[0], T)
        except DivergenceError:
            continue
        best = min(best, (f, c))
    return best


def test_lrs_opt_beats_best_constant_on_beale():
    """From the best constant of the grid, L-BFGS-B strictly lowers f_T (T = 500, SGD)."""
    problem, dyn = problems.beale(), D.sgd()
    f_const, c = best_constant(problem, dyn, np.logspace(-4, 0, 17))
    res = lrs_opt(problem, dyn, np.full(T, c), maxiter=1)
    assert res.fun < f_const
    assert res.history[0] == f_const and res.fun == res.history[-1] == min(res.history)
    assert res.x.shape == (T,) and np.all(res.x >= 0)
    assert res.fun == hypergradient(problem, dyn, res.x).value


def test_lrs_opt_beats_best_constant_on_bukin():
    """Smoothed Bukin, T = 500: LRS-OPT (from η = 0.003) ends below the best grid constant.

    ε = 1e-4, not the Fig. 1 default 1e-6: near the valley ∇²L ~ 1/√ε, constant-η runs turn
    chaotic and ‖∇f_T‖ reaches ~1e90 at ε = 1e-6 (1e68 at ε = 1e-4 for the best constant),
    so a line search from there fails. With ε ≥ 1e-3 the best constant already reaches the
    global minimum √(√ε + ε) and nothing can be strictly lower.
    """
    problem, dyn = problems.bukin(eps=1e-4), D.sgd()
    f_const, _ = best_constant(problem, dyn, np.logspace(-4, 0, 17))
    assert f_const > np.sqrt(np.sqrt(1e-4) + 1e-4) + 1e-3      # room below the best constant
    res = lrs_opt(problem, dyn, np.full(T, 0.003), maxiter=30)
    assert res.fun < f_const and np.all(res.x >= 0)
    assert res.fun == pytest.approx(hypergradient(problem, dyn, res.x).value, rel=1e-12)


def test_lrs_opt_never_returns_worse_than_its_start():
    """On a chaotic f_T (Bukin ε = 1e-6) the line search fails; the best point is returned."""
    problem, dyn = problems.bukin(), D.sgd()
    res = lrs_opt(problem, dyn, np.full(T, 0.001), maxiter=5)
    assert res.fun <= res.history[0]


def test_lrs_opt_result_fields_and_callback_stop():
    problem, dyn, seen = problems.beale(), D.heavy_ball(0.5), []

    def callback(k, schedule, value):
        seen.append((k, schedule.copy(), value))
        return k == 2

    res = lrs_opt(problem, dyn, np.full(20, 0.01), maxiter=50, callback=callback)
    assert res.status == 99 and not res.success and res.nit == 2
    assert [k for k, _, _ in seen] == [1, 2] and len(res.history) == 3
    assert seen[-1][2] == res.fun == res.history[-1]
    np.testing.assert_array_equal(seen[-1][1], res.x)
    assert isinstance(res.message, str) and res.jac.shape == (20,)
    with pytest.raises(ValueError, match="schedule0"):
        lrs_opt(problem, dyn, [0.1, -1.0])
    with pytest.raises(ValueError, match="maxiter"):
        lrs_opt(problem, dyn, [0.1], maxiter=0)
    with pytest.raises(DivergenceError, match="step"):
        lrs_opt(problem, dyn, [0.01, 50.0, 50.0, 50.0])


def stochastic_problem():
    """L_t(w) = ½‖w − ξ_t‖² + ¼‖w‖⁴/10 with ξ_t ~ N(1, 0.3²) from (t, seed); E(w) = ½‖w − 1‖²."""
    def loss(w, xi):
        return 0.5 * anp.sum((w - xi) ** 2) + 0.025 * anp.sum(w ** 2) ** 2

    def batch(t, seed):
        return np.random.default_rng([seed, t]).normal(1.0, 0.3, 3)

    return make_problem("stochastic", [2.0, -1.0, 0.5], loss,
                        objective=lambda w: 0.5 * anp.sum((w - 1.0) ** 2), batch=batch)


def test_pgd_protocol_fresh_batches_and_projection():
    problem, dyn = stochastic_problem(), D.sgd()
    res = lrs_opt_pgd(problem, dyn, steps=15, lr=0.05, iterations=6, seed=4)
    assert res.status == 0 and res.success and res.nit == 6 and res.history.shape == (6,)
    assert res.history[-1] < res.history[0] and np.all(res.x >= 0)
    # history[k] is f_T(η_k) on the minibatches of outer_seed(4, k); η_0 = 0.01·1
    assert res.history[0] == hypergradient(problem, dyn, np.full(15, 0.01), outer_seed(4, 0)).value
    assert len({outer_seed(4, k) for k in range(6)} | {4}) == 7
    # fun is f_T(x) on the sequence of the base seed, used by no outer iteration
    assert res.fun == hypergradient(problem, dyn, res.x, 4).value
    fixed = lrs_opt_pgd(problem, dyn, steps=15, lr=0.05, iterations=2, seed=4, fresh_batches=False)
    assert fixed.history[0] == hypergradient(problem, dyn, np.full(15, 0.01), 4).value
    # one step by hand: η_1 = max(η_0 − lr ∇f, 0)
    one = lrs_opt_pgd(problem, dyn, np.full(15, 0.01), lr=0.05, iterations=1, seed=4)
    g = hypergradient(problem, dyn, np.full(15, 0.01), outer_seed(4, 0)).grad
    np.testing.assert_array_equal(one.x, np.maximum(0.01 - 0.05 * g, 0.0))
    clipped = lrs_opt_pgd(problem, dyn, np.full(15, 0.01), lr=0.05, iterations=1, seed=4, max_change=1e-4)
    np.testing.assert_array_equal(clipped.x, np.maximum(0.01 - np.clip(0.05 * g, -1e-4, 1e-4), 0.0))


def test_pgd_resume_gives_the_uninterrupted_result(tmp_path):
    problem, dyn = stochastic_problem(), D.heavy_ball(0.5)
    kw = dict(steps=12, lr=0.05, iterations=7, seed=1)
    full = lrs_opt_pgd(problem, dyn, **kw)
    path = tmp_path / "state.json"
    stopped = lrs_opt_pgd(problem, dyn, state_path=path, callback=lambda k, s, v: k == 2, **kw)
    assert stopped.status == 1 and stopped.nit == 3 and "callback" in stopped.message
    assert json.loads(path.read_text())["iteration"] == 3
    resumed = lrs_opt_pgd(problem, dyn, state_path=path, progress=True, **kw)
    assert resumed.nit == 7 and resumed.status == 0
    np.testing.assert_array_equal(resumed.x, full.x)
    np.testing.assert_array_equal(resumed.history, full.history)
    assert resumed.fun == full.fun
    with pytest.raises(ValueError, match="different run: lr"):
        lrs_opt_pgd(problem, dyn, state_path=path, **dict(kw, lr=0.1))


def test_pgd_divergence_stops_with_iteration_and_step(tmp_path):
    problem, dyn = problems.beale(), D.sgd()
    path = tmp_path / "state.json"
    res = lrs_opt_pgd(problem, dyn, steps=30, lr=1e3, iterations=5, state_path=path)
    assert res.status == 2 and not res.success
    assert "outer iteration 1" in res.message and "step" in res.message
    np.testing.assert_array_equal(res.x, np.full(30, 0.01))   # the last schedule with finite f_T
    assert res.fun == res.history[-1] == hypergradient(problem, dyn, np.full(30, 0.01)).value
    state = json.loads(path.read_text())
    assert state["iteration"] == 1 and all(v is not None for v in state["schedule"] + state["history"])


def test_pgd_bad_input():
    p, dyn = problems.beale(), D.sgd()
    with pytest.raises(ValueError, match="schedule0 or steps"):
        lrs_opt_pgd(p, dyn, lr=0.1, iterations=1)
    with pytest.raises(ValueError, match="steps must equal"):
        lrs_opt_pgd(p, dyn, [0.01] * 3, steps=4, lr=0.1, iterations=1)
    with pytest.raises(ValueError, match="lr"):
        lrs_opt_pgd(p, dyn, steps=3, lr=0.0, iterations=1)
    with pytest.raises(ValueError, match="method"):
        lrs_opt_pgd(p, dyn, steps=3, lr=0.1, iterations=1, method="adjoint")
