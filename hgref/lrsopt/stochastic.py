"""LRS-OPT with fresh minibatches (MARTHE §5, footnote 7): the generic outer loop.

:func:`optimize_schedule` is a function of a ``value_and_grad(schedule, batch_seed) ->
(f_T, ∇f_T)`` callable only, so the NumPy oracle (:func:`lrs_opt_stochastic`, here) and the
torch reverse mode (:func:`hgref.torch.lrs_opt`) run the same loop: outer iteration k
evaluates ∇f_T(η_k) on the minibatch sequence of :func:`outer_seed` (seed, k) and applies
an :class:`~hgref.lrsopt.outer.Outer` step; the network initialisation w_0 stays fixed.
State (iteration, schedule, optimizer state, history, evaluations) is written atomically
after every iteration; an existing state file resumes the run exactly.
"""
from __future__ import annotations

import math
import os

import numpy as np
from scipy.optimize import OptimizeResult

from .._checks import DivergenceError, check_choice, check_int, check_scalar, check_schedule
from .._threads import library_call
from ..io import atomic_write_json, read_json
from ..oracle import METHODS, hypergradient
from .outer import Outer, pgd, state_from_dict
from .stationarity import stationarity

__all__ = ["optimize_schedule", "lrs_opt_stochastic", "lrs_opt_pgd", "outer_seed"]


def outer_seed(seed, iteration):
    """Minibatch seed of outer iteration k (fresh batches): ``SeedSequence((seed, k))``'s
    first 31-bit word, a deterministic function of (seed, k) and never ``seed`` itself in practice."""
    return int(np.random.SeedSequence((seed, iteration)).generate_state(1)[0] >> 1)


def _load_state(path, config, outer, schedule):
    state = read_json(path)
    stored = state.get("config", {})
    mismatch = [k for k in sorted(set(config) | set(stored)) if stored.get(k) != config.get(k)]
    if mismatch:
        raise ValueError(f"state_path {str(path)!r} belongs to a different run: {', '.join(mismatch)} "
                         f"differ ({ {k: stored.get(k) for k in mismatch} } stored, "
                         f"{ {k: config.get(k) for k in mismatch} } requested); use another state_path")
    template = outer.init(schedule)
    return (state["iteration"], np.array(state["schedule"], dtype=float),
            state_from_dict(template, state["outer_state"]), list(state["history"]),
            list(state.get("evals", [])), state.get("grad_norm0"),
            state.get("guard", {"scale": 1.0, "best_value": None, "best_schedule": None,
                                "best_outer_state": None, "restarts": []}))


