"""LRS-OPT (MARTHE §5): minimise f_T(η) = E(w_T(η)) over schedules η ≥ 0.

Two protocols, both driven by the exact hypergradient of :mod:`hgref.oracle`:

* :func:`lrs_opt` — a fixed minibatch sequence (deterministic problems such as Beale and
  Bukin): ``scipy.optimize.minimize(method="L-BFGS-B", bounds η ≥ 0)``. A diverging inner
  run is reported to L-BFGS-B as f = +∞, which its line search backtracks from.
* :func:`lrs_opt_pgd` — the §5 protocol: projected gradient descent
  η ← max(η − lr ∇f_T(η), 0) from η = 0.01·1_T, a fresh minibatch sequence at every outer
  iteration (footnote 7) while the network initialisation w_0 stays fixed by the problem.
  Progress bar, atomic state file and exact resume for long runs.

Both return a :class:`scipy.optimize.OptimizeResult` with ``x`` (the schedule), ``fun``,
``nit``, ``status``, ``success``, ``message`` and ``history`` (objective per iteration,
``history[0]`` at the initial schedule).
"""
from __future__ import annotations

import os

import numpy as np
from scipy.optimize import OptimizeResult, minimize

from ._checks import DivergenceError, check_choice, check_int, check_scalar, check_schedule
from ._threads import library_call
from .io import atomic_write_json, read_json
from .oracle import METHODS, hypergradient
from .oracle.unroll import final_objective, sweep

__all__ = ["lrs_opt", "lrs_opt_pgd", "outer_seed"]


@library_call
def lrs_opt(problem, dynamics, schedule0, *, seed=0, maxiter=100, method="reverse", callback=None,
            options=None):
    """Minimise f_T over η ≥ 0 with L-BFGS-B and the exact hypergradient (MARTHE Eq. 1, §5).

    Args:
      schedule0: the starting schedule (T = len(schedule0)), entries ≥ 0.
      seed: the fixed minibatch sequence ``problem.batch(t, seed)``.
      maxiter: maximum number of L-BFGS-B iterations.
      method: hypergradient method (``"reverse"``, ``"forward"`` or ``"fd"``).
      callback: ``callback(iteration, schedule, value)`` after each iteration; return
        True to stop (status 99, scipy's convention).
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
      OptimizeResult: x, fun, nit, nfev, status, success, message, jac, history.

    >>> from hgref import problems, dynamics
    >>> res = lrs_opt(problems.beale(), dynamics.sgd(), [0.01] * 10, maxiter=3)
    >>> bool(res.fun < res.history[0]), res.x.shape
    (True, (10,))
    """
    schedule0 = check_schedule(schedule0, name="schedule0")
    check_int("seed", seed, low=0)
    maxiter = check_int("maxiter", maxiter, low=1)
    check_choice("method", method, METHODS)
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
                    cache[key] = (hg.value, hg.grad * scale) if np.all(np.isfinite(hg.grad * scale)) else (
                        np.inf, np.zeros_like(u))
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
    return res


def outer_seed(seed, iteration):
    """Minibatch seed of outer iteration k of :func:`lrs_opt_pgd` (fresh batches):
    ``SeedSequence((seed, k))``'s first 31-bit word, a deterministic function of (seed, k)."""
    return int(np.random.SeedSequence((seed, iteration)).generate_state(1)[0] >> 1)


_CONFIG_KEYS = ("problem", "dynamics", "hyperparams", "steps", "lr", "seed", "fresh_batches", "method",
                "max_change")


def _load_state(path, config):
    state = read_json(path)
    mismatch = [k for k in _CONFIG_KEYS if state.get("config", {}).get(k) != config[k]]
    if mismatch:
        raise ValueError(f"state_path {str(path)!r} belongs to a different run: {', '.join(mismatch)} "
                         f"differ ({ {k: state['config'].get(k) for k in mismatch} } stored, "
                         f"{ {k: config[k] for k in mismatch} } requested); use another state_path")
    return state["iteration"], np.array(state["schedule"], dtype=float), list(state["history"])


