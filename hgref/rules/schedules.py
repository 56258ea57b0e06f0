"""Fixed learning-rate schedules: the MARTHE paper §6 baselines, as rules.

Each factory returns a :class:`Rule` whose η_t = η_0 · factor(t) ignores the trajectory.
``factor`` is also exposed as ``rule.hyperparams["factor"]`` for plotting.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from .._checks import check_int, check_scalar
from .base import Rule

__all__ = ["constant", "exponential", "staircase", "sgdr", "schedule"]


class ScheduleState(NamedTuple):
    eta0: float   # the base learning rate η_0


def schedule(name, factor, **hyperparams):
    """A rule with η_t = η_0 · factor(t)."""

    def init(eta0, state):
        return ScheduleState(float(eta0))

    def update(rstate, obs):
        return rstate.eta0 * factor(obs.t), rstate, {}

    return Rule(name, init, update, dict(hyperparams, factor=factor))


def constant():
    """η_t = η_0."""
    return schedule("constant", lambda t: 1.0)


def exponential(gamma=0.99, every=1):
    """Exponential decay (§6 "ED"): η_t = η_0 γ^⌊t / every⌋ (every = steps per epoch for
    the paper's per-epoch factor 0.99)."""
    gamma = check_scalar("gamma", gamma)
    every = check_int("every", every, low=1)
    return schedule("exponential", lambda t: gamma ** (t // every), gamma=gamma, every=every)


def staircase(every, factor=0.1):
    """Staircase decay: η_t = η_0 · factor^⌊t / every⌋ (§6: ×0.1 every 60 epochs)."""
    every = check_int("every", every, low=1)
    factor = check_scalar("factor", factor)
    return schedule("staircase", lambda t: factor ** (t // every), every=every, decay=factor)


def sgdr(T0, Tmult=2, eta_min=0.0):
    """SGDR (Loshchilov & Hutter, 2017): cosine annealing with warm restarts.

    Within a cycle of length T_i (T_0, T_0·Tmult, ...) at position t_cur:
    η_t = η_min + (η_0 − η_min)(1 + cos(π t_cur / T_i)) / 2. Here ``eta_min`` is a fraction
    of η_0 (the factor is relative). §6 uses T0 = 10 epochs, Tmult = 2.
    """
    T0 = check_int("T0", T0, low=1)
    Tmult = check_int("Tmult", Tmult, low=1)
    eta_min = check_scalar("eta_min", eta_min)
    if eta_min > 1:
        raise ValueError(f"eta_min is a fraction of eta0 and must lie in [0, 1], got {eta_min}")

    def factor(t):
        length, start = T0, 0
        while t >= start + length:
            start += length
            length *= Tmult
        return eta_min + (1 - eta_min) * (1 + math.cos(math.pi * (t - start) / length)) / 2

    return schedule("sgdr", factor, T0=T0, Tmult=Tmult, eta_min=eta_min)
