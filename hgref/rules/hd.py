"""Hypergradient descent (HD; Baydin et al., 2018) with SGD, SGDN or Adam as the
learning-rate optimizer ("lop"; seed paper *Hypergradient based optimization methods*).

At step t the one-step hypergradient is (seed paper §2.1; MARTHE Eq. 6, Δ^HD)::

    h_t = ∇Obj(w_t) · ∂w_t/∂η_{t−1} = −∇Obj(w_t) · d_{t−1},      h_0 = 0,

exact for every dynamics of :mod:`hgref.dynamics`, since w_t = w_{t−1} − η_{t−1} d_{t−1}
and d_{t−1} does not depend on η_{t−1}. With g_t = ∇Obj(w_t) this is the seed paper's
SGD −g_t·g_{t−1}, SGDN −g_t·(g_{t−1} + μ v_{t−1}) and Adam −g_t·m̂_{t−1}/(√v̂_{t−1} + ε)
(tests/test_rules_hd.py checks h_t = ∂Obj(w_t)/∂η_{t−1} against the oracle for every
dynamics, weight decay included).

``objective``:
  ``"train"``: Obj = L_t + λ/2‖w‖², the loss the dynamics minimises (λ = the dynamics'
  ``weight_decay``), so ∇Obj(w_t) = ∇L_t(w_t) + λ w_t. Decision: weight decay belongs in
  g_t. Evidence: only with λ w_t does h_t equal the oracle's ∂(L + λ/2‖w‖²)(w_t)/∂η_{t−1}
  (test ``test_train_objective_includes_weight_decay``); it is also what torch's
  ``weight_decay`` gradient (and Baydin et al.'s released SGD-HD) uses.
  Under AdamW (decoupled decay, ``w ← w(1 − ηλ) − η m̂/(√v̂+ε)``) λ/2‖w‖² is not part of
  the training loss: Obj = L_t and ∇Obj(w_t) = ∇L_t(w_t)
  (:func:`hgref.dynamics.l2_weight_decay` is 0). Decision: "train" is the loss whose
  gradient the dynamics is fed — ∇L_t + λw for coupled decay, ∇L_t for AdamW, i.e. torch's
  ``p.grad`` in both. Evidence (test ``test_train_objective_under_adamw_is_the_loss``):
  h_t equals the oracle's ∂L_t(w_t)/∂η_{t−1} (``prefix_hypergradients(objective_grad=)``)
  under AdamW to 1e-10, while the rejected ∂(L_t + λ/2‖w‖²)(w_t)/∂η_{t−1} differs from it by
  λ w_t·d_{t−1}, more than 1e-3 relative (MNIST MLP 784-8-10, minibatches, λ = 0.1).
  ``"validation"``: Obj = E, ∇E(w_t) = ``obs.objective_grad()`` (MARTHE's setting).

Learning-rate update (η_0 = eta0; h_t enters from t = 1 on):
  ``"sgd"``:  η_t = η_{t−1} − β h_t                                   (Baydin et al.)
  ``"sgdn"``: v_t = μ v_{t−1} + h_t;  η_t = η_{t−1} − β (h_t + μ v_t)   (seed Algorithm 1)
  ``"adam"``: m_k, v_k moments of h with bias correction, k = number of hypergradients
              seen (k = t for t ≥ 1);  η_t = η_{t−1} − β m̂_k/(√v̂_k + ε)  (seed Algorithm 2)
Every lop is followed by η_t ← max(η_t, 0) (MARTHE Eq. 5: η may reach 0 — "early
stopping" — never go negative); the lop state (velocity, moments) is not altered by
the clip.

>>> from hgref import problems, dynamics, run
>>> tr = run(problems.bukin(), dynamics.sgd(), hd(1e-4), 0.01, 20)
>>> bool(tr.etas[0] == 0.01 and tr.diagnostics["hd"][0] == 0.0)
True
"""
from __future__ import annotations

import math
from typing import NamedTuple

from .._checks import check_choice, check_scalar, check_unit_interval
from ..dynamics import l2_weight_decay
from .base import Rule

