"""Outer optimizers of LRS-OPT: steps on a schedule η ≥ 0 from a (stochastic) hypergradient.

An outer optimizer is an :class:`Outer` ``(name, hyperparams, init, update)`` (optax
shape): ``init(η) -> state`` and ``update(state, η, g) -> (η_new, state)`` with g = ∇f_T(η)
on the minibatch sequence of the current outer iteration. Every update keeps η ≥ 0 exactly.

* :func:`pgd` — MARTHE §5: η ← max(η − clip(lr·g, ±max_change), 0).
* :func:`adam` — projected Adam: η ← max(η − lr·m̂/(√v̂ + ε), 0) (Kingma & Ba, Alg. 1).
* :func:`log_adam` — Adam in log η with an exact zero floor: u = log η, ∂f/∂u = η·g,
  η ← η·exp(−lr·m̂/(√v̂ + ε)); an entry below ``zero_below`` becomes exactly 0 and comes
  back at ``zero_below`` when its hypergradient turns negative. Each entry moves by a
  factor of at most ≈ e^lr per iteration, whatever the scale of g.

States are NamedTuples of floats and float64 arrays of shape (T,), so a run's state file
can hold them (:func:`state_from_dict`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .._checks import check_scalar

__all__ = ["Outer", "OUTERS", "pgd", "adam", "log_adam", "make_outer", "state_from_dict"]


class Outer(NamedTuple):
    """An outer optimizer on the schedule η (shape (T,))."""

    name: str
    hyperparams: dict        # JSON-able; part of a run's identity (state files, run keys)
    init: Callable           # init(eta) -> state
    update: Callable         # update(state, eta, grad) -> (eta_new, state)


class PGDState(NamedTuple):
    count: int               # outer iterations done


class AdamState(NamedTuple):
    count: int               # outer iterations done
    m: np.ndarray            # shape=(T,) first moment of the (log-space) hypergradient
    v: np.ndarray            # shape=(T,) second moment


def pgd(lr, max_change=None):
    """Projected gradient descent (MARTHE §5), optionally clipping each entry's change.

    >>> opt = pgd(0.1); eta, s = opt.update(opt.init(np.ones(2)), np.ones(2), np.array([1.0, 20.0]))
    >>> eta.tolist()
    [0.9, 0.0]
    """
    lr = check_scalar("lr", lr, strict=True)
    if max_change is not None:
        max_change = check_scalar("max_change", max_change, strict=True)

    def init(eta):
        return PGDState(0)

    def update(state, eta, grad):
        with np.errstate(over="ignore", invalid="ignore"):   # non-finite: the loop reports it
            delta = lr * grad
            if max_change is not None:
                delta = np.clip(delta, -max_change, max_change)
            return np.maximum(eta - delta, 0.0), PGDState(state.count + 1)

    return Outer("pgd", {"lr": lr, "max_change": max_change}, init, update)


def _moments(state, g, b1, b2, eps):
    """Adam's bias-corrected step direction m̂/(√v̂ + ε) and the new state."""
    k = state.count + 1
    m = b1 * state.m + (1 - b1) * g
    v = b2 * state.v + (1 - b2) * g * g
    direction = (m / (1 - b1 ** k)) / (np.sqrt(v / (1 - b2 ** k)) + eps)
    return direction, AdamState(k, m, v)


def _check_adam(lr, b1, b2, eps):
    lr = check_scalar("lr", lr, strict=True)
    b1, b2 = check_scalar("b1", b1), check_scalar("b2", b2)
    if not (b1 < 1 and b2 < 1):
        raise ValueError(f"b1 and b2 must lie in [0, 1), got b1={b1}, b2={b2}")
    return lr, b1, b2, check_scalar("eps", eps, strict=True)


def adam(lr, b1=0.9, b2=0.999, eps=1e-8):
    """Projected Adam on η: each entry moves by ≈ lr per iteration at most."""
    lr, b1, b2, eps = _check_adam(lr, b1, b2, eps)

    def init(eta):
        return AdamState(0, np.zeros_like(eta), np.zeros_like(eta))

    def update(state, eta, grad):
        direction, state = _moments(state, grad, b1, b2, eps)
        return np.maximum(eta - lr * direction, 0.0), state

    return Outer("adam", {"lr": lr, "b1": b1, "b2": b2, "eps": eps}, init, update)


def log_adam(lr, b1=0.9, b2=0.999, eps=1e-8, zero_below=1e-6):
    """Adam on u = log η (module docstring); ``zero_below`` is the exact-zero floor (absolute)."""
    lr, b1, b2, eps = _check_adam(lr, b1, b2, eps)
    zero_below = check_scalar("zero_below", zero_below, strict=True)

    def init(eta):
        return AdamState(0, np.zeros_like(eta), np.zeros_like(eta))

    def update(state, eta, grad):
        zero = eta <= 0
        # ∂f/∂log η = η·g; a zero entry sees the slope it would have at the floor
        g_log = np.where(zero, zero_below, eta) * grad
        direction, state = _moments(state, g_log, b1, b2, eps)
        moved = eta * np.exp(-lr * direction)
        moved = np.where(moved < zero_below, 0.0, moved)
        return np.where(zero, np.where(grad < 0, zero_below, 0.0), moved), state

    return Outer("log_adam", {"lr": lr, "b1": b1, "b2": b2, "eps": eps, "zero_below": zero_below},
                 init, update)


OUTERS = {"pgd": pgd, "adam": adam, "log_adam": log_adam}


def make_outer(name, **hyperparams):
    """``OUTERS[name](**hyperparams)`` with a clear error for an unknown name."""
    if name not in OUTERS:
        raise ValueError(f"unknown outer optimizer {name!r}; accepted values: {', '.join(OUTERS)}")
    return OUTERS[name](**hyperparams)


def state_from_dict(template, data):
    """Rebuild a state like ``template`` (a NamedTuple) from its JSON form ``data``."""
    fields = {}
    for key, value in template._asdict().items():
        stored = data[key]
        fields[key] = np.asarray(stored, dtype=float) if isinstance(value, np.ndarray) else type(value)(stored)
    return type(template)(**fields)
