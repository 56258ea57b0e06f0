"""What a hypergradient estimate Δη_t differentiates: the declared objective Obj_t.

The exact reference is J[t, i] = ∂Obj_t(w_t)/∂η_i (then discounted, :mod:`hgref.testing.exact`)
for the objective the estimator *declares*:

================  ================================================================================
``"validation"``  E(w), the validation objective (default; MARTHE's setting; E = L on full batch)
``"loss"``        L_t(w), the minibatch training loss of step t
``"train"``       L_t(w) + λ/2‖w‖² with λ the *coupled* weight decay of the case's dynamics: what
                  an estimator sees that reads ``p.grad`` after torch's ``weight_decay`` was added
                  (the original SGDHD/AdamHD, ``hgref.rules.hd(objective="train")``); for AdamW
                  λ = 0 (decoupled decay is not part of the loss), so "train" = "loss"
a callable        ``f(w, batch)`` written with ``autograd.numpy`` (float64; ``batch`` is minibatch t),
                  differentiated by autograd; or an :class:`Objective` with its own gradient
================  ================================================================================
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from ..dynamics import l2_weight_decay

__all__ = ["Objective", "OBJECTIVES", "resolve_objective", "BoundObjective", "objective_name"]

OBJECTIVES = ("validation", "loss", "train")


class Objective(NamedTuple):
    """A user objective Obj_t(w) = ``value(w, batch_t)``; ``grad(w, batch_t)`` (default autograd)."""

    name: str
    value: Callable
    grad: Optional[Callable] = None


class BoundObjective(NamedTuple):
    """An objective bound to a problem and a dynamics: ``value(t, w)`` and ``grad(t, w)``."""

    name: str
    value: Callable      # (t, w) -> float, Obj_t(w)
    grad: Callable       # (t, w) -> shape (d,), ∇Obj_t(w)
    is_default: bool     # True for E: the oracle's own default objective


def objective_name(spec) -> str:
    """The name a report shows for an objective ``spec``."""
    if spec is None:
        return "validation"
    if isinstance(spec, str):
        return spec
    return getattr(spec, "name", None) or getattr(spec, "__name__", "callable")


def resolve_objective(spec, problem, dynamics, seed=0) -> BoundObjective:
    """``spec`` (a name of :data:`OBJECTIVES`, a callable ``f(w, batch)`` or an
    :class:`Objective`) as value/gradient functions of (t, w) on ``problem``."""
    if spec is None or spec == "validation":
        return BoundObjective("validation", lambda t, w: float(problem.objective(w)),
                              lambda t, w: problem.objective_grad(w), True)
    batch = problem.batch
    if isinstance(spec, str):
        if spec not in OBJECTIVES:
            raise ValueError(f"unknown objective {spec!r}; accepted values: 'validation', 'loss', "
                             "'train', a callable f(w, batch) or an hgref.testing.Objective")
        lam = l2_weight_decay(dynamics) if spec == "train" else 0.0

        def value(t, w):
            v = float(problem.loss(w, batch(t, seed)))
            return v + 0.5 * lam * float(w @ w) if lam else v

        def grad(t, w):
            g = problem.value_and_grad(w, batch(t, seed))[1]
            return g + lam * w if lam else g

        name = spec if not lam else f"train (L_t + {lam:g}/2 |w|^2)"
        return BoundObjective(name, value, grad, False)
    if callable(spec) and not isinstance(spec, Objective):
        spec = Objective(getattr(spec, "__name__", "callable"), spec)
    if not isinstance(spec, Objective):
        raise TypeError(f"objective must be 'validation', 'loss', 'train', a callable f(w, batch) "
                        f"or an hgref.testing.Objective, got {type(spec).__name__}")
    from autograd import grad as _grad

    g = spec.grad or _grad(spec.value)
    return BoundObjective(spec.name, lambda t, w: float(spec.value(w, batch(t, seed))),
                          lambda t, w: g(w, batch(t, seed)), False)
