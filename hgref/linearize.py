"""One step of the dynamics and its Jacobians A_t, B_t (MARTHE paper, Eq. 3).

The state of a dynamics is packed into a flat vector ``x = (w, buffers...)`` of length
``n = (1 + n_buffers) d`` (:func:`hgref.dynamics.pack`). One step is::

    x_{t+1} = Φ_t(x_t, η_t) = (w_t − η_t d_t, b_{t+1}),    (d_t, b_{t+1}) = D(x_t, ∇L_t(w_t))

so ``B_t = ∂Φ_t/∂η_t = (−d_t, 0)`` and, for a tangent ``z`` (or adjoint ``λ``)::

    A_t z  = (z_w − η_t δd, δb),          (δd, δb) = ∂D/∂x z + ∂D/∂g ∇²L_t z_w
    A_tᵀλ  = (λ_w, 0) + ∂D/∂xᵀ c + e_w ∇²L_t ∂D/∂gᵀ c,   c = (−η_t λ_w, λ_b)

using the symmetry of the Hessian ∇²L_t: one Hessian-vector product serves both modes. The
elementwise derivatives of D are the dynamics' written-out ``direction_jvp`` /
``direction_vjp`` (tests compare A_t and B_t with autograd Jacobians of the whole step).
The η-free part (δd, δb) is computed before η_t is known, so an online rule can choose
η_t after seeing the tangent (MARTHE Algorithm 1), at the cost of one forward-over-reverse
pass that also yields the gradient.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


__all__ = ["Step", "Tangent", "evaluate", "linearize", "advance", "tangent_update", "adjoint", "hvp_only"]


class Step(NamedTuple):
    """The η-free quantities of step t at state x_t."""

    loss: float            # L_t(w_t)
    grad: np.ndarray       # shape=(d,) ∇L_t(w_t), without weight decay
    direction: np.ndarray  # shape=(d,) d_t, so that w_{t+1} = w_t − η_t d_t
    buffers: tuple         # buffers_{t+1}, each shape=(d,)


class Tangent(NamedTuple):
    """η-free part of A_t z for one tangent z (see module docstring)."""

    direction: np.ndarray  # shape=(d,) δd
    buffers: np.ndarray    # shape=(n − d,) δb, packed


def evaluate(problem, dynamics, state, batch) -> Step:
    """The plain step quantities: loss, gradient, direction and new buffers."""
    loss, grad = problem.value_and_grad(state.w, batch)
    direction, buffers = dynamics.direction(state.w, state[1:-1], grad, state.count)
    return Step(loss, grad, direction, tuple(buffers))


def linearize(problem, dynamics, state, batch, z) -> tuple[Step, Tangent]:
    """Step quantities and the η-free tangent (δd, δb) for one tangent z of shape (n,).

    Costs one ``grad_and_hvp`` (gradient and Hessian-vector product in one pass) plus the
    elementwise ``direction_jvp`` of the dynamics.
    """
    d = state.w.shape[0]
    loss, grad, hz = problem.grad_and_hvp(state.w, batch, z[:d])
    k = dynamics.n_buffers
    dbuffers = tuple(z[(i + 1) * d:(i + 2) * d] for i in range(k))
    direction, buffers, dd, dnew = dynamics.direction_jvp(
        state.w, tuple(state[1:-1]), grad, state.count, z[:d], dbuffers, hz)
    tangent = Tangent(dd, np.concatenate(dnew) if k else np.empty(0))
    return Step(loss, grad, direction, tuple(buffers)), tangent


def advance(state, step: Step, eta):
    """x_{t+1} = Φ_t(x_t, η_t) from the step quantities: (w − η d, new buffers)."""
    return type(state)(state.w - eta * step.direction, *step.buffers, state.count + 1)


def tangent_update(z, step: Step, tangent: Tangent, eta, mu=1.0, with_b=True):
    """Eq. 9 of the MARTHE paper: ``μ A_t z + [B_t]_t`` (``with_b=False``: ``μ A_t z``)."""
    d = step.direction.shape[0]
    out = np.empty_like(z)
    out[:d] = mu * (z[:d] - eta * tangent.direction)
    out[d:] = mu * tangent.buffers
    if with_b:
        out[:d] -= step.direction
    return out


def hvp_only(problem):
    """``hvp(w, batch, v) -> ∇²L v`` of ``problem``: its HVP-only pass if ``grad_and_hvp``
    carries one as attribute ``.hvp`` (the MNIST problems), else ``grad_and_hvp(...)[2]``.

    An attribute of the function, not a field of the problem, so that a problem whose
    ``grad_and_hvp`` is replaced (``problem._replace``, e.g. MARTHE's clipped surrogate)
    never keeps a stale fast path.
    """
    fast = getattr(problem.grad_and_hvp, "hvp", None)
    if fast is not None:
        return fast
    return lambda w, batch, v: problem.grad_and_hvp(w, batch, v)[2]


def adjoint(problem, dynamics, state, batch, eta, lam, grad=None):
    """Reverse-mode step: ``(A_tᵀ λ, λᵀ B_t)`` for a cotangent λ of x_{t+1} (shape (n,)).

    ``grad`` (∇L_t(w_t), e.g. stored by the forward sweep) saves one gradient evaluation,
    and the Hessian-vector product then comes from :func:`hvp_only` (no second gradient).
    """
    d = state.w.shape[0]
    if grad is None:
        grad = problem.value_and_grad(state.w, batch)[1]
    k = dynamics.n_buffers
    cbuffers = tuple(lam[(i + 1) * d:(i + 2) * d] for i in range(k))
    direction, _, wbar, bbar, gbar = dynamics.direction_vjp(
        state.w, tuple(state[1:-1]), grad, state.count, -eta * lam[:d], cbuffers)
    hg = hvp_only(problem)(state.w, batch, gbar)
    xbar = np.empty_like(lam)
    np.add(lam[:d], wbar, out=xbar[:d])
    xbar[:d] += hg
    for i, b in enumerate(bbar):
        xbar[(i + 1) * d:(i + 2) * d] = b
    return xbar, -float(lam[:d] @ direction)
