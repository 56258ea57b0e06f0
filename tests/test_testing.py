"""hgref.testing: exact discounted sums, assertion helpers, the NumPy rule checker, the CLI.

The checker is itself checked both ways: hgref's own rules pass every case at <= 1e-10
relative (HD with its default objective "train" too, once the objective is declared), and
deliberately wrong rules fail exactly the cases that exercise their bug. The torch driver is in
tests/test_testing_torch.py, own-dynamics mode in tests/test_testing_own.py, the gallery of
planted bugs in tests/test_testing_gallery.py.
"""
import json
import subprocess
import sys
import textwrap
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hgref import dynamics, oracle, problems, rules, run
from hgref.dynamics import get_dynamics, pack
from hgref.linearize import linearize, tangent_update
from hgref.rules import Rule
from hgref.testing import (BATTERY, MATRIX, Unsupported, assert_hypergradient_close,
                           assert_rule, check_rule, compare, discount_matrix, exact_hypergradients,
                           get_cases)

ONE_GROUP = tuple(c for c in BATTERY if c.n_groups == 1)


# ----------------------------------------------------------------------------- exact values
@given(st.floats(0.0, 1.0), st.integers(1, 8))
def test_discount_matrix_fixed_mu_equals_constant_sequence(mu, T):
    W = discount_matrix(mu, T)
    assert np.array_equal(W, discount_matrix(np.full(T, mu), T))
    t, i = np.indices((T, T))
    assert np.allclose(W[i < t], (mu ** np.maximum(t - 1 - i, 0))[i < t], rtol=1e-14, atol=0)
    assert not W[i >= t].any()


def test_discount_matrix_rejects_bad_mu():
    with pytest.raises(ValueError, match="mu must lie in"):
        discount_matrix(1.5, 3)
    with pytest.raises(ValueError, match="length 3"):
        discount_matrix([0.5, 0.5], 3)


def test_exact_sums_match_reverse_mode_of_each_prefix():
    """Identity: Σ_i ∂E(w_t)/∂η_i (μ = 1) and ∂E(w_t)/∂η_{t−1} (μ = 0) are the sum and the last
    entry of the reverse-mode hypergradient of the t-step problem (an independent sweep)."""
    p, dyn = problems.beale(), dynamics.nesterov(0.9, weight_decay=0.01)
    schedule = 0.002 * (1 + 0.5 * np.cos(np.arange(8.0)))
    rtho_exact = exact_hypergradients(p, dyn, schedule, mu=1.0)
    hd_exact = exact_hypergradients(p, dyn, schedule, mu=0.0)
    assert rtho_exact[0] == hd_exact[0] == 0.0
    for t in range(1, 8):
        g = oracle.hypergradient(p, dyn, schedule[:t], method="reverse").grad
        assert rtho_exact[t] == pytest.approx(g.sum(), rel=1e-12)
        assert hd_exact[t] == pytest.approx(g[-1], rel=1e-12)


def test_assert_hypergradient_close_passes_hgref_rtho_and_reports_a_wrong_estimate():
    p, dyn = problems.beale(), dynamics.heavy_ball(0.9)
    tr = run(p, dyn, rules.rtho(0.0), 0.002, 8)
    assert_hypergradient_close(tr.diagnostics["hypergradient"], p, dyn, tr.etas, mu=1.0, rtol=1e-10)
    wrong = tr.diagnostics["hypergradient"].copy()
    wrong[3] *= 1.01
    with pytest.raises(AssertionError) as info:
        assert_hypergradient_close(wrong, p, dyn, tr.etas, mu=1.0, case="beale-hb")
    msg = str(info.value)
    assert "case: beale-hb" in msg and "first diverging step: t=3" in msg
    assert "failing steps: 1/8" in msg and "rel.err" in msg
    row = [line for line in msg.splitlines() if line.strip().startswith("3 ")][0]
    assert row.endswith("*") and "1.0e-02" in row


