"""The NumPy rule checker: an :class:`hgref.rules.Rule` on the battery (:mod:`hgref.testing.cases`).

The rule runs through :func:`hgref.train.run` on the case's hgref dynamics under
:func:`follow_schedule` (the schedule is written into its η before each step, as a torch
scheduler writes ``group["lr"]``); its per-step estimate ``info[key]`` is compared with the exact
reference on the schedule it actually used (:func:`hgref.testing.reference.case_reference`) for
the declared objective. Cases with several param groups are reported unsupported: a Rule has
one learning rate.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._checks import check_int
from .._threads import single_threaded
from ..data import MissingDataError
from .cases import BATTERY, MATRIX, Unsupported, get_cases  # noqa: F401  (re-exported)
from .diagnose import judge
from .objectives import objective_name
from .reference import case_reference
from .report import Report, failed_result

DECLARED_REFERENCE = "exact oracle (forward mode over the whole optimizer state, hgref.oracle)"

__all__ = ["BATTERY", "MATRIX", "Unsupported", "get_cases", "follow_schedule", "check_rule",
           "assert_rule", "case_prefix", "compare_case"]


def case_prefix(case, schedule, data_dir=None, objective=None) -> np.ndarray:
    """The oracle's J[t, i] = ∂Obj_t(w_t)/∂η_i of a one-group ``case`` under ``schedule``."""
    return case_reference(case, np.asarray(schedule, dtype=float)[None], objective, data_dir)[0]


def compare_case(case, estimates, schedules, mu, *, rtol, atol, data_dir=None, objective=None,
                 activation="relu", extra=""):
    """Judge per-group estimates (K, T) of ``case`` run under ``schedules`` (K, T) against
    the exact reference (declared mode)."""
    schedules = np.atleast_2d(np.asarray(schedules, dtype=float))
    J = case_reference(case, schedules, objective, data_dir, activation)
    return judge(case, estimates, J, schedules, mu, rtol=rtol, atol=atol, extra=extra)


class _Following(NamedTuple):
    t: int          # next step
    inner: Any      # the wrapped rule's state


def follow_schedule(rule, schedule):
    """The rule with η_{t−1} in its state overwritten by ``schedule[t]`` before each step.

    The NumPy counterpart of a torch scheduler writing ``group["lr"]``: a rule whose state
    is a NamedTuple with an ``eta`` field (all hgref rules) then computes
    η_t = η_sched − β·Δη_t, i.e. exactly the schedule when β = 0, and its tangent uses the
    η_t it returns.
    """
    from ..rules import Rule

    schedule = np.asarray(schedule, dtype=float)

    def init(eta0, state):
        inner = rule.init(float(schedule[0]), state)
        if "eta" not in getattr(inner, "_fields", ()):
            raise TypeError(f"rule {rule.name!r}: follow_schedule needs a rule state NamedTuple with "
                            f"an 'eta' field (eta_(t-1)), got {type(inner).__name__}")
        return _Following(0, inner)

    def update(ws, obs):
        inner = ws.inner._replace(eta=float(schedule[ws.t]))
        eta, inner, info = rule.update(inner, obs)
        return eta, _Following(ws.t + 1, inner), info

    return Rule(rule.name, init, update, dict(rule.hyperparams))


def check_rule(make_rule, *, cases=BATTERY, mu=0.0, key="hypergradient", rtol=1e-10, atol=0.0,
               data_dir=None, name=None, objective=None) -> Report:
    """Run a NumPy rule (:class:`hgref.rules.Rule`) on each case and compare its estimates.

    Args:
      make_rule: ``make_rule(case) -> Rule``; raise :class:`Unsupported` to skip a case. The
        rule reports its Δη_t as ``info[key]``.
      mu: the rule's discount (0: HD, 1: RTHO), or the name of the info entry holding the
        per-step μ_t (e.g. ``"mu"`` for adaptive MARTHE).
      rtol, atol: per-step tolerance (:func:`hgref.testing.compare`).
      objective: what Δη_t differentiates: ``"validation"`` (E, default), ``"loss"`` (L_t),
        ``"train"`` (L_t + λ/2‖w‖², coupled λ: ``rules.hd``'s default) or a callable
        ``f(w, batch)`` (:mod:`hgref.testing.objectives`).

    Returns:
      A :class:`Report` (verdict PASSED / FAILED / INCOMPLETE); ``report.raise_if_failed()``
      or :func:`assert_rule` to assert.

    >>> from hgref import rules
    >>> report = check_rule(lambda case: rules.hd(1e-3), mu=0.0, objective="train")   # doctest: +SKIP
    """
    with single_threaded():       # the cases are tiny: extra threads only add overhead
        results = [_check_rule_case(make_rule, case, mu, key, rtol, atol, data_dir, objective)
                   for case in cases]
    return Report(name or getattr(make_rule, "__name__", "rule"), tuple(results), mu, rtol, atol,
                  "declared", objective_name(objective), DECLARED_REFERENCE)


def _check_rule_case(make_rule, case, mu, key, rtol, atol, data_dir, objective):
    from ..train import run

    if case.n_groups > 1:
        return failed_result(case, "unsupported", "unsupported", "an hgref Rule has one learning "
                             "rate; per-group cases need a torch optimizer")
    try:
        rule = make_rule(case)
        tr = run(case.problem(data_dir), case.make_dynamics(), follow_schedule(rule, case.schedule),
                 case.schedule[0], check_int("steps", case.steps, low=1), seed=case.seed,
                 metrics=False)
        if key not in tr.diagnostics:
            raise KeyError(f"rule {rule.name!r} reports no info[{key!r}]; it reports "
                           f"{sorted(tr.diagnostics)}")
        mu_case = tr.diagnostics[mu] if isinstance(mu, str) else mu
        return compare_case(case, tr.diagnostics[key][None], tr.etas[None], mu_case, rtol=rtol,
                            atol=atol, data_dir=data_dir, objective=objective)
    except Unsupported as exc:
        return failed_result(case, "unsupported", "unsupported", str(exc))
    except MissingDataError:  # the battery's MNIST files are absent: no fault of the rule
        raise
    except Exception as exc:  # noqa: BLE001 - the report names what the rule raised
        return failed_result(case, "error", "raised", f"{type(exc).__name__}: {exc}")


def assert_rule(make_rule, *, complete=True, **kwargs) -> Report:
    """:func:`check_rule`, raising an ``AssertionError`` naming every broken case (and, with
    ``complete``, when the verdict is INCOMPLETE)."""
    return check_rule(make_rule, **kwargs).raise_if_failed(complete=complete)
