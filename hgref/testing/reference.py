"""The exact reference of declared mode: J[k, t, i] = ∂Obj_t(w_t)/∂η^k_i on a case.

One param group: :func:`hgref.oracle.prefix_hypergradients` (forward mode over the whole state,
``objective_grad=`` for an objective other than E). Several groups, each with its own learning
rate η^k on its coordinates (mask P_k): the same tangent system with a per-coordinate η and one
B per group (MARTHE Eq. 3 with η_t ↦ Σ_k η^k_t P_k)::

    Z^{k,i}_{t+1} = A_t Z^{k,i}_t (i < t),    Z^{k,t}_{t+1} = (−P_k d_t, 0),
    J[k, t, i] = Z^{k,i}_t[:d] · ∇Obj_t(w_t)

built from :func:`hgref.linearize.linearize` (A_t with η_t the per-coordinate vector). With
equal η in every group, Σ_k J[k] is the oracle's J (tests/test_testing_reference.py).
"""
from __future__ import annotations

import numpy as np

from .._checks import DivergenceError
from ..dynamics import pack
from ..linearize import advance, evaluate, linearize, tangent_update
from .objectives import resolve_objective

__all__ = ["group_prefix", "case_reference"]


def group_prefix(problem, dynamics, schedules, masks, seed=0, objective_grad=None) -> np.ndarray:
    """J[k, t, i] = ∂Obj_t(w_t)/∂η^k_i, shape (K, T+1, T), for per-group schedules.

    Args:
      schedules: shape (K, T), η^k_t of group k at step t.
      masks: shape (K, d) booleans, the coordinates of each group (a partition of w).
      objective_grad: ``(t, w) -> ∇Obj_t(w)``; default ∇E.
    """
    schedules = np.asarray(schedules, dtype=float)
    masks = np.asarray(masks, dtype=bool)
    K, T = schedules.shape
    if masks.shape != (K, problem.dim) or not np.all(masks.sum(axis=0) == 1):
        raise ValueError(f"masks must be a partition of the {problem.dim} weights into {K} groups, "
                         f"shape {(K, problem.dim)}, got shape {masks.shape}")
    grad_obj = objective_grad or (lambda t, w: problem.objective_grad(w))
    state = dynamics.init(problem.w0)
    d, n = problem.dim, pack(state).shape[0]
    Z = np.zeros((K, T, n))
    J = np.zeros((K, T + 1, T))
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(T):
            eta = schedules[:, t] @ masks                    # per-coordinate η_t, shape (d,)
            batch = problem.batch(t, seed)
            step = evaluate(problem, dynamics, state, batch)
            if not np.isfinite(step.loss):
                raise DivergenceError(t, "loss", problem.name)
            for k in range(K):
                for i in range(t):
                    _, tan = linearize(problem, dynamics, state, batch, Z[k, i])
                    Z[k, i] = tangent_update(Z[k, i], step, tan, eta, with_b=False)
                Z[k, t, :d] = -step.direction * masks[k]
            state = advance(state, step, eta)
            if not np.all(np.isfinite(state.w)):
                raise DivergenceError(t, "weights", problem.name)
            J[:, t + 1, :t + 1] = Z[:, :t + 1, :d] @ grad_obj(t + 1, state.w)
    return J


_CACHE: dict = {}


def case_reference(case, schedules, objective=None, data_dir=None, activation="relu") -> np.ndarray:
    """The exact J[k, t, i] of ``case`` run under ``schedules`` (shape (K, T)), memoised."""
    schedules = np.atleast_2d(np.asarray(schedules, dtype=float))
    key = (case.name, case.dynamics, tuple(sorted(case.hyperparams.items())), case.minibatch,
           case.seed, data_dir, activation, schedules.tobytes(), schedules.shape,
           objective if isinstance(objective, (str, type(None))) else id(objective))
    if key not in _CACHE:
        if len(_CACHE) >= 64:
            _CACHE.pop(next(iter(_CACHE)))
        problem, dyn = case.problem(data_dir, activation), case.make_dynamics()
        obj = resolve_objective(objective, problem, dyn, case.seed)
        if schedules.shape[0] == 1:
            from ..oracle import prefix_hypergradients
            J = prefix_hypergradients(problem, dyn, schedules[0], seed=case.seed,
                                      objective_grad=None if obj.is_default else obj.grad)[None]
        else:
            J = group_prefix(problem, dyn, schedules, case.group_masks(), case.seed, obj.grad)
        _CACHE[key] = J
    return _CACHE[key]
