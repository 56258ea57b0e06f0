"""Adapters: how the checker drives a torch optimizer, and helpers that keep them ten lines.

A :class:`TorchAdapter` says how to build the optimizer for a case, where its estimate is, its
discount μ and the objective it differentiates; the call protocol is in
:mod:`hgref.testing.session`. Helpers:

* :func:`torch_kwargs` — ``case.config`` as the keyword arguments of a torch-style constructor
  (only those it accepts; :class:`Unsupported` when the case needs one it lacks);
* :func:`only` — raise :class:`Unsupported` outside the dynamics / group counts you support;
* :func:`from_lr_change` — read HD's h_t from the change it makes to ``group["lr"]``
  (η_applied = η_written − β Δη_t), for optimizers that keep h_t local (the original SGDHD);
* :func:`attribute` — read the estimate from an attribute or state entry;
* :func:`hgref_adapter` — hgref's own :class:`hgref.torch.HypergradientOptimizer`.

Example (a hypothetical ``SGDHD(params, lr, momentum, dampening, weight_decay, nesterov,
hypergrad_lr)`` whose h_t = g_t·d_{t−1} is local and moves lr by +β h_t)::

    from hgref.testing import TorchAdapter, from_lr_change, only, torch_kwargs

    def make(params, case):
        only(case, "sgd", "heavy_ball", "nesterov", groups=1)
        return SGDHD(params, hypergrad_lr=1e-3, **torch_kwargs(case, SGDHD))

    sgdhd = TorchAdapter(make, estimate=from_lr_change(1e-3), mu=0.0, objective="train")
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple, Optional

from .cases import Unsupported
from .session import default_estimate, default_step

__all__ = ["TorchAdapter", "torch_kwargs", "only", "from_lr_change", "attribute", "hgref_adapter",
           "default_estimate", "default_step"]


class TorchAdapter(NamedTuple):
    """How the checker drives one torch optimizer (module docstring)."""

    make_optimizer: Callable                # (params, case) -> optimizer; params: tensors or group dicts
    estimate: Optional[Callable] = None     # (optimizer[, written]) -> Δη_t (float or one per group)
    mu: Any = 0.0                           # discount, or (optimizer) -> μ_t of that step
    step: Optional[Callable] = None         # (optimizer, closure, objective_closure) -> None
    name: str = ""
    objective: Any = None                   # what Δη_t differentiates (None: "validation")


_SGD_KEYS = {"lr": None, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0}
_ADAM_KEYS = {"lr": None, "betas": None, "eps": None, "weight_decay": 0.0, "eps_root": 0.0}


def torch_kwargs(case, optimizer_class=None):
    """``case.config`` as torch.optim keyword arguments: ``lr, momentum, dampening, nesterov,
    weight_decay`` (SGD family) or ``lr, betas, eps, weight_decay[, eps_root]`` (Adam family).

    With ``optimizer_class`` (or any callable), only the keywords its signature accepts are
    kept, and :class:`Unsupported` is raised when the case needs a setting it does not accept
    (e.g. dampening 0.5 for a class without ``dampening``). ``eps_root`` appears only when it
    is not 0.
    """
    cfg = case.config
    keys = _ADAM_KEYS if case.dynamics in ("adam", "adamw") else _SGD_KEYS
    out = {k: cfg[k] for k in keys if not (k == "eps_root" and not cfg[k])}
    if optimizer_class is None:
        return out
    try:
        accepted = inspect.signature(optimizer_class).parameters
    except (TypeError, ValueError):
        return out
    if any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        return out
    kept = {}
    for k, v in out.items():
        if k in accepted:
            kept[k] = v
        elif keys[k] is None or v != keys[k]:
            name = getattr(optimizer_class, "__name__", str(optimizer_class))
            raise Unsupported(f"{name} takes no {k!r}; case {case.name} needs {k}={v!r}")
    return kept


def only(case, *dynamics, groups=None):
    """Raise :class:`Unsupported` unless ``case.dynamics`` is one of ``dynamics`` (all if none
    given) and the case has at most ``groups`` param groups."""
    if dynamics and case.dynamics not in dynamics:
        raise Unsupported(f"runs {', '.join(dynamics)} only, not {case.dynamics}")
    if groups is not None and case.n_groups > groups:
        raise Unsupported(f"supports {groups} param group(s), case {case.name} has {case.n_groups}")


def from_lr_change(beta, sign=1.0):
    """Estimate ``sign·(η_written − group["lr"] after the step) / β`` per group: HD's Δη_t for
    an optimizer that moves η by −β Δη_t inside ``step`` (``sign=-1`` if it moves by +β Δη_t).

    Exact to ulp(η)/β: with η ~ 0.3 and β = 1e-3 about 3e-14 absolute. The driver measures the
    applied η from the weights (declared mode) or reads it from ``group["lr"]`` (own mode)."""
    if not beta:
        raise ValueError("beta: from_lr_change needs the hyper-learning rate beta != 0 the optimizer uses")

    def estimate(optimizer, written):
        return [sign * (w - float(g["lr"])) / beta for g, w in zip(optimizer.param_groups, written)]
    estimate.__name__ = f"from_lr_change(beta={beta:g})"
    return estimate


def attribute(name, sign=1.0):
    """Estimate read as ``sign·optimizer.<name>`` (a float or one per group)."""
    def estimate(optimizer):
        value = getattr(optimizer, name)
        return [sign * float(v) for v in value] if isinstance(value, (list, tuple)) else sign * float(value)
    estimate.__name__ = f"attribute({name!r})"
    return estimate


def hgref_adapter(rule="rtho", *, mu=None, lop="sgd", objective="validation", hyper_lr=0.0) -> TorchAdapter:
    """Adapter for :class:`hgref.torch.HypergradientOptimizer` (estimate only when
    ``hyper_lr`` = 0), any dynamics and param groups.

    ``rule``: ``"hd"`` (μ = 0), ``"rtho"`` (μ = 1) or ``"marthe"`` with a fixed ``mu`` or
    ``mu="adaptive"`` (μ_t read from ``lr_history(k, "mu")``); ``objective``: ``"validation"``
    or ``"train"`` (HD's default in hgref.rules).
    """
    if rule not in ("hd", "rtho", "marthe"):
        raise ValueError(f"unknown rule {rule!r}; accepted values: 'hd', 'rtho', 'marthe'")
    if rule == "marthe" and mu is None:
        raise ValueError("mu: pass MARTHE's discount, a number in [0, 1] or 'adaptive'")
    discount = {"hd": 0.0, "rtho": 1.0}.get(rule, mu)
    if discount == "adaptive":
        def discount(optimizer):
            return [float(optimizer.lr_history(k, "mu")[-1]) for k in range(len(optimizer.param_groups))]

    def make_optimizer(params, case):
        from ..torch import HypergradientOptimizer
        c = dict(case.config)
        for k in ("nesterov", "groups"):
            c.pop(k, None)
        extra = {"lop": lop} if rule == "hd" else {}
        if rule == "marthe":
            extra.update(mu=mu, adapt_beta=False)
        return HypergradientOptimizer(params, c.pop("lr"), c.pop("dynamics"), rule, hyper_lr=hyper_lr,
                                      objective=objective, **c, **extra)

    name = f"hgref.torch {rule}" + (f" mu={mu}" if rule == "marthe" else "")
    return TorchAdapter(make_optimizer, default_estimate, discount, default_step, name,
                        None if objective == "validation" else objective)
