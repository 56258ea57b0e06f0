"""Own-dynamics mode: the reference computed through the optimizer itself.

Its accuracy is proved against the exact oracle on an hgref dynamics (hgref's torch bridge run
through the mode, J compared with hgref.oracle on the tanh problem); then every correct variant
of the released conventions — each ε placement, AdamW, training-loss HD with β ≠ 0, float32
constants — passes, judged on its own update, and a learning rate not applied as written is
reported instead of producing a meaningless reference. Cases: the 8-step first_steps column
(and one 25-step case), to keep the suite short; the full matrix runs in benchmarks/bench_testing.py.
"""
import numpy as np
import pytest
import torch

from _hypergradient_optimizers import (SGDHD, TangentRTHO, adamhd_adapter, convention_adapter,
                                       sgdhd_adapter, stacked_adapter, tangent_adapter)
from _torch_helpers import torch_run  # noqa: F401  (one torch thread)
from hgref.testing import (TorchAdapter, Unsupported, check_torch_optimizer, exact_hypergradients,
                           get_cases, hgref_adapter)
from hgref.testing.objectives import resolve_objective
from hgref.testing.own import own_reference
from hgref.testing.reference import case_reference
from hgref.testing.session import Session

FIRST = get_cases("first_steps")


def _short(name, steps):
    case = get_cases(name)[0]
    return case._replace(name=f"{name}[:{steps}]", schedule=case.schedule[:steps])


@pytest.mark.parametrize("case", [get_cases("sgd_validation")[0], get_cases("adamw_first_steps")[0],
                                  _short("sgd_groups", 8)], ids=lambda c: c.name)
def test_own_reference_is_good_to_1e7_against_the_exact_oracle(case):
    """hgref.torch RTHO run through own mode: the finite-difference J and its discounted sums
    (μ = 0: HD, 1: RTHO, 0.9) against the oracle's exact J on the same (tanh) problem."""
    session = Session(torch, hgref_adapter("rtho"), case, activation="tanh")
    objective = resolve_objective(None, case.problem(activation="tanh"), case.make_dynamics())
    run = own_reference(session, case, objective)
    assert run.failure is None
    np.testing.assert_array_equal(run.applied, case.schedules)
    exact = case_reference(case, run.applied, activation="tanh")
    T = case.steps
    for k in range(case.n_groups):
        for mu in (0.0, 1.0, 0.9):
            fd = exact_hypergradients(None, None, run.applied[k], mu=mu, prefix=run.J[k])[1:]
            ex = exact_hypergradients(None, None, run.applied[k], mu=mu, prefix=exact[k])[1:]
            assert np.max(np.abs(fd - ex) / np.abs(ex)) <= 1e-7, (k, mu)
    rows, cols = np.tril_indices(T, -1)
    assert np.median(np.abs(run.J[:, rows, cols] / exact[:, rows, cols] - 1)) <= 1e-9


CORRECT = {   # adapter, cases: each is exact for its own update
    "SGDHD (train objective, lr moved inside step by beta h)": (sgdhd_adapter(), "first_steps,sgd_weight_decay"),
    "AdamHD, lr updated once per step (torch < 2.0 Adam)": (adamhd_adapter(lr_in_loop=False), "adam_first_steps"),
    "Adam/AdamW, eps outside (torch)": (convention_adapter("torch"), "adam_first_steps,adamw_first_steps"),
    "Adam/AdamW, eps inside the sqrt": (convention_adapter("inside"), "adam_first_steps,adamw_first_steps"),
    "Adam/AdamW, torch < 2.0 eps": (convention_adapter("pre2"), "adam_first_steps,adamw_first_steps"),
    "Adam/AdamW, v started at eps": (convention_adapter("v0_eps"), "adam_first_steps,adamw_first_steps"),
    "stacked hyperoptimizer SGD (loss objective)": (stacked_adapter(), "sgd_first_steps"),
    "tangent RTHO with float32 momentum": (tangent_adapter("float32_momentum"), "heavy_ball_first_steps"),
    "hgref.torch MARTHE on AdamW": (hgref_adapter("marthe", mu=0.9), "adamw_first_steps"),
}


@pytest.mark.parametrize("name", CORRECT)
def test_correct_variants_pass_on_their_own_update(name):
    adapter, cases = CORRECT[name]
    report = check_torch_optimizer(adapter, cases=get_cases(cases), mode="own")
    ran = [r for r in report.results if r.status != "unsupported"]
    assert ran and all(r.status == "pass" for r in ran), report.details()
    assert report.mode == "own" and "tanh" in report.reference and report.rtol == 1e-6
    assert max(r.max_rel_error for r in ran) <= 1e-7
    for r in ran:        # the update differs from torch's convention: said, not failed
        declared = any(k in name for k in ("torch)", "SGDHD", "stacked", "MARTHE"))
        assert ("note: your update differs" in r.message) != declared, r.message
    if "eps inside" in name:
        assert "your update matches: eps inside the square root" in ran[0].message


def test_own_mode_catches_a_tangent_bug_and_an_eta_not_applied():
    r = check_torch_optimizer(tangent_adapter("eps_inside"), cases=get_cases("adam_first_steps"), mode="own").results[0]
    assert (r.status, r.diagnosis, r.first_bad_step) == ("fail", "wrong_hypergradient", 2)

    def frozen(params, case):
        if case.dynamics != "sgd":
            raise Unsupported("sgd only")
        return TangentRTHO(params, case.config["lr"], bug="lr_frozen_update")
    r = check_torch_optimizer(TorchAdapter(frozen, mu=1.0), cases=get_cases("sgd_first_steps"), mode="own").results[0]
    assert (r.status, r.diagnosis, r.first_bad_step) == ("fail", "eta_not_applied", 0)
    assert "relative residual" in r.message


class _GraphInState(SGDHD):
    def step(self, closure=None):
        loss = closure()
        self.kept = loss          # a graph-connected tensor: cannot be deep-copied
        return super().step(None) or loss


def test_own_mode_explains_an_optimizer_it_cannot_copy():
    adapter = sgdhd_adapter()._replace(make_optimizer=lambda params, case: _GraphInState(params, 0.3))
    r = check_torch_optimizer(adapter, cases=get_cases("sgd_first_steps"), mode="own").results[0]
    assert r.status == "error" and "keep the tensors of its state detached" in r.message