def optimize_schedule(value_and_grad, schedule0, outer: Outer, iterations, *, seed=0, fresh_batches=True,
                      config=None, state_path=None, evaluate=None, eval_every=None, gtol=1e-3,
                      restart_above=None, progress=False, callback=None, desc="LRS-OPT"):
    """Minimise f_T over η ≥ 0 with ``outer`` steps on stochastic hypergradients.

    Args:
      value_and_grad: ``(schedule (T,), batch_seed) -> (value, grad (T,))``; raises
        :class:`hgref.DivergenceError` when the inner run diverges.
      schedule0: initial schedule η_0 ≥ 0, shape (T,).
      outer: the step rule (:mod:`hgref.lrsopt.outer`).
      iterations: number of outer iterations K (total, including resumed ones).
      seed: base seed; iteration k uses ``outer_seed(seed, k)`` (``fresh_batches=False``:
        always ``seed``). The final schedule is evaluated on the sequence of ``seed``.
      config: JSON-able identity of the problem (stored with the state; a resumed run must match).
      evaluate: ``evaluate(schedule) -> dict`` of numbers, recorded at k = 0, every
        ``eval_every`` iterations and at the end (e.g. validation metrics).
      gtol: stationarity tolerance (:func:`hgref.lrsopt.stationarity.stationarity`).
      restart_above: safeguard (None: off, the paper's plain loop). When f_T(η_k) on its
        batches is non-finite, the inner run diverges, or f_T(η_k) > restart_above × the
        lowest f_T seen so far, the step is undone: η and the optimizer state go back to
        that best iterate and every later step is halved (η ← η + s·(step(η) − η), s ← s/2).
        Evidence (784-32-10, T = 128, benchmarks/bench_lrsopt_outer.py): without it every
        outer optimizer, the paper's PGD included, ends in a runaway of η.
      callback: ``callback(k, schedule, value)`` after iteration k (schedule = η_{k+1},
        value = f_T(η_k)); return True to stop (status 1).

    Returns:
      OptimizeResult: x = η_K; fun, jac = f_T, ∇f_T at x on the sequence of ``seed``;
      grad_norm, grad_norm0 (‖P∇f_T‖∞ at x and at η_0), stationary; nit; status (0 done,
      1 stopped by callback, 2 an inner run diverged: x is then the last schedule with a
      finite f_T); success (status 0 and stationary); message; history (f_T(η_k), k < K,
      each on its own batches; inf for a rejected diverging step); evals (``{"iteration": k,
      **evaluate(η_k)}``); restarts (the safeguard's ``{"iteration", "reason", "scale"}``).
    """
    schedule = check_schedule(schedule0, name="schedule0").copy()
    iterations = check_int("iterations", iterations, low=0)
    check_int("seed", seed, low=0)
    if eval_every is not None:
        eval_every = check_int("eval_every", eval_every, low=1)
    gtol = check_scalar("gtol", gtol, strict=True)
    config = {**(config or {}), "steps": int(schedule.size), "seed": seed, "fresh_batches": bool(fresh_batches),
              "outer": outer.name, **outer.hyperparams}
    k, ostate, history, evals, grad_norm0 = 0, outer.init(schedule), [], [], None
    guard = {"scale": 1.0, "best_value": None, "best_schedule": None, "best_outer_state": None, "restarts": []}
    if state_path is not None and os.path.exists(state_path):
        k, schedule, ostate, history, evals, grad_norm0, guard = _load_state(state_path, config, outer, schedule)
    if evaluate is not None and not evals:
        evals.append({"iteration": 0, **evaluate(schedule)})

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=iterations, initial=min(k, iterations), desc=desc, leave=False)
    status, message, last_good = 0, f"completed {iterations} outer iterations", schedule
    while k < iterations:
        try:
            value, grad = value_and_grad(schedule, outer_seed(seed, k) if fresh_batches else seed)
            value = float(value)
            reason = None if math.isfinite(value) else "non-finite f_T"
            if reason is None and not np.all(np.isfinite(grad)):
                reason = "non-finite hypergradient"
        except DivergenceError as exc:
            if restart_above is None or guard["best_value"] is None:
                status = 2
                message = (f"inner run diverged at outer iteration {k}, step {exc.step} "
                           f"(non-finite {exc.what}); returning the schedule of iteration {max(k - 1, 0)}")
                break
            value, reason = math.inf, f"inner run diverged at step {exc.step} (non-finite {exc.what})"
        if reason is None and restart_above is not None and guard["best_value"] is not None \
                and value > restart_above * guard["best_value"]:
            reason = f"f_T = {value:.4g} > {restart_above:g} × the best {guard['best_value']:.4g}"
        if reason is not None and (restart_above is None or guard["best_value"] is None):
            status, message = 2, f"{reason} at outer iteration {k}; returning the schedule of iteration {max(k - 1, 0)}"
            break
        if reason is not None:
            # safeguard: back to the best iterate (its optimizer state too), half the step
            guard["scale"] /= 2
            guard["restarts"].append({"iteration": k, "reason": reason, "scale": guard["scale"]})
            schedule = np.array(guard["best_schedule"], dtype=float)
            ostate = state_from_dict(outer.init(schedule), guard["best_outer_state"])
        else:
            if k == 0:
                grad_norm0 = stationarity(schedule, grad)
            if restart_above is not None and (guard["best_value"] is None or value < guard["best_value"]):
                guard.update(best_value=value, best_schedule=schedule.copy(), best_outer_state=ostate._asdict())
            last_good = schedule
            new, ostate = outer.update(ostate, schedule, grad)
            schedule = new if guard["scale"] == 1.0 else schedule + guard["scale"] * (new - schedule)
            if not np.all(np.isfinite(schedule)):
                status = 2
                history.append(value)
                message = (f"outer iteration {k}: the outer step is not finite (hypergradient too "
                           f"large); returning the schedule of iteration {k}")
                break
        history.append(value)
        k += 1
        if evaluate is not None and eval_every and (k % eval_every == 0 or k == iterations):
            evals.append({"iteration": k, **evaluate(schedule)})
        if state_path is not None:
            atomic_write_json(state_path, {"iteration": k, "schedule": schedule, "outer_state": ostate._asdict(),
                                           "history": history, "evals": evals, "config": config,
                                           "grad_norm0": grad_norm0, "guard": guard,
                                           "batch_seeds": "outer_seed(seed, k) = SeedSequence((seed, k))"})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(f=f"{value:.4g}")
        if callback is not None and callback(k - 1, schedule.copy(), value):
            status, message = 1, f"stopped by callback after outer iteration {k - 1}"
            break
    if bar is not None:
        bar.close()
    fun, jac = (history[-1] if history else math.inf), None
    if status != 2:
        try:
            fun, jac = value_and_grad(schedule, seed)
        except DivergenceError as exc:
            status, schedule = 2, last_good
            message = (f"the final schedule diverged at step {exc.step} on the evaluation sequence "
                       f"(seed {seed}); returning the schedule of iteration {k - 1}")
    else:
        schedule = last_good
    res = OptimizeResult(x=schedule, fun=float(fun), jac=jac, nit=k, status=status, message=message,
                         history=np.array(history), evals=evals, grad_norm0=grad_norm0,
                         restarts=guard["restarts"])
    return _finish(res, gtol, status == 0)


