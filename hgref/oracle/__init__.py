"""The exact hypergradient oracle: f_T(η) = E(w_T(η)) and ∇f_T(η) (MARTHE Eq. 1–4).

For a problem (L_t, E), a dynamics Φ and a schedule η = (η_0 … η_{T−1}), with the
minibatch sequence fixed by ``seed``::

    x_{t+1} = Φ_t(x_t, η_t),   f_T(η) = E(w_T),   ∇f_T(η) = Ẋ_T[:d]ᵀ ∇E(w_T)   (Eq. 2)

where x = (w, buffers) is the whole optimizer state (momentum, Adam moments), so the
tangent Ẋ and the adjoint λ cover the buffers too. Three methods compute ∇f_T:

``"reverse"`` (default; the fastest for T > 1)  adjoint sweep, ≈ 3 gradient passes per step;
``"forward"``  tangent system Eq. 3, Σ_t min(t, n) tangent products; also yields
               the prefix hypergradients ∂E(w_t)/∂η_i (:func:`prefix_hypergradients`);
``"fd"``       central finite differences, 2T + 1 inner runs (for tests).

Forward and reverse agree to rounding (≤ 1e-10 relative, tests/test_oracle.py); all three
follow :func:`hgref.train.run` exactly (:func:`unroll`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_choice, check_int, check_scalar, check_schedule
from .._threads import library_call
from .modes import DENSE_MAX_STATE, finite_differences, forward, reverse
from .unroll import Unrolled, unroll

__all__ = ["Hypergradient", "hypergradient", "prefix_hypergradients", "unroll", "Unrolled",
           "METHODS", "DENSE_MAX_STATE"]

METHODS = ("forward", "reverse", "fd")


class Hypergradient(NamedTuple):
    """Value and gradient of f_T at a schedule."""

    value: float        # f_T(η) = E(w_T)
    grad: np.ndarray    # shape=(T,) ∇f_T(η)
    method: str         # "forward", "reverse" or "fd"


@library_call
def hypergradient(problem, dynamics, schedule, seed=0, method="reverse", *, checkpoint_every=None,
                  fd_step=1e-6) -> Hypergradient:
    """f_T(η) and the exact hypergradient ∇f_T(η) of a learning-rate schedule (Eq. 2–4).

    Args:
      problem: a :class:`hgref.problems.Problem`.
      dynamics: a :class:`hgref.dynamics.Dynamics`.
      schedule: η, a non-empty 1-d array of finite learning rates ≥ 0; T = len(schedule).
      seed: fixes the minibatch sequence ``problem.batch(t, seed)``.
      method: ``"reverse"`` (adjoint), ``"forward"`` (tangent, Eq. 3) or ``"fd"``.
      checkpoint_every: reverse mode only: store every k-th state and recompute segments
        (memory O(T/k + k) states instead of T; one extra forward sweep).
      fd_step: relative step of the finite differences, h_i = fd_step·max(1, η_i).

    Returns:
      :class:`Hypergradient` ``(value, grad, method)``.

    Raises:
      ValueError/TypeError: bad schedule, method, seed, checkpoint_every or fd_step.
      hgref.DivergenceError: non-finite loss/weights/objective (or tangent/adjoint) in
        the inner run; ``.step`` is the step t.

    >>> from hgref import problems, dynamics
    >>> hg = hypergradient(problems.beale(), dynamics.sgd(), [0.01] * 3)
    >>> hg.grad.shape, hg.method
    ((3,), 'reverse')
    """
    schedule = check_schedule(schedule)
    check_int("seed", seed, low=0)
    check_choice("method", method, METHODS)
    if checkpoint_every is not None:
        if method != "reverse":
            raise ValueError(f"checkpoint_every applies to method='reverse' only, got method={method!r}")
        checkpoint_every = check_int("checkpoint_every", checkpoint_every, low=1)
    fd_step = check_scalar("fd_step", fd_step, strict=True)
    if method == "forward":
        value, grad = forward(problem, dynamics, schedule, seed)
    elif method == "reverse":
        value, grad = reverse(problem, dynamics, schedule, seed, checkpoint_every=checkpoint_every)
    else:
        value, grad = finite_differences(problem, dynamics, schedule, seed, fd_step=fd_step)
    return Hypergradient(float(value), grad, method)


@library_call
def prefix_hypergradients(problem, dynamics, schedule, seed=0, *, objective_grad=None) -> np.ndarray:
    """All prefix hypergradients J[t, i] = ∂E(w_t)/∂η_i, shape (T+1, T) (forward mode).

    J[t, i] = Ẋ_t[:d, i]ᵀ ∇E(w_t) for i < t and 0 for i ≥ t (η_i acts after step i);
    row 0 is zero and row T is ∇f_T. The online rules are checked against it: MARTHE
    with fixed μ (Eq. 9) has Δη_t = Σ_{i<t} μ^{t−1−i} J[t, i]; HD has h_t = J[t, t−1].
    Costs one ∇E per step on top of forward mode.

    ``objective_grad(t, w) -> ∇Obj_t(w)`` (shape (d,)) replaces E by another objective that
    may depend on the step, e.g. the minibatch training loss L_t (what HD's ``"train"``
    estimates): then J[t, i] = Ẋ_t[:d, i]ᵀ ∇Obj_t(w_t), row T included.
    (:mod:`hgref.testing.objectives` builds the usual ones.)

    >>> from hgref import problems, dynamics
    >>> J = prefix_hypergradients(problems.beale(), dynamics.sgd(), [0.01] * 4)
    >>> J.shape, bool(J[0].any()), bool(J[2, 2:].any())
    ((5, 4), False, False)
    """
    schedule = check_schedule(schedule)
    check_int("seed", seed, low=0)
    if objective_grad is not None and not callable(objective_grad):
        raise TypeError(f"objective_grad must be a callable (t, w) -> gradient or None, got "
                        f"{type(objective_grad).__name__}")
    return forward(problem, dynamics, schedule, seed, prefix=True, objective_grad=objective_grad)[1]
