"""The rule interface: an online learning-rate rule is ``Rule(init, update)``.

``init(eta0, state) -> rule_state`` and ``update(rule_state, obs) -> (eta_t, rule_state,
info)``, where ``obs`` is a :class:`hgref.train.Observation` of step t and ``info`` a dict
of scalar diagnostics (hypergradient estimate Δη_t, μ_t, β_t, ...) that
:func:`hgref.train.run` records per step. Hyper-hyperparameters are closure arguments,
everything that changes lives in the (NamedTuple) rule state — as in optax.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

__all__ = ["Rule"]


class Rule(NamedTuple):
    """An online learning-rate rule (see module docstring)."""

    name: str
    init: Callable
    update: Callable
    hyperparams: dict
