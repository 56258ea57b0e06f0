"""One step of the dynamics and its Jacobians A_t, B_t (MARTHE paper, Eq. 3).

The state of a dynamics is packed into a flat vector ``x = (w, buffers...)`` of length
``n = (1 + n_buffers) d`` (:func:`hgref.dynamics.pack`). One step is::

    x_{t+1} = Φ_t(x_t, η_t) = (w_t − η_t d_t, b_{t+1}),    (d_t, b_{t+1}) = D(x_t, ∇L_t(w_t))

so ``B_t = ∂Φ_t/∂η_t = (−d_t, 0)`` and, for a tangent ``z`` (or adjoint ``λ``)::

    A_t z  = (z_w − η_t δd, δb),          (δd, δb) = ∂D/∂x z + ∂D/∂g ∇²L_t z_w
    A_tᵀλ  = (λ_w, 0) + ∂D/∂xᵀ c + e_w ∇²L_t ∂D/∂gᵀ c,   c = (−η_t λ_w, λ_b)

using the symmetry of the Hessian ∇²L_t: one Hessian-vector product serves both modes.
The η-free part (δd, δb) is computed before η_t is known, so an online rule can choose
η_t after seeing the tangent (MARTHE Algorithm 1), at the cost of one forward-over-reverse
pass that also yields the gradient.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from autograd import make_jvp, make_vjp


__all__ = ["Step", "Tangent", "evaluate", "linearize", "advance", "tangent_update", "adjoint"]


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


def _direction_of(dynamics, count, n_buffers):
    """(w, *buffers, g) ↦ (d, new buffers) packed into one vector; autograd-traceable.

    Inputs are a tuple (not slices of one long vector): autograd's reverse pass through
    slices would scatter into full-length zero arrays.
    """
    import autograd.numpy as anp

    def f(args):
        direction, new = dynamics.direction(args[0], tuple(args[1:1 + n_buffers]), args[-1], count)
        return anp.concatenate((direction,) + tuple(new)) if n_buffers else direction

    return f


def _pieces(state, grad):
    return tuple(state[:-1]) + (grad,)


def _split(out, d):
    return out[:d], tuple(out[i:i + d] for i in range(d, out.shape[0], d))


def evaluate(problem, dynamics, state, batch) -> Step:
    """The plain step quantities: loss, gradient, direction and new buffers."""
    loss, grad = problem.value_and_grad(state.w, batch)
    direction, buffers = dynamics.direction(state.w, state[1:-1], grad, state.count)
    return Step(loss, grad, direction, tuple(buffers))


def linearize(problem, dynamics, state, batch, z) -> tuple[Step, Tangent]:
    """Step quantities and the η-free tangent (δd, δb) for one tangent z of shape (n,).

    Costs one ``grad_and_hvp`` (gradient and Hessian-vector product in one pass) plus an
    elementwise JVP of the dynamics.
    """
    d = state.w.shape[0]
    loss, grad, hz = problem.grad_and_hvp(state.w, batch, z[:d])
    k = dynamics.n_buffers
    f = _direction_of(dynamics, state.count, k)
    zs = tuple(z[i * d:(i + 1) * d] for i in range(k + 1)) + (hz,)
    out, dout = make_jvp(f)(_pieces(state, grad))(zs)
    direction, buffers = _split(out, d)
    return Step(loss, grad, direction, buffers), Tangent(dout[:d], dout[d:])


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


def adjoint(problem, dynamics, state, batch, eta, lam, grad=None):
    """Reverse-mode step: ``(A_tᵀ λ, λᵀ B_t)`` for a cotangent λ of x_{t+1} (shape (n,)).

    ``grad`` (∇L_t(w_t), e.g. stored by the forward sweep) saves one gradient evaluation.
    """
    d = state.w.shape[0]
    if grad is None:
        grad = problem.value_and_grad(state.w, batch)[1]
    k = dynamics.n_buffers
    vjp, out = make_vjp(_direction_of(dynamics, state.count, k))(_pieces(state, grad))
    c = np.concatenate((-eta * lam[:d], lam[d:])) if k else -eta * lam
    bars = vjp(c)
    xbar = np.concatenate(bars[:k + 1]) if k else np.array(bars[0], dtype=float)
    xbar[:d] += lam[:d]
    _, _, hg = problem.grad_and_hvp(state.w, batch, bars[-1])
    xbar[:d] += hg
    return xbar, -float(lam[:d] @ out[:d])