@library_call
def lrs_opt_pgd(problem, dynamics, schedule0=None, *, steps=None, lr, iterations, seed=0,
                fresh_batches=True, method="reverse", max_change=None, state_path=None,
                progress=False, callback=None):
    """LRS-OPT by projected gradient descent, the MARTHE §5 protocol.

    Outer iteration k: f_T and ∇f_T at η_k on the minibatch sequence of seed
    :func:`outer_seed` (seed, k) (``fresh_batches=False``: always ``seed``), then
    η_{k+1} = max(η_k − Δ_k, 0), Δ_k = lr ∇f_T(η_k), each entry clipped to
    [−max_change, max_change] if ``max_change`` is set (a guard against a single huge
    hypergradient entry throwing η into divergence; off by default).

    Args:
      schedule0: initial schedule; default 0.01·1_T (§5) with T = ``steps``.
      steps: T, needed when ``schedule0`` is None (must match its length otherwise).
      lr: step size of the outer gradient descent (> 0).
      iterations: number of outer iterations K (total, including resumed ones).
      seed: base seed of the minibatch sequences (the network init is ``problem.w0``).
      state_path: JSON file with (iteration, schedule, history, config), written
        atomically after every iteration; an existing file resumes the run exactly.
      progress: show a tqdm progress bar.
      callback: ``callback(iteration, schedule, value)`` after each iteration (value =
        f_T(η_k), schedule = η_{k+1}); return True to stop (status 1).

    Returns:
      OptimizeResult: x = η_K, fun = f_T(η_K) on the minibatch sequence of ``seed`` (a
      sequence no outer iteration used when ``fresh_batches``), nit, status (0 done,
      1 stopped by callback, 2 inner run diverged: x is then the last schedule with a
      finite f_T), success, message, history (f_T(η_k) for k < K, each on its own batches),
      jac (last hypergradient).
    """
    if schedule0 is None:
        if steps is None:
            raise ValueError("give schedule0 or steps (schedule0 defaults to 0.01 * ones(steps))")
        schedule0 = np.full(check_int("steps", steps, low=1), 0.01)
    schedule = check_schedule(schedule0, name="schedule0").copy()
    if steps is not None and check_int("steps", steps, low=1) != schedule.size:
        raise ValueError(f"steps must equal len(schedule0) = {schedule.size}, got {steps}")
    lr = check_scalar("lr", lr, strict=True)
    iterations = check_int("iterations", iterations, low=0)
    check_int("seed", seed, low=0)
    check_choice("method", method, METHODS)
    if max_change is not None:
        max_change = check_scalar("max_change", max_change, strict=True)
    config = {"problem": problem.name, "dynamics": dynamics.name, "hyperparams": dynamics.hyperparams,
              "steps": int(schedule.size), "lr": lr, "seed": seed, "fresh_batches": bool(fresh_batches),
              "method": method, "max_change": max_change}
    k, history = 0, []
    if state_path is not None and os.path.exists(state_path):
        k, schedule, history = _load_state(state_path, config)

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=iterations, initial=min(k, iterations), desc=f"LRS-OPT {problem.name}", leave=False)
    status, message, grad, last_good = 0, f"completed {iterations} outer iterations", None, schedule
    while k < iterations:
        batch_seed = outer_seed(seed, k) if fresh_batches else seed
        try:
            hg = hypergradient(problem, dynamics, schedule, batch_seed, method)
        except DivergenceError as exc:
            status = 2
            message = (f"inner run diverged at outer iteration {k}, step {exc.step} "
                       f"(non-finite {exc.what}); returning the schedule of iteration {max(k - 1, 0)}")
            break
        last_good, grad = schedule, hg.grad
        with np.errstate(over="ignore", invalid="ignore"):
            delta = lr * hg.grad
            if max_change is not None:
                delta = np.clip(delta, -max_change, max_change)
            schedule = np.maximum(schedule - delta, 0.0)
        if not np.all(np.isfinite(schedule)):
            status, schedule = 2, last_good
            history.append(hg.value)
            message = f"outer iteration {k}: lr * hypergradient is not finite; returning the schedule of iteration {k}"
            break
        history.append(hg.value)
        k += 1
        if state_path is not None:
            atomic_write_json(state_path, {"iteration": k, "schedule": schedule, "history": history,
                                           "config": config,
                                           "batch_seeds": "outer_seed(seed, k) = SeedSequence((seed, k))"})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(f=f"{hg.value:.4g}")
        if callback is not None and callback(k - 1, schedule.copy(), hg.value):
            status, message = 1, f"stopped by callback after outer iteration {k - 1}"
            break
    if bar is not None:
        bar.close()
    if status == 2:
        schedule = last_good
        fun = history[-1] if history else np.inf
    else:
        try:
            x0 = dynamics.init(problem.w0)
            fun = final_objective(problem, sweep(problem, dynamics, schedule, seed, x0)[0], schedule.size)
        except DivergenceError as exc:
            status, schedule, fun = 2, last_good, history[-1]
            message = (f"the final schedule diverged at step {exc.step} on the evaluation sequence "
                       f"(seed {seed}); returning the schedule of iteration {k - 1}")
    return OptimizeResult(x=schedule, fun=float(fun), nit=k, status=status, success=status == 0,
                          message=message, history=np.array(history), jac=grad)
