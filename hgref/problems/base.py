"""The problem interface: initial weights, training loss L_t, objective E.

A :class:`Problem` is what the dynamics, the training loop and the oracle consume
(MARTHE paper, Eq. 1): ``w0`` (flat float64 vector of length d), the training loss
``L_t(w) = loss(w, batch(t, seed))`` on the t-th minibatch, and the objective
``E(w) = objective(w)`` (a validation loss; for toy functions E = L and ``batch``
returns ``None``).

Derivatives come with the problem so that fast hand-written versions can replace
the autograd defaults built by :func:`make_problem`:

* ``value_and_grad(w, batch) -> (L, ∇L)``;
* ``grad_and_hvp(w, batch, v) -> (L, ∇L, ∇²L v)`` — one forward-over-reverse pass;
  the Hessian is symmetric, so the same product serves forward (tangent) and
  reverse (adjoint) mode;
* ``objective_grad(w) -> ∇E``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
from autograd import grad as _grad
from autograd import make_jvp, value_and_grad as _value_and_grad

from .._checks import check_vector

__all__ = ["Problem", "make_problem"]


class Problem(NamedTuple):
    """A learning problem: Eq. 1 of the MARTHE paper without the dynamics."""

    name: str
    w0: np.ndarray                                  # shape=(d,), float64
    loss: Callable[[np.ndarray, Any], float]        # L_t(w) on a minibatch; autograd-differentiable
    objective: Callable[[np.ndarray], float]        # E(w)
    batch: Callable[[int, int], Any]                # (t, seed) -> minibatch of step t (None: full data)
    value_and_grad: Callable[[np.ndarray, Any], tuple]
    grad_and_hvp: Callable[[np.ndarray, Any, np.ndarray], tuple]
    objective_grad: Callable[[np.ndarray], np.ndarray]
    metrics: Callable[[np.ndarray], dict]           # extra evaluations, e.g. accuracies
    objective_is_loss: bool                         # E(w) == L_t(w) for every t (no minibatches)
    info: dict                                      # description for results files

    @property
    def dim(self) -> int:
        return self.w0.shape[0]


def _no_batch(t, seed):
    return None


def _autograd_grad_and_hvp(loss):
    g = _grad(loss)

    def grad_and_hvp(w, batch, v):
        gw, hv = make_jvp(lambda u: g(u, batch))(w)(v)
        return float(loss(w, batch)), gw, hv

    return grad_and_hvp


def make_problem(name, w0, loss, *, objective=None, batch=None, value_and_grad=None,
                 grad_and_hvp=None, objective_grad=None, metrics=None, info=None):
    """Build a :class:`Problem`, filling derivatives in with autograd.

    Args:
      name: short identifier, used in results files.
      w0: initial weights, any array-like; stored as a flat float64 vector.
      loss: ``loss(w, batch)``, written with ``autograd.numpy``.
      objective: ``E(w)``; default ``loss(w, None)`` (E = L, no minibatches).
      batch: ``batch(t, seed)`` giving the t-th minibatch; default: no minibatches.
      value_and_grad, grad_and_hvp, objective_grad: fast replacements of the
        autograd defaults (they must agree with them; tests check it).
      metrics: ``metrics(w) -> dict`` of extra numbers (accuracies); default ``{}``.
      info: JSON-serialisable description of the problem.

    >>> import autograd.numpy as anp
    >>> p = make_problem("bowl", [1.0, 2.0], lambda w, b: anp.sum(w ** 2))
    >>> p.value_and_grad(p.w0, None)[1]
    array([2., 4.])
    """
    w0 = check_vector("w0", w0).copy()
    w0.setflags(write=False)
    objective_is_loss = objective is None and batch is None
    if objective is None:
        def objective(w):  # E = L: no minibatches
            return loss(w, None)
    if value_and_grad is None:
        autograd_vg = _value_and_grad(loss)

        def value_and_grad(w, b):
            value, g = autograd_vg(w, b)
            return float(value), g
    return Problem(
        name=name,
        w0=w0,
        loss=loss,
        objective=objective,
        batch=batch or _no_batch,
        value_and_grad=value_and_grad,
        grad_and_hvp=grad_and_hvp or _autograd_grad_and_hvp(loss),
        objective_grad=objective_grad or _grad(objective),
        metrics=metrics or (lambda w: {}),
        objective_is_loss=objective_is_loss,
        info=dict(info or {}, name=name, dim=int(w0.shape[0])),
    )
