"""Shared helpers (and an independent NumPy re-derivation of the rules) for tests/test_torch_*.py.

The reference rules run through :func:`hgref.train.run` and build the tangent with
:meth:`hgref.train.Observation.linearize` / :func:`hgref.linearize.tangent_update` (the
autograd-verified A_t, B_t). They implement the math of the NumPy rules (HD, RTHO, MARTHE)
until ``hgref.rules.hd/rtho/marthe`` land on this branch; the torch tests then compare
against those instead (see the torch bridge report).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from hgref.linearize import tangent_update
from hgref.rules import Rule

torch.set_num_threads(1)   # tiny models: threads only add contention on the 2-core CI


class _RefState(NamedTuple):
    eta: float
    z: np.ndarray | None
    lop_v: float
    lop_m: float
    lop_count: int
    mu: float
    c: float
    beta: float
    prev_delta: float


def _objective_grad(obs, objective):
    if objective == "validation":
        return obs.objective_grad()
    wd = obs.dynamics.hyperparams.get("weight_decay", 0.0)
    return obs.grad() + wd * obs.w


def reference_rule(rule, hyper_lr, *, lop="sgd", lop_momentum=0.9, lop_betas=(0.9, 0.999),
                   lop_eps=1e-8, mu="adaptive", adapt_beta=True, beta0=0.0, objective=None):
    """A :class:`hgref.rules.Rule` with the math of :mod:`hgref.torch._rules`."""
    objective = objective or ("train" if rule == "hd" else "validation")
    tangent = rule in ("rtho", "marthe")

    def init(eta0, state):
        n = sum(np.size(x) for x in state[:-1])
        mu0 = 1.0 if rule == "rtho" else (0.0 if mu == "adaptive" else float(mu))
        beta = beta0 if (rule == "marthe" and adapt_beta) else hyper_lr
        return _RefState(float(eta0), np.zeros(n) if tangent else None, 0.0, 0.0, 0, mu0, 0.0,
                         beta, 0.0)

    def update(rs, obs):
        t = obs.t
        if rule == "hd":
            if t == 0:
                return rs.eta, rs, {"hypergradient": 0.0}
            h = -float(_objective_grad(obs, objective) @ obs.prev_direction)
            v, m, k = rs.lop_v, rs.lop_m, rs.lop_count
            if lop == "sgd":
                step = h
            elif lop == "sgdn":
                v = lop_momentum * v + h
                step = h + lop_momentum * v
            else:
                b1, b2 = lop_betas
                k += 1
                m = b1 * m + (1 - b1) * h
                v = b2 * v + (1 - b2) * h * h
                step = (m / (1 - b1 ** k)) / (math.sqrt(v / (1 - b2 ** k)) + lop_eps)
            eta = max(rs.eta - hyper_lr * step, 0.0)
            return eta, rs._replace(eta=eta, lop_v=v, lop_m=m, lop_count=k), {"hypergradient": h}
        d = obs.w.shape[0]
        mu_t, c, beta = rs.mu, rs.c, rs.beta
        delta = 0.0
        if t > 0:
            og = _objective_grad(obs, objective)
            delta = float(rs.z[:d] @ og)
            if rule == "marthe":
                if mu == "adaptive":
                    g1 = -float(obs.prev_direction @ og)
                    q_tilde = min(max(delta / g1, 0.0), 1.0) if g1 != 0 else 0.0
                    mu_t, c = q_tilde ** (1.0 / (rs.c + 1.0)), rs.mu * (1.0 + rs.c)
                if adapt_beta:
                    beta = max(rs.beta + hyper_lr * delta * rs.prev_delta, 0.0)
        eta = max(rs.eta - beta * delta, 0.0)
        step, tan = obs.linearize(rs.z)
        z = tangent_update(rs.z, step, tan, eta, mu=mu_t)
        info = {"hypergradient": delta, "mu": mu_t, "beta": beta}
        return eta, rs._replace(eta=eta, z=z, mu=mu_t, c=c, beta=beta, prev_delta=delta), info

    return Rule(f"ref-{rule}", init, update, {})


def torch_run(tp, steps, seed=0, *, opt=None, model=None, start=0, **opt_kwargs):
    """Train ``tp``'s MLP with :class:`HypergradientOptimizer`; returns (model, optimizer)."""
    from hgref.torch import HypergradientOptimizer

    model = model or tp.model()
    opt = opt or HypergradientOptimizer(model.flat_parameters(), **opt_kwargs)
    tangent = opt.rule in ("rtho", "marthe")
    for t in range(start, start + steps):
        X, y = tp.batch(t, seed)

        def closure():
            opt.zero_grad()
            loss = tp.loss(model, X, y)
            loss.backward(create_graph=tangent)
            return loss

        needs_e = opt.objective == "validation"
        opt.step(closure, objective_closure=(lambda: tp.objective(model)) if needs_e else None)
    return model, opt