def test_compare_criterion_and_bad_input():
    cmp = compare([0.0, 1.0, np.nan], [0.0, 1.0 + 1e-9, 2.0], [0.1] * 3, rtol=1e-8)
    assert cmp.ok.tolist() == [True, True, False] and cmp.first_bad_step == 2
    assert cmp.rel_error[0] == 0.0 and np.isinf(cmp.rel_error[2])
    with pytest.raises(ValueError, match="length 3"):
        compare([0.0, 1.0], [0.0, 1.0, 2.0], [0.1] * 3)
    with pytest.raises(ValueError, match="estimates"):
        assert_hypergradient_close([0.0], problems.beale(), dynamics.sgd(), [0.01, 0.01])


def test_import_does_not_need_torch():
    code = "import sys, hgref.testing, hgref.testing.bridge; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- hgref's own rules
HGREF_RULES = {
    "hd": (lambda case: rules.hd(0.0, objective="validation"), 0.0),
    "rtho": (lambda case: rules.rtho(0.0), 1.0),
    "marthe_mu0.9": (lambda case: rules.marthe(0.0, mu=0.9, adapt_beta=False), 0.9),
    "marthe_adaptive_mu": (lambda case: rules.marthe(0.0), "mu"),
}


@pytest.mark.parametrize("name", HGREF_RULES)
def test_hgref_rules_pass_the_battery(name):
    make_rule, mu = HGREF_RULES[name]
    report = assert_rule(make_rule, mu=mu, rtol=1e-10, name=name)
    assert report.verdict == "PASSED" and report.complete
    assert [r.status for r in report.results] == ["pass" if c.n_groups == 1 else "unsupported" for c in BATTERY]
    assert max(r.max_rel_error for r in report.results if r.comparison) <= 1e-10


def test_hd_default_objective_passes_once_declared():
    """rules.hd(β) estimates the training loss L_t + λ/2‖w‖² (objective "train"): judged against
    E it fails exactly the cases where that differs from E; declared, every case passes."""
    report = check_rule(lambda c: rules.hd(1e-3), mu=0.0, objective="train")
    assert report.passed and report.objective == "train", report.table()
    assert max(r.max_rel_error for r in report.results if r.comparison) <= 1e-10
    assert "objective=train" in report.table()
    some = tuple(c for c in ONE_GROUP if c.dynamics in ("sgd", "adamw"))   # coupled and decoupled decay
    against_e = check_rule(lambda c: rules.hd(1e-3), mu=0.0, cases=some)
    differs = {c.name for c in some if c.minibatch or (c.dynamics != "adamw" and c.hyperparams.get("weight_decay"))}
    assert set(against_e.failed_cases) == differs and against_e.verdict == "FAILED"
    callable_loss = check_rule(lambda c: rules.hd(0.0), mu=0.0, cases=get_cases("sgd_validation"),
                               objective=c_loss)
    assert callable_loss.results[0].status == "pass" and callable_loss.objective == "c_loss"


def c_loss(w, batch):
    """A user objective f(w, batch): the minibatch loss of the battery's MLP (autograd.numpy)."""
    return get_cases("sgd_validation")[0].problem().loss(w, batch)


# ----------------------------------------------------------------------------- wrong NumPy rules
class _TangentState(NamedTuple):
    eta: float          # η_{t−1}, overwritten by the schedule before each step
    last_eta: float     # η used at the previous step
    z: np.ndarray       # shape=(n,) tangent Z_t over the packed state


def tangent_rule(bug=None, mu=1.0):
    """A hand-written RTHO (β = 0) with one planted bug."""

    def init(eta0, state):
        return _TangentState(eta0, eta0, np.zeros(pack(state).shape[0]))

    def update(rs, obs):
        d, hp = obs.w.shape[0], dict(obs.dynamics.hyperparams)
        if bug == "no_weight_decay":
            hp["weight_decay"] = 0.0
        if bug == "eps_root_ignored" and "eps_root" in hp:
            hp["eps_root"] = 0.0
        _, tangent = linearize(obs.problem, get_dynamics(obs.dynamics.name, **hp), obs.state,
                               obs.batch, rs.z)
        grad_obj = obs.grad() if bug == "train_gradient" else obs.objective_grad()
        delta = float(rs.z[:d] @ grad_obj)
        eta_in_tangent = rs.last_eta if bug == "stale_lr" else rs.eta
        z = tangent_update(rs.z, obs.step(), tangent, eta_in_tangent, mu=mu)
        if bug == "no_buffer_tangent":
            z[d:] = 0.0
        return rs.eta, _TangentState(rs.eta, rs.eta, z), {"hypergradient": delta}

    return Rule(f"tangent-{bug}", init, update, {})


