"""LRS-OPT on a fixed minibatch sequence (deterministic problems such as Beale and Bukin):
L-BFGS-B with bounds η ≥ 0 on the exact hypergradient (MARTHE Eq. 1, 4).

A diverging inner run is reported to L-BFGS-B as f = +∞, which its line search backtracks
from. The result reports ‖P∇f_T‖∞ (:mod:`hgref.lrsopt.stationarity`) and is a success only
when L-BFGS-B converged *and* the point is stationary.

**Ill-conditioned starts.** From η = 0.01·1_T on Beale (SGD, T = 100) f_T has curvature
~1e18 along η_0: L-BFGS-B stops after 200 iterations at f = 1.225 on "REL_REDUCTION_OF_F"
with ‖P∇f_T‖∞ = 3.8e6 — not an optimum, and reported as such. The way out is a
better-conditioned start: ``schedule0="best-constant"`` evaluates f_T(c·1_T) on a short grid
of constants c (:func:`best_constant`, forward sweeps only) and starts from the best one
(c = 0.0316, f = 8.1e-3); from there the same call reaches f = 1.1e-3. tests/test_lrsopt.py
checks both. Where f_T is chaotic (smoothed Bukin at ε = 1e-4: ‖P∇f_T‖∞ = 3.1e128 at the
best constant) no line search helps; normalised steps on the fixed sequence do
(:func:`hgref.lrsopt.lrs_opt_stochastic` with ``outer=adam(1e-4), fresh_batches=False``
reaches the global minimum 0.1005 from 0.003·1, below the best constant's 0.1042).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from .._checks import DivergenceError, check_choice, check_int, check_scalar, check_schedule
from .._threads import library_call
from ..oracle import METHODS, hypergradient
from ..oracle.unroll import final_objective, sweep
from .stationarity import stationarity

__all__ = ["lrs_opt", "best_constant", "GRID"]

#: Constants tried by ``schedule0="best-constant"``: 17 points, 1e-4 … 1.
GRID = tuple(float(c) for c in np.logspace(-4, 0, 17))


@library_call
def best_constant(problem, dynamics, steps, *, seed=0, grid=GRID):
    """(c, f_T(c·1_T)) of the best non-diverging constant schedule of ``grid``.

    >>> from hgref import problems, dynamics
    >>> c, f = best_constant(problems.beale(), dynamics.sgd(), 100)
    >>> c in GRID and f < 14.2
    True
    """
    steps = check_int("steps", steps, low=1)
    check_int("seed", seed, low=0)
    grid = [check_scalar("grid", c, strict=True) for c in grid]
    if not grid:
        raise ValueError("grid must hold at least one constant > 0")
    best = (np.inf, None)
    for c in grid:
        schedule = np.full(steps, c)
        try:
            x = sweep(problem, dynamics, schedule, seed, dynamics.init(problem.w0))[0]
            best = min(best, (final_objective(problem, x, steps), c))
        except DivergenceError:
            continue
    if best[1] is None:
        raise ValueError(f"every constant of grid {grid} diverges on {problem.name}; give a smaller grid")
    return best[1], best[0]


@library_call
def lrs_opt(problem, dynamics, schedule0, *, steps=None, grid=GRID, seed=0, maxiter=100, method="reverse",
            gtol=1e-3, callback=None, options=None):
    """Minimise f_T over η ≥ 0 with L-BFGS-B and the exact hypergradient (MARTHE Eq. 1, §5).

    Args:
      schedule0: the starting schedule (T = len(schedule0)), entries ≥ 0, or
        ``"best-constant"``: c·1_T for the best c of ``grid`` (:func:`best_constant`; needs ``steps``).
      steps: T, with ``schedule0="best-constant"``.
      grid: constants tried by ``"best-constant"``.
      seed: the fixed minibatch sequence ``problem.batch(t, seed)``.
      maxiter: maximum number of L-BFGS-B iterations.
      method: hypergradient method (``"reverse"``, ``"forward"`` or ``"fd"``).
      callback: ``callback(iteration, schedule, value)`` after each iteration; return
        True to stop (status 99, scipy's convention).
      gtol: stationarity tolerance: success needs ‖P∇f_T(x)‖∞ ≤ gtol·‖P∇f_T(η⁰)‖∞.
      options: extra L-BFGS-B options, overriding the defaults
        ``{"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-12}``.

    Decisions (evidence: Beale, T = 500, SGD; see the oracle note):

    * L-BFGS-B runs on u = η / s, s = max(η⁰) (1 if η⁰ = 0), bounds u ≥ 0. Its first
      trial step has unit length in u; in η units (s = 1) that is ‖Δη‖ = 1, which on
      Beale from η = 0.01·1 diverges, and the line search then returned to the start and
      stopped with f unchanged. Scaled, the first step is ‖Δη‖ = s and f decreases.
    * scipy's default ``ftol`` (relative reduction 2.2e-9 of max(|f|, 1)) stopped after
      one iteration once f_T ≈ 1e-6 (Beale near its minimum); hence ``ftol=1e-15``.
    * A diverging inner run returns f = +∞ (zero gradient): the line search backtracks
      to a finite point (from the best constant on Beale: 1.7e-6 → 5.0e-8 in 8
      iterations, some trial points diverging).

    Returns:
      OptimizeResult: x, fun, nit, nfev, status, success (L-BFGS-B converged and x is
      stationary), message, jac, history, grad_norm, grad_norm0 (‖P∇f_T‖∞ at x and at the
      start), stationary, start (the constant c for ``"best-constant"``, else None).

    >>> from hgref import problems, dynamics
    >>> res = lrs_opt(problems.beale(), dynamics.sgd(), [0.01] * 10, maxiter=3)
    >>> bool(res.fun < res.history[0]), res.x.shape
    (True, (10,))
    """
    check_int("seed", seed, low=0)
    maxiter = check_int("maxiter", maxiter, low=1)
    check_choice("method", method, METHODS)
    gtol = check_scalar("gtol", gtol, strict=True)
    start = None
    if isinstance(schedule0, str):
        check_choice("schedule0", schedule0, ("best-constant",))
        if steps is None:
            raise ValueError('schedule0="best-constant" needs steps (T)')
        start = best_constant(problem, dynamics, steps, seed=seed, grid=grid)[0]
        schedule0 = np.full(check_int("steps", steps, low=1), start)
    schedule0 = check_schedule(schedule0, name="schedule0")
    if steps is not None and check_int("steps", steps, low=1) != schedule0.size:
        raise ValueError(f"steps must equal len(schedule0) = {schedule0.size}, got {steps}")
    scale = float(schedule0.max()) or 1.0
    cache = {}
    best = {"value": np.inf, "u": None}

    def fun(u):
        if not np.all(np.isfinite(u)):       # a line-search trial far outside: reject it
            return np.inf, np.zeros_like(u)
        key = u.tobytes()
        if key not in cache:
            cache.clear()
            try:
                hg = hypergradient(problem, dynamics, np.maximum(u * scale, 0.0), seed, method)
                with np.errstate(over="ignore", invalid="ignore"):   # too large: a diverged point
                    scaled = hg.grad * scale
                cache[key] = (hg.value, scaled) if np.all(np.isfinite(scaled)) else (np.inf, np.zeros_like(u))
            except DivergenceError:
                cache[key] = (np.inf, np.zeros_like(u))
            if cache[key][0] < best["value"]:
                best.update(value=cache[key][0], u=u.copy(), grad=cache[key][1])
        value, grad = cache[key]
        return value, grad.copy()

    u0 = schedule0 / scale
    value0 = fun(u0)[0]                     # cached: L-BFGS-B's first call reuses it
    if not np.isfinite(value0):
        hypergradient(problem, dynamics, schedule0, seed, method)  # raise, naming the step
    history = [value0]
    grad_norm0 = stationarity(schedule0, cache[u0.tobytes()][1] / scale)

    def on_iteration(intermediate_result):
        history.append(float(intermediate_result.fun))
        if callback is not None and callback(len(history) - 1, intermediate_result.x * scale,
                                             float(intermediate_result.fun)):
            raise StopIteration

    opts = {"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-12, **(options or {})}
    res = minimize(fun, u0, jac=True, method="L-BFGS-B",
                   bounds=[(0.0, None)] * schedule0.size, callback=on_iteration, options=opts)
    if best["value"] < res.fun:
        # a failed line search (e.g. "ABNORMAL" on a chaotic f_T) can end above the best
        # point evaluated: return the best one, so LRS-OPT never worsens its start.
        res.x, res.fun, res.jac = best["u"], best["value"], best["grad"]
        res.message = f"{res.message} (returned the best point evaluated)"
    res.x = np.maximum(res.x * scale, 0.0)
    if res.get("jac") is not None:
        res.jac = res.jac / scale
    res.pop("hess_inv", None)   # an operator in the scaled variable u: not meaningful for η
    res.history = np.array(history)
    res.start = start
    res.grad_norm0 = grad_norm0
    res.grad_norm = stationarity(res.x, res.jac) if res.get("jac") is not None else None
    res.stationary = bool(res.grad_norm is not None and res.grad_norm <= gtol * grad_norm0)
    if not res.stationary:
        res.message = (f"{res.message}; not stationary: ‖P∇f_T‖∞ = {res.grad_norm:.3g}, "
                       f"{res.grad_norm / grad_norm0 if grad_norm0 else np.inf:.3g} × the start's "
                       f"(needs ≤ gtol = {gtol:g}); try schedule0=\"best-constant\" or more iterations")
    res.success = bool(res.success and res.stationary)
    return res
