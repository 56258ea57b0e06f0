"""Stationarity of a schedule for min f_T(η) s.t. η ≥ 0 (first-order, KKT).

The projected gradient of the bound-constrained problem is P∇f_i = ∇f_i where η_i > 0 and
min(∇f_i, 0) where η_i = 0 (an entry at its bound may only rise); η is stationary iff
P∇f = 0. LRS-OPT reports ‖P∇f_T‖∞ at its end point and calls it stationary only when it
fell to ``gtol`` (default 1e-3) times its value at the start: scale-free, so the same rule
serves Beale (f_T ~ 1) and MNIST (f_T ~ 0.2), and a run stopped by a line search on an
ill-conditioned f_T (Beale from 0.01·1: ‖P∇f_T‖∞ = 3.8e6 after "REL_REDUCTION_OF_F") is
not reported as a success.
"""
from __future__ import annotations

import numpy as np

__all__ = ["projected_gradient", "stationarity"]


def projected_gradient(schedule, grad):
    """P∇f for the bound η ≥ 0, shape (T,).

    >>> projected_gradient(np.array([0.0, 0.0, 0.1]), np.array([2.0, -1.0, 3.0])).tolist()
    [0.0, -1.0, 3.0]
    """
    schedule, grad = np.asarray(schedule, dtype=float), np.asarray(grad, dtype=float)
    return np.where(schedule > 0, grad, np.minimum(grad, 0.0))


def stationarity(schedule, grad):
    """‖P∇f‖∞, the first-order optimality measure of ``schedule`` (0 at a KKT point)."""
    pg = projected_gradient(schedule, grad)
    return float(np.max(np.abs(pg))) if pg.size else 0.0