def _finish(res, gtol, ok):
    """Stationarity fields and an honest ``success``/``message``."""
    res.grad_norm = None if res.jac is None else stationarity(res.x, res.jac)
    ref = res.get("grad_norm0")
    res.stationary = bool(res.grad_norm is not None and ref is not None and res.grad_norm <= gtol * ref)
    if ok and res.grad_norm is not None and not res.stationary:
        res.message += (f"; not stationary: ‖P∇f_T‖∞ = {res.grad_norm:.3g} on the evaluation sequence, "
                        f"{res.grad_norm / ref if ref else math.inf:.3g} × the start's (needs ≤ gtol = {gtol:g})")
    res.success = bool(ok and res.stationary)
    return res


@library_call
def lrs_opt_stochastic(problem, dynamics, schedule0=None, *, outer, iterations, steps=None, seed=0,
                       fresh_batches=True, method="reverse", checkpoint_every=None, state_path=None,
                       evaluate=None, eval_every=None, gtol=1e-3, restart_above=None, progress=False,
                       callback=None):
    """LRS-OPT on an hgref problem with the exact oracle (:func:`optimize_schedule`).

    ``schedule0`` defaults to 0.01·1_T (§5) with T = ``steps``; ``method`` and
    ``checkpoint_every`` go to :func:`hgref.oracle.hypergradient`.

    >>> from hgref import problems, dynamics
    >>> from hgref.lrsopt import adam
    >>> res = lrs_opt_stochastic(problems.beale(), dynamics.sgd(), steps=5, outer=adam(1e-3), iterations=2)
    >>> res.nit, res.x.shape, bool(res.fun < res.history[0])
    (2, (5,), True)
    """
    if schedule0 is None:
        if steps is None:
            raise ValueError("give schedule0 or steps (schedule0 defaults to 0.01 * ones(steps))")
        schedule0 = np.full(check_int("steps", steps, low=1), 0.01)
    schedule0 = check_schedule(schedule0, name="schedule0")
    if steps is not None and check_int("steps", steps, low=1) != schedule0.size:
        raise ValueError(f"steps must equal len(schedule0) = {schedule0.size}, got {steps}")
    check_choice("method", method, METHODS)
    if not isinstance(outer, Outer):
        raise TypeError(f"outer must be an hgref.lrsopt.Outer (pgd, adam, log_adam), got {type(outer).__name__}")

    def value_and_grad(schedule, batch_seed):
        hg = hypergradient(problem, dynamics, schedule, batch_seed, method, checkpoint_every=checkpoint_every)
        return hg.value, hg.grad

    config = {"problem": problem.name, "dynamics": dynamics.name, "hyperparams": dynamics.hyperparams,
              "method": method}
    return optimize_schedule(value_and_grad, schedule0, outer, iterations, seed=seed, fresh_batches=fresh_batches,
                             config=config, state_path=state_path, evaluate=evaluate, eval_every=eval_every,
                             gtol=gtol, restart_above=restart_above, progress=progress, callback=callback,
                             desc=f"LRS-OPT {problem.name}")


@library_call
def lrs_opt_pgd(problem, dynamics, schedule0=None, *, steps=None, lr, iterations, seed=0, fresh_batches=True,
                method="reverse", max_change=None, state_path=None, progress=False, callback=None, **kwargs):
    """LRS-OPT by projected gradient descent, the MARTHE §5 protocol:
    :func:`lrs_opt_stochastic` with ``outer=pgd(lr, max_change)`` (η_{k+1} = max(η_k − Δ_k, 0),
    Δ_k = lr ∇f_T(η_k), each entry clipped to ±max_change if set)."""
    return lrs_opt_stochastic(problem, dynamics, schedule0, outer=pgd(lr, max_change), iterations=iterations,
                              steps=steps, seed=seed, fresh_batches=fresh_batches, method=method,
                              state_path=state_path, progress=progress, callback=callback, **kwargs)
