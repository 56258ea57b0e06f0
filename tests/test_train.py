"""The one training loop: records, determinism, divergence, bad input."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from hgref import DivergenceError, dynamics as D, problems, rules, run
from hgref.rules import Rule


def test_constant_rule_record():
    tr = run(problems.beale(), D.sgd(), rules.constant(), 0.01, 20, eval_every=5)
    assert tr.etas.shape == tr.losses.shape == (20,)
    assert np.all(tr.etas == 0.01)
    assert tr.diverged_at is None and tr.state.count == 20
    np.testing.assert_array_equal(tr.eval_steps, [0, 5, 10, 15, 20])
    assert tr.objectives[-1] == tr.objective == pytest.approx(float(problems.beale().objective(tr.state.w)))
    assert tr.losses[0] == pytest.approx(float(problems.beale().objective(problems.beale().w0)))


def test_loop_equals_hand_unrolled_dynamics():
    p, dyn = problems.bukin(), D.nesterov(0.5)
    tr = run(p, dyn, rules.constant(), 0.05, 30)
    s = dyn.init(p.w0)
    for _ in range(30):
        s = dyn.step(s, 0.05, p.value_and_grad(s.w, None)[1])
    np.testing.assert_array_equal(tr.state.w, s.w)


def test_rule_sees_step_and_previous_direction():
    seen = []

    def update(rstate, obs):
        seen.append((obs.t, None if obs.prev_direction is None else obs.prev_direction.copy()))
        return rstate, rstate, {"t_squared": obs.t ** 2}

    rule = Rule("probe", lambda eta0, s: eta0, update, {})
    tr = run(problems.beale(), D.sgd(), rule, 0.001, 4)
    assert seen[0] == (0, None)
    g0 = problems.beale().value_and_grad(problems.beale().w0, None)[1]
    np.testing.assert_array_equal(seen[1][1], g0)           # d_0 = g_0 for SGD
    np.testing.assert_array_equal(tr.diagnostics["t_squared"], [0, 1, 4, 9])


def test_divergence_is_reported_with_step():
    with pytest.raises(DivergenceError) as err:
        run(problems.beale(), D.sgd(), rules.constant(), 1.0, 50)
    assert err.value.step > 0 and "step" in str(err.value)
    tr = run(problems.beale(), D.sgd(), rules.constant(), 1.0, 50, on_divergence="return")
    assert tr.diverged_at == err.value.step
    assert len(tr.etas) == tr.diverged_at and np.all(np.isfinite(tr.losses))
    assert np.isnan(tr.objective) and tr.metrics == {}


def test_rule_returning_nan_eta_is_divergence():
    rule = Rule("nan", lambda eta0, s: None, lambda r, obs: (float("nan") if obs.t == 3 else 0.01, r, {}), {})
    with pytest.raises(DivergenceError, match="step 3: non-finite eta"):
        run(problems.beale(), D.sgd(), rule, 0.01, 10)


@given(seed=st.integers(0, 100), eta=st.floats(0.0, 0.01))
def test_deterministic(seed, eta):
    a = run(problems.beale(), D.adam(), rules.constant(), eta, 10, seed=seed)
    b = run(problems.beale(), D.adam(), rules.constant(), eta, 10, seed=seed)
    np.testing.assert_array_equal(a.state.w, b.state.w)


def test_callback_can_stop():
    tr = run(problems.beale(), D.sgd(), rules.constant(), 0.01, 100, callback=lambda t, *a: t == 9)
    assert tr.etas.shape == (10,)


@pytest.mark.parametrize("kwargs,match", [
    ({"eta0": -0.1}, "eta0"), ({"eta0": float("nan")}, "eta0"), ({"eta0": float("inf")}, "eta0"),
    ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"seed": -1}, "seed"),
    ({"on_divergence": "ignore"}, "on_divergence"), ({"eval_every": 0}, "eval_every"),
])
def test_bad_arguments(kwargs, match):
    args = dict(eta0=0.01, steps=5)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        run(problems.beale(), D.sgd(), rules.constant(), **args)