def _names(pattern):
    return {c.name for c in get_cases(pattern)}


WRONG_RULES = {   # bug -> the cases that must catch it (every other case run must pass)
    None: set(),
    "stale_lr": _names("lr_changes,first_steps,nesterov_all,adam_all,adamw_all"),
    "no_weight_decay": _names("weight_decay,adamw*,nesterov_all,adam_all") - {"adamw_groups"},
    "no_buffer_tangent": {c.name for c in ONE_GROUP if c.dynamics != "sgd"},
    "eps_root_ignored": {"adam_eps_root", "adam_all"},
    "train_gradient": _names("validation,nesterov_all,adam_all,adamw_all"),
}


@pytest.mark.parametrize("bug", WRONG_RULES)
def test_wrong_rules_are_caught_on_the_right_cases(bug):
    """Each bug on the five baselines (which must pass, except where the bug shows everywhere)
    and on the cases expected to catch it, with diagnosis wrong_hypergradient."""
    cases = tuple(c for c in ONE_GROUP if c.column == "base" or c.name in WRONG_RULES[bug])
    report = check_rule(lambda case: tangent_rule(bug), mu=1.0, name=f"tangent-{bug}", cases=cases)
    assert set(report.failed_cases) == WRONG_RULES[bug], report.table()
    assert {r.status for r in report.results} <= {"pass", "fail"}
    assert {r.diagnosis for r in report.results if r.status == "fail"} <= {"wrong_hypergradient"}
    for r in report.results:
        if r.status == "fail":
            assert r.max_rel_error > 1e-6 and r.first_bad_step is not None
    if bug is not None:
        with pytest.raises(AssertionError) as info:
            report.raise_if_failed()
        first = sorted(WRONG_RULES[bug], key=[c.name for c in BATTERY].index)[0]
        assert f"--- case {first}: fail (wrong_hypergradient)" in str(info.value)
        assert "first diverging step" in str(info.value)


def test_check_rule_reports_unsupported_and_errors():
    def make(case):
        if case.dynamics == "adam":
            raise Unsupported("no Adam here")
        if case.name == "sgd":
            raise RuntimeError("boom")
        return rules.hd(0.0, objective="validation")

    report = check_rule(make, cases=get_cases("sgd,heavy_ball,adam"), mu=0.0)
    assert [r.status for r in report.results] == ["error", "pass", "unsupported"]
    assert "RuntimeError: boom" in report.result("sgd").message and not report.passed
    saved = json.loads(json.dumps(report.to_dict()))
    assert saved["failed_cases"] == ["sgd"] and saved["verdict"] == "FAILED"
    assert report.result("sgd").diagnosis == "raised"


def test_coverage_verdict_is_never_a_bare_pass_on_a_partial_run():
    """One Adam case passing out of its five is INCOMPLETE (the issue's "1 of 10 ... PASSED")."""
    def adam_only_constant(case):
        if case.name != "adam":
            raise Unsupported("constant lr, no weight decay, full batch only")
        return rules.hd(0.0, objective="validation")

    report = check_rule(adam_only_constant, mu=0.0, cases=MATRIX)
    assert report.verdict == "INCOMPLETE" and not report.passed and not report.failed
    assert report.coverage == {"adam": (1, 5, ["adam_lr_changes", "adam_weight_decay",
                                                "adam_validation", "adam_first_steps"])}
    text = report.table()
    assert "1 of 25 matrix cases applicable (adam 1/5)" in text and "INCOMPLETE, not a pass" in text
    assert "PASSED" not in text
    report.raise_if_failed(complete=False)
    with pytest.raises(AssertionError, match="INCOMPLETE"):
        report.raise_if_failed()
