"""Fixed schedules (MARTHE §6 baselines) run through the loop."""
import math

import numpy as np
import pytest

from hgref import dynamics as D, problems, rules, run


def _etas(rule, eta0=0.1, steps=40):
    return np.array([eta0 * rule.hyperparams["factor"](t) for t in range(steps)])


def test_schedule_values():
    np.testing.assert_allclose(_etas(rules.exponential(0.5, every=10)),
                               0.1 * 0.5 ** (np.arange(40) // 10))
    np.testing.assert_allclose(_etas(rules.staircase(15)), 0.1 * 0.1 ** (np.arange(40) // 15))
    e = _etas(rules.sgdr(T0=4, Tmult=2), steps=12)
    assert e[0] == pytest.approx(0.1) and e[4] == pytest.approx(0.1)       # restart after T0
    assert e[2] == pytest.approx(0.05) and e[8] == pytest.approx(0.05)     # cycle 2 has length 8
    assert e[3] == pytest.approx(0.05 * (1 + math.cos(3 * math.pi / 4)))


def test_schedules_in_the_loop():
    for rule in (rules.constant(), rules.exponential(0.9), rules.staircase(3), rules.sgdr(5)):
        tr = run(problems.beale(), D.heavy_ball(), rule, 0.01, 12)
        np.testing.assert_allclose(tr.etas, [0.01 * rule.hyperparams["factor"](t) for t in range(12)])


@pytest.mark.parametrize("make,arg", [
    (lambda: rules.exponential(gamma=-0.5), "gamma"), (lambda: rules.staircase(0), "every"),
    (lambda: rules.staircase(10, factor=float("nan")), "factor"), (lambda: rules.sgdr(0), "T0"),
    (lambda: rules.sgdr(10, eta_min=2.0), "eta_min"),
])
def test_bad_arguments(make, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        make()
