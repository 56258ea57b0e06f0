"""Exact discounted hypergradients and the NumPy assertion helper.

An online rule estimates at step t (before choosing η_t) the discounted hypergradient
(MARTHE Eq. 9 and 11)::

    Δη_t = Σ_{i<t} (Π_{j=i+1}^{t−1} μ_j) ∂E(w_t)/∂η_i,        Δη_0 = 0,

or the same with E replaced by the objective the estimator declares (``objective=``, e.g. the
minibatch training loss L_t of HD's "train"; :mod:`hgref.testing.objectives`),

which is HD's one-step h_t = ∂E(w_t)/∂η_{t−1} for μ ≡ 0, RTHO's Σ_{i<t} ∂E(w_t)/∂η_i for
μ ≡ 1 and MARTHE's μ^{t−1−i}-weighted sum for a fixed μ. :func:`exact_hypergradients`
computes it from the oracle's prefix hypergradients J[t, i] = ∂E(w_t)/∂η_i
(:func:`hgref.oracle.prefix_hypergradients`, one tangent per η_i: an independent
computation, not the rules' single discounted tangent).

Agreement is judged as ``numpy.testing.assert_allclose`` does, per step:
``|estimate − exact| ≤ atol + rtol·|exact|``; the relative error reported is
``|estimate − exact| / |exact|`` (0 when both are 0, inf when only the exact value is 0).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .._checks import check_int, check_scalar, check_schedule, check_unit_interval

__all__ = ["exact_hypergradients", "discount_matrix", "Comparison", "compare",
           "format_steps", "failure_message", "assert_hypergradient_close"]


def discount_matrix(mu, T) -> np.ndarray:
    """W[t, i] = Π_{j=i+1}^{t−1} μ_j for i < t, else 0; shape (T, T).

    ``mu`` is a fixed discount in [0, 1] (then W[t, i] = μ^{t−1−i}) or a sequence of the
    T discounts μ_t that formed Z_{t+1} = μ_t A_t Z_t + B_t (adaptive MARTHE).

    >>> discount_matrix(0.5, 3)
    array([[0. , 0. , 0. ],
           [1. , 0. , 0. ],
           [0.5, 1. , 0. ]])
    """
    T = check_int("T", T, low=1)
    if np.ndim(mu) == 0:
        mus = np.full(T, check_unit_interval("mu", mu))
    else:
        mus = np.asarray(mu, dtype=float)
        if mus.shape != (T,):
            raise ValueError(f"mu must be a number in [0, 1] or a sequence of length {T} (one "
                             f"discount per step), got shape {mus.shape}")
        if not np.all(np.isfinite(mus)):
            raise ValueError("mu must contain only finite numbers")
    W = np.zeros((T, T))
    for t in range(1, T):
        W[t, t - 1] = 1.0
        for i in range(t - 2, -1, -1):
            W[t, i] = W[t, i + 1] * mus[i + 1]
    return W


def exact_hypergradients(problem, dynamics, schedule, *, mu=0.0, seed=0, prefix=None,
                         objective=None) -> np.ndarray:
    """The exact Δη_t = Σ_{i<t} μ^{t−1−i} ∂Obj_t(w_t)/∂η_i for t = 0 … T−1 (module docstring).

    Args:
      problem, dynamics, schedule, seed: as :func:`hgref.oracle.hypergradient`; the
        schedule is the one the estimator actually used (η_t at step t).
      mu: fixed discount (0: HD's h_t = ∂E(w_t)/∂η_{t−1}; 1: RTHO) or the T per-step
        discounts μ_t of an adaptive rule.
      prefix: precomputed ``prefix_hypergradients(problem, dynamics, schedule, seed)``.
      objective: ``"validation"`` (E, default), ``"loss"`` (L_t), ``"train"`` (L_t + λ/2‖w‖²,
        coupled λ) or a callable ``f(w, batch)`` (:mod:`hgref.testing.objectives`).

    Returns:
      shape (T,) float64; entry 0 is 0.

    >>> from hgref import problems, dynamics
    >>> exact_hypergradients(problems.beale(), dynamics.sgd(), [0.01] * 3, mu=1.0).shape
    (3,)
    """
    schedule = check_schedule(schedule)
    T = schedule.shape[0]
    W = discount_matrix(mu, T)
    if prefix is None:
        from ..oracle import prefix_hypergradients
        from .objectives import resolve_objective
        obj = resolve_objective(objective, problem, dynamics, check_int("seed", seed))
        prefix = prefix_hypergradients(problem, dynamics, schedule, seed=seed,
                                       objective_grad=None if obj.is_default else obj.grad)
    prefix = np.asarray(prefix, dtype=float)
    if prefix.shape != (T + 1, T):
        raise ValueError(f"prefix must have shape {(T + 1, T)}, got {prefix.shape}")
    return (W * prefix[:T]).sum(axis=1)


class Comparison(NamedTuple):
    """Step-by-step agreement of estimates with the exact values."""

    estimates: np.ndarray     # shape=(T,) the estimator's Δη_t
    exact: np.ndarray         # shape=(T,) exact Δη_t
    schedule: np.ndarray      # shape=(T,) η_t used at step t
    rel_error: np.ndarray     # shape=(T,) |est − exact| / |exact|
    ok: np.ndarray            # shape=(T,) bool, |est − exact| ≤ atol + rtol |exact|
    rtol: float
    atol: float

    @property
    def passed(self) -> bool:
        return bool(self.ok.all())

    @property
    def first_bad_step(self) -> Optional[int]:
        """The first step t that fails the tolerance, None if none does."""
        bad = np.flatnonzero(~self.ok)
        return int(bad[0]) if bad.size else None

    @property
    def max_rel_error(self) -> float:
        return float(np.max(self.rel_error)) if self.rel_error.size else 0.0


def compare(estimates, exact, schedule, *, rtol=1e-8, atol=0.0) -> Comparison:
    """Compare estimates with exact values step by step (module docstring: criterion)."""
    rtol, atol = check_scalar("rtol", rtol), check_scalar("atol", atol)
    exact = np.asarray(exact, dtype=float)
    try:
        est = np.asarray(estimates, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"estimates must be a 1-d sequence of numbers, got {type(estimates).__name__}") from exc
    if est.shape != exact.shape:
        raise ValueError(f"estimates must have one value per step, length {exact.shape[0]} "
                         f"(the schedule's length), got length {est.shape[0]}")
    diff = np.abs(est - exact)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(exact))
    rel = np.where(np.isfinite(est), rel, np.inf)
    ok = np.isfinite(est) & (diff <= atol + rtol * np.abs(exact))
    return Comparison(est, exact, np.asarray(schedule, dtype=float), rel, ok, rtol, atol)


def _rows(T, first_bad, worst, limit):
    if T <= limit:
        return list(range(T))
    keep = set(range(3)) | {T - 1, worst}
    if first_bad is not None:
        keep |= set(range(max(first_bad - 2, 0), min(first_bad + 3, T)))
    return sorted(keep)


def format_steps(cmp: Comparison, limit=30) -> str:
    """A compact per-step table: t, η_t, estimate, exact, rel. error, ``*`` on failing steps
    (all steps up to ``limit``, else the first ones, those around the first failure, the
    worst and the last)."""
    worst = int(np.argmax(cmp.rel_error)) if cmp.rel_error.size else 0
    lines = [f"{'t':>4} {'eta_t':>11} {'estimate':>17} {'exact':>17} {'rel.err':>9}"]
    prev = -1
    for t in _rows(len(cmp.exact), cmp.first_bad_step, worst, limit):
        if t > prev + 1:
            lines.append(f"{'...':>4}")
        rel = cmp.rel_error[t]
        rel_s = "-" if rel == 0 and cmp.exact[t] == 0 else f"{rel:.1e}"
        lines.append(f"{t:>4} {cmp.schedule[t]:>11.5g} {cmp.estimates[t]:>17.10g} "
                     f"{cmp.exact[t]:>17.10g} {rel_s:>9}{'' if cmp.ok[t] else '  *'}")
        prev = t
    return "\n".join(lines)


def failure_message(cmp: Comparison, case=None, mu=None, hint=None) -> str:
    """The readable report of a failed comparison (used by every assertion helper)."""
    t = cmp.first_bad_step
    bad = int((~cmp.ok).sum())
    worst = int(np.argmax(cmp.rel_error))
    head = f"hypergradient estimates differ from the exact values (rtol={cmp.rtol:g}, atol={cmp.atol:g}"
    head += f", mu={mu})" if mu is not None and np.ndim(mu) == 0 else ")"
    lines = [head]
    if case is not None:
        lines.append(f"case: {case}" + (f" -- {hint}" if hint else ""))
    if t is not None:
        lines.append(f"first diverging step: t={t}: estimate {cmp.estimates[t]:.10g}, exact "
                     f"{cmp.exact[t]:.10g}, rel. error {cmp.rel_error[t]:.2e}")
    lines.append(f"failing steps: {bad}/{len(cmp.ok)}; max rel. error {cmp.rel_error[worst]:.2e} "
                 f"at t={worst}")
    lines.append(format_steps(cmp))
    return "\n".join(lines)


def assert_hypergradient_close(estimates, problem, dynamics, schedule, *, mu=0.0, seed=0,
                               rtol=1e-8, atol=0.0, case=None, objective=None):
    """Assert that per-step estimates Δη_t equal the exact discounted hypergradients.

    Args:
      estimates: shape (T,), the estimator's Δη_t for t = 0 … T−1 (Δη_0 is 0).
      problem, dynamics, schedule, seed: the run that produced them (η_t used at step t,
        minibatches ``problem.batch(t, seed)``).
      mu: the estimator's discount (0: HD, 1: RTHO, fixed-μ MARTHE) or per-step μ_t.
      rtol, atol: per-step tolerance ``|est − exact| ≤ atol + rtol·|exact|``.
      case: a name printed in the report (e.g. your test's parameter id).
      objective: what the estimates differentiate: ``"validation"`` (E, default), ``"loss"``,
        ``"train"`` or a callable ``f(w, batch)`` (:mod:`hgref.testing.objectives`).

    Raises:
      AssertionError: naming the case, the first diverging step with estimate, exact
        value and relative error, and a per-step table.

    >>> from hgref import problems, dynamics, rules, run
    >>> p, dyn = problems.beale(), dynamics.sgd()
    >>> tr = run(p, dyn, rules.hd(0.0, objective="validation"), 0.01, 5)
    >>> assert_hypergradient_close(tr.diagnostics["hypergradient"], p, dyn, tr.etas)
    """
    schedule = check_schedule(schedule)
    exact = exact_hypergradients(problem, dynamics, schedule, mu=mu, seed=seed, objective=objective)
    cmp = compare(estimates, exact, schedule, rtol=rtol, atol=atol)
    if not cmp.passed:
        raise AssertionError(failure_message(cmp, case, mu))