__all__ = ["hd", "HDState", "LOPS", "OBJECTIVES", "objective_gradient", "one_step_hypergradient",
           "clip_eta"]

LOPS = ("sgd", "sgdn", "adam")
OBJECTIVES = ("train", "validation")


class HDState(NamedTuple):
    eta: float        # η_{t−1}, the learning rate of the previous step
    velocity: float   # lop "sgdn": hypergradient velocity v_{t−1}
    m: float          # lop "adam": first moment of h (not bias-corrected)
    v: float          # lop "adam": second moment of h (not bias-corrected)
    count: int        # hypergradients seen so far (Adam bias correction)


def objective_gradient(obs, objective):
    """∇Obj(w_t): ∇L_t(w_t) + λ w_t (``"train"``; λ = 0 under AdamW) or ∇E(w_t) (``"validation"``)."""
    if objective == "validation":
        return obs.objective_grad()
    wd = l2_weight_decay(obs.dynamics)
    return obs.grad() + wd * obs.w if wd else obs.grad()


def clip_eta(eta):
    """max(η, 0) for finite η; a non-finite η is passed on so the loop reports divergence."""
    return max(eta, 0.0) if math.isfinite(eta) else eta


def one_step_hypergradient(grad_obj, prev_direction):
    """h_t = −∇Obj(w_t)·d_{t−1} (0 at t = 0, when there is no previous step)."""
    if prev_direction is None:
        return 0.0
    return -float(grad_obj @ prev_direction)


def hd(beta, lop="sgd", *, momentum=0.9, b1=0.9, b2=0.999, eps=1e-8, objective="train"):
    """HD rule: η_t = max(lop(η_{t−1}, h_t), 0) with h_t = −∇Obj(w_t)·d_{t−1}.

    Args:
      beta: hyper-learning rate β ≥ 0.
      lop: learning-rate optimizer, ``"sgd"``, ``"sgdn"`` or ``"adam"`` (module docstring).
      momentum: μ ∈ [0, 1] of the ``"sgdn"`` lop.
      b1, b2, eps: Adam constants of the ``"adam"`` lop (b1, b2 ∈ [0, 1)).
      objective: ``"train"`` (∇L_t + λw) or ``"validation"`` (∇E).

    Returns:
      A :class:`Rule`; info per step: ``"hypergradient"`` = ``"hd"`` = h_t.
    """
    beta = check_scalar("beta", beta)
    check_choice("lop", lop, LOPS)
    check_choice("objective", objective, OBJECTIVES)
    momentum = check_unit_interval("momentum", momentum)
    for name, b in (("b1", b1), ("b2", b2)):
        if check_unit_interval(name, b) >= 1:
            raise ValueError(f"{name} must lie in [0, 1), got {b}")
    eps = check_scalar("eps", eps)

    def init(eta0, state):
        return HDState(float(check_scalar("eta0", eta0)), 0.0, 0.0, 0.0, 0)

    def update(rs, obs):
        if obs.prev_direction is None:
            return rs.eta, rs, {"hypergradient": 0.0, "hd": 0.0}
        h = one_step_hypergradient(objective_gradient(obs, objective), obs.prev_direction)
        velocity, m, v, count = rs.velocity, rs.m, rs.v, rs.count + 1
        if lop == "sgd":
            step = h
        elif lop == "sgdn":
            velocity = momentum * velocity + h
            step = h + momentum * velocity
        else:
            m = b1 * m + (1 - b1) * h
            v = b2 * v + (1 - b2) * h * h
            step = (m / (1 - b1 ** count)) / (math.sqrt(v / (1 - b2 ** count)) + eps)
        eta = clip_eta(rs.eta - beta * step)
        return eta, HDState(eta, velocity, m, v, count), {"hypergradient": h, "hd": h}

    hp = {"beta": beta, "lop": lop, "objective": objective}
    if lop == "sgdn":
        hp["momentum"] = momentum
    elif lop == "adam":
        hp.update(b1=b1, b2=b2, eps=eps)
    return Rule(f"hd-{lop}" if lop != "sgd" else "hd", init, update, hp)
