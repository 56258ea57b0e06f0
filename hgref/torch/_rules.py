"""Scalar learning-rate updates of :mod:`hgref.rules` on 0-d tensors (no host sync).

Each function takes the group's rule state (a dict of 0-d tensors on the parameters' device)
and the step's scalar hypergradient quantities, updates the state in place and returns
η_t. The formulas mirror the NumPy rules line by line:

* HD (Baydin et al. 2018; HD-momentum paper Alg. 1 and 2): ``h_t = −∇Obj(w_t)·d_{t−1}``;
  lop ``sgd``: η_t = η_{t−1} − β h_t; ``sgdn``: v ← μv + h, η_t = η_{t−1} − β(h + μv);
  ``adam``: bias-corrected moments of h, η_t = η_{t−1} − β m̂/(√v̂ + ε). η is clipped at 0
  (MARTHE Eq. 5).
* RTHO / MARTHE (MARTHE Eq. 5, 9–11, Algorithm 1, Appendix A): Δη_t = Z_t[w]·∇E(w_t),
  η_t = max(η_{t−1} − β_t Δη_t, 0); μ_t from h_μ (Appendix A), β_t adapted online (§4).
"""
from __future__ import annotations

import torch

__all__ = ["init_state", "hd_eta", "tangent_eta", "tangent_mu", "tangent_step", "needs_g1"]


def _zero(like):
    return torch.zeros((), dtype=like.dtype, device=like.device)


def init_state(rule, group, like):
    """Fresh rule state of one parameter group; ``like`` fixes device and dtype."""
    st = {"eta": torch.tensor(float(group["lr"]), dtype=like.dtype, device=like.device)}
    if rule == "hd":
        st.update(lop_v=_zero(like), lop_m=_zero(like), lop_count=0)
    elif rule in ("rtho", "marthe"):
        mu = group["mu"]
        st.update(delta=_zero(like), prev_delta=_zero(like), c=_zero(like),
                  mu=_zero(like) if mu == "adaptive" else torch.full_like(_zero(like), float(mu)),
                  beta=torch.full_like(_zero(like), float(group["beta0"] if rule == "marthe"
                                                          and group["adapt_beta"] else group["hyper_lr"])))
        if rule == "rtho":
            st["mu"].fill_(1.0)
    return st


def hd_eta(st, group, lop, h):
    """η_t of HD with learning-rate optimizer ``lop`` given the hypergradient h_t (0-d)."""
    beta = group["hyper_lr"]
    if lop == "sgd":
        step = h
    elif lop == "sgdn":
        mu = group["lop_momentum"]
        st["lop_v"].mul_(mu).add_(h)
        step = h + mu * st["lop_v"]
    else:
        b1, b2 = group["lop_betas"]
        st["lop_count"] += 1
        k = st["lop_count"]
        st["lop_m"].mul_(b1).add_(h, alpha=1 - b1)
        st["lop_v"].mul_(b2).addcmul_(h, h, value=1 - b2)
        step = (st["lop_m"] / (1 - b1 ** k)) / ((st["lop_v"] / (1 - b2 ** k)).sqrt() + group["lop_eps"])
    st["eta"] = torch.clamp(st["eta"] - beta * step, min=0.0)
    return st["eta"]


def tangent_eta(st, group, rule, delta, g1, t):
    """η_t of RTHO / MARTHE given Δη_t = Z_t[w]·∇E(w_t) and g'_1 = −d_{t−1}·∇E(w_t).

    Also sets μ_t (:func:`tangent_mu`) and β_t (:func:`tangent_step`), mirroring
    ``hgref.rules.marthe(variant="paper")``.
    """
    tangent_mu(st, group, rule, delta, g1, t)
    return tangent_step(st, group, rule, delta, t)


def needs_g1(rule, group):
    """Whether μ_t needs g'_1 = −d_{t−1}·∇E(w_t): MARTHE with adaptive μ only."""
    return rule == "marthe" and group["mu"] == "adaptive"


def tangent_mu(st, group, rule, delta, g1, t):
    """μ_t of MARTHE with adaptive μ (Appendix A): q̃ = clip(q / g'_1², 0, 1), μ_t = q̃^{1/(c+1)},
    c ← μ_{t−1}(1 + c). Independent of η_t and β_t, so it may follow them (the fused step)."""
    if needs_g1(rule, group) and t > 0:
        # q/h² = Δη_t h_t / h_t² = Δη_t / h_t (as hgref.rules.marthe; 0 when h_t = 0)
        nz = g1 != 0
        ratio = torch.where(nz, delta / torch.where(nz, g1, torch.ones_like(g1)), torch.zeros_like(g1))
        q_tilde = torch.clamp(ratio, 0.0, 1.0)
        mu_prev = st["mu"]
        st["mu"] = q_tilde ** (1.0 / (st["c"] + 1.0))
        st["c"] = mu_prev * (1.0 + st["c"])


def tangent_step(st, group, rule, delta, t):
    """β_t = max(β_{t−1} + β Δη_t Δη_{t−1}, 0) (MARTHE §4) and η_t = max(η_{t−1} − β_t Δη_t, 0).

    The "+" sign of the β update is the chain rule's (Algorithm 1 prints "−"; evidence in
    hgref.rules.marthe), β clipped at 0.
    """
    if rule == "marthe" and t > 0 and group["adapt_beta"]:
        st["beta"] = torch.clamp(st["beta"] + group["hyper_lr"] * delta * st["prev_delta"], min=0.0)
    st["delta"] = delta
    st["eta"] = torch.clamp(st["eta"] - st["beta"] * delta, min=0.0)
    st["prev_delta"] = delta
    return st["eta"]
