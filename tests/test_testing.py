"""hgref.testing: exact discounted sums, assertion helpers, the battery, the torch driver, the CLI.

The checker is itself checked both ways: hgref's own rules and torch bridge pass every case at
<= 1e-10 relative, and deliberately wrong estimators (NumPy rules and a small torch optimizer
below) fail exactly the cases that exercise their bug.
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
from hgref.testing import (BATTERY, TorchAdapter, Unsupported, assert_hypergradient_close,
                           assert_rule, check_rule, check_torch_optimizer, compare,
                           discount_matrix, exact_hypergradients, get_cases, hgref_adapter)

ALL = {c.name for c in BATTERY}
SGD_CASES = get_cases("sgd,sgd_lr_changes,sgd_weight_decay,validation")


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
    assert [r.status for r in report.results] == ["pass"] * len(BATTERY)
    assert max(r.max_rel_error for r in report.results) <= 1e-10


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


WRONG_RULES = {   # bug -> the cases that must catch it (every other case must pass)
    None: set(),
    "stale_lr": {"sgd_lr_changes", "nesterov_all", "adam_all"},
    "no_weight_decay": {"sgd_weight_decay", "nesterov_all", "adam_all"},
    "no_buffer_tangent": {"heavy_ball", "nesterov", "adam", "adam_eps_root", "nesterov_all", "adam_all"},
    "eps_root_ignored": {"adam_eps_root", "adam_all"},
    "train_gradient": {"validation", "nesterov_all", "adam_all"},
}


@pytest.mark.parametrize("bug", WRONG_RULES)
def test_wrong_rules_are_caught_on_the_right_cases(bug):
    report = check_rule(lambda case: tangent_rule(bug), mu=1.0, name=f"tangent-{bug}")
    assert set(report.failed_cases) == WRONG_RULES[bug], report.table()
    assert {r.status for r in report.results} <= {"pass", "fail"}
    for r in report.results:
        if r.status == "fail":
            assert r.max_rel_error > 1e-6 and r.first_bad_step is not None
    if bug is not None:
        with pytest.raises(AssertionError) as info:
            report.raise_if_failed()
        first = sorted(WRONG_RULES[bug], key=[c.name for c in BATTERY].index)[0]
        assert f"--- case {first}: fail" in str(info.value)
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
    assert json.loads(json.dumps(report.to_dict()))["failed_cases"] == ["sgd"]


# ----------------------------------------------------------------------------- torch
torch = pytest.importorskip("torch")


@pytest.mark.parametrize("adapter", [hgref_adapter("hd"), hgref_adapter("rtho"),
                                     hgref_adapter("marthe", mu="adaptive")], ids=lambda a: a.name)
def test_hgref_torch_bridge_passes_the_battery(adapter):
    report = check_torch_optimizer(adapter, rtol=1e-10)
    assert report.passed, report.details()
    assert [r.status for r in report.results] == ["pass"] * len(BATTERY)
    assert max(r.max_rel_error for r in report.results) <= 1e-10


class TinyRTHO(torch.optim.Optimizer):
    """SGD with weight decay and an RTHO tangent (Δη_t = Z_t·∇E(w_t)); ``bug`` plants a mistake."""

    def __init__(self, params, lr, weight_decay=0.0, bug=None):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))
        self.bug, self._delta, self._lr0, self._last_lr = bug, 0.0, lr, lr

    def hypergradient(self):
        return self._delta

    def step(self, closure, objective_closure):
        loss = closure()
        group = self.param_groups[0]
        params, wd = group["params"], group["weight_decay"]
        lr = self._lr0 if self.bug == "ignores_lr" else group["lr"]
        grads = [p.grad for p in params]
        zs = [self.state[p].setdefault("z", torch.zeros_like(p)) for p in params]
        objective_grads = torch.autograd.grad(objective_closure(), params)
        hz = torch.autograd.grad(grads, params, grad_outputs=zs)
        with torch.no_grad():
            self._delta = float(sum((z * g).sum() for z, g in zip(zs, objective_grads)))
            lr_tangent = self._last_lr if self.bug == "stale_lr" else lr
            wd_tangent = 0.0 if self.bug == "no_weight_decay" else wd
            for p, g, z, h in zip(params, grads, zs, hz):
                d = g + wd * p
                z.sub_(lr_tangent * (h + wd_tangent * z)).sub_(d)
                p.sub_(lr * d)
                p.grad = None
        self._last_lr = lr
        return loss


def tiny(bug=None):
    def make_optimizer(params, case):
        if case.dynamics != "sgd":
            raise Unsupported("TinyRTHO runs plain SGD only")
        return TinyRTHO(params, case.config["lr"], case.config["weight_decay"], bug)
    make_optimizer.__qualname__ = f"TinyRTHO(bug={bug})"
    return make_optimizer


def test_torch_driver_accepts_a_correct_hand_written_optimizer():
    report = check_torch_optimizer(tiny(), mu=1.0)
    statuses = {r.case: r.status for r in report.results}
    assert {c for c, s in statuses.items() if s == "pass"} == {c.name for c in SGD_CASES}
    assert {c for c, s in statuses.items() if s == "unsupported"} == ALL - {c.name for c in SGD_CASES}
    assert report.passed and max(r.max_rel_error for r in report.results if r.comparison) <= 1e-10


@pytest.mark.parametrize("bug, caught", [("stale_lr", "sgd_lr_changes"),
                                         ("no_weight_decay", "sgd_weight_decay"),
                                         ("ignores_lr", "sgd_lr_changes")])
def test_wrong_torch_optimizers_are_caught_on_the_right_case(bug, caught):
    report = check_torch_optimizer(tiny(bug), cases=SGD_CASES, mu=1.0)
    assert report.failed_cases == [caught], report.table()
    if bug == "ignores_lr":      # η never changed: the case must not pass vacuously
        assert "ignored the learning rate" in report.result(caught).message
    else:
        assert report.result(caught).first_bad_step == 2   # Z_2 is the first tangent through A_1


def test_torch_driver_detects_wrong_dynamics_and_missing_estimate():
    def no_weight_decay(params, case):
        from hgref.torch import HypergradientOptimizer
        return HypergradientOptimizer(params, case.config["lr"], "sgd", "rtho", objective="validation")

    report = check_torch_optimizer(no_weight_decay, cases=get_cases("sgd_weight_decay"), mu=1.0)
    assert report.result("sgd_weight_decay").status == "fail"
    assert "weight update is not w - eta*d" in report.result("sgd_weight_decay").message
    report = check_torch_optimizer(lambda params, case: torch.optim.SGD(params, lr=0.3),
                                   cases=get_cases("sgd"), mu=0.0)
    assert report.result("sgd").status == "error"
    assert "exposes no hypergradient" in report.result("sgd").message
    with pytest.raises(ValueError, match="mu"):
        check_torch_optimizer(tiny(), cases=get_cases("sgd"))


# ----------------------------------------------------------------------------- CLI
def test_cli_check(tmp_path, monkeypatch, capsys, mnist_data):     # mnist_data: skipped offline
    from hgref.cli import main

    (tmp_path / "my_hypergradients.py").write_text(textwrap.dedent("""
        from hgref import rules
        from hgref.testing import hgref_adapter

        rtho = hgref_adapter("rtho")
        off_by_half = rtho._replace(estimate=lambda opt: 1.5 * float(opt.lr_history(0, "hypergradient")[-1]))

        def hd_rule(case):
            return rules.hd(0.0, objective="validation")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = ["--out", str(tmp_path / "results")]
    assert main(["check", "hgref.testing.bridge.rtho", "--cases", "sgd,heavy_ball", "--json", *out]) == 0
    printed = capsys.readouterr().out
    report_path = tmp_path / "results" / "check" / "report.json"
    assert printed.rstrip().endswith(str(report_path))
    saved = json.loads(report_path.read_text())
    assert json.loads(printed[:printed.rindex("}") + 1]) == saved
    assert saved["passed"] and [c["status"] for c in saved["cases"]] == ["pass", "pass"]
    assert len(saved["cases"][0]["exact"]) == 25
    assert main(["check", "my_hypergradients:hd_rule", "--rule", "--mu", "0", "--cases", "validation", *out]) == 0
    assert "1/1 cases passed -- PASSED" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["check", "my_hypergradients.off_by_half", "--cases", "sgd", *out])
    assert info.value.code == 1
    printed = capsys.readouterr().out
    assert "FAILED: sgd" in printed and "first diverging step: t=1" in printed
    assert json.loads(report_path.read_text())["failed_cases"] == ["sgd"]
    assert main(["check", "my_hypergradients.nothing_here", *out]) == 2
    assert "has no attribute 'nothing_here'" in capsys.readouterr().err
    assert main(["check", "hgref.testing.bridge.rtho", "--cases", "nope", *out]) == 2
