"""The inner run w_0 → w_T for a fixed schedule η (MARTHE Eq. 1), as the oracle sees it.

The sweep performs exactly the operations of :func:`hgref.train.run` with a rule replaying
the schedule — ``problem.batch(t, seed)``, :func:`hgref.linearize.evaluate`,
:func:`hgref.linearize.advance` — so the oracle's w_T is bitwise the trained w_T
(tests/test_oracle.py checks it). Divergence (non-finite loss, weights or objective)
raises :class:`hgref.DivergenceError` naming the step.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._checks import DivergenceError, check_int, check_schedule
from .._threads import library_call
from ..linearize import advance, evaluate

__all__ = ["Unrolled", "unroll", "sweep", "final_objective"]


class Unrolled(NamedTuple):
    """States of one inner run."""

    states: list        # length T+1: dynamics states x_0 … x_T (``states[t].w`` is w_t)
    losses: np.ndarray  # shape=(T,) L_t(w_t) on minibatch t
    objective: float    # E(w_T) = f_T(η)


def _where(problem, dynamics, eta):
    return f"{problem.name}/{dynamics.name}, eta={eta!r}"


def sweep(problem, dynamics, schedule, seed, state, start=0, stop=None, *, keep_every=None,
          keep_grads=False, losses=None, kept=None):
    """Run steps ``start … stop−1`` from ``state`` (= x_start); return (x_stop, kept).

    Args:
      schedule: the whole schedule η (indexed by absolute step t); not validated here, so
        finite differences may evaluate f_T at η_i − h < 0 (Φ_t is affine in η_t).
      keep_every: keep x_t for t − start ≡ 0 (mod keep_every) (``None``: keep nothing).
      keep_grads: also keep ∇L_t(w_t) of every kept state (for the adjoint sweep).
      losses: optional list receiving L_t(w_t).
      kept: the mapping to fill (default a new dict), e.g. preallocated storage.

    Returns:
      ``(x_stop, kept)`` where ``kept`` maps t to ``(x_t, ∇L_t(w_t) or None)``.
    """
    stop = len(schedule) if stop is None else stop
    kept = {} if kept is None else kept
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(start, stop):
            eta = float(schedule[t])
            step = evaluate(problem, dynamics, state, problem.batch(t, seed))
            if not math.isfinite(step.loss):
                raise DivergenceError(t, "loss", _where(problem, dynamics, eta))
            if keep_every is not None and (t - start) % keep_every == 0:
                kept[t] = (state, step.grad if keep_grads else None)
            if losses is not None:
                losses.append(step.loss)
            state = advance(state, step, eta)
            if not np.all(np.isfinite(state.w)):
                raise DivergenceError(t, "weights", _where(problem, dynamics, eta))
    return state, kept


def final_objective(problem, state, steps):
    """E(w_T), raising :class:`DivergenceError` (step T) if it is not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        value = float(problem.objective(state.w))
    if not math.isfinite(value):
        raise DivergenceError(steps, "objective", problem.name)
    return value


@library_call
def unroll(problem, dynamics, schedule, seed=0) -> Unrolled:
    """All states x_0 … x_T of the inner run with learning rates ``schedule`` (Eq. 1).

    Identical to :func:`hgref.train.run` replaying the schedule (same minibatches
    ``problem.batch(t, seed)``, same weights bit for bit).

    >>> from hgref import problems, dynamics
    >>> u = unroll(problems.beale(), dynamics.sgd(), [0.01] * 5)
    >>> len(u.states), u.states[0].count, u.states[-1].count
    (6, 0, 5)
    """
    schedule = check_schedule(schedule)
    check_int("seed", seed, low=0)
    losses = []
    state, kept = sweep(problem, dynamics, schedule, seed, dynamics.init(problem.w0),
                        keep_every=1, losses=losses)
    states = [kept[t][0] for t in range(len(schedule))] + [state]
    return Unrolled(states, np.array(losses), final_objective(problem, state, len(schedule)))
