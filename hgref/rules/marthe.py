"""MARTHE (Donini et al., MARTHE Algorithm 1, Eq. 9–11, Appendix A) and RTHO (Franceschi
et al., 2017; MARTHE Eq. 5–6).

One step t of the rule, with x_t the packed dynamics state (:func:`hgref.dynamics.pack`)::

    Δη_t    = Z_t[:d] · ∇Obj(w_t)                        (Eq. 9–11; Z_0 = 0, so Δη_0 = 0)
    h_t     = −∇Obj(w_t) · d_{t−1}                       (one-step HD hypergradient g'_1)
    β_t     = max(β_{t−1} + beta·Δη_t·Δη_{t−1}, 0)       (adapt_beta; β_0 = beta0)
    η_t     = max(η_{t−1} − β_t Δη_t, 0)                 (Eq. 5; η_0 = eta0)
    μ_t     = q̃_t^{1/(c_{t−1}+1)},  c_t = μ_{t−1}(1 + c_{t−1})   (adaptive μ; μ_0 = c_0 = 0)
    Z_{t+1} = μ_t A_t Z_t + B_t                          (Eq. 9 over the whole state x_t)

with q_t = Δη_t·h_t (Eq. 10) and q̃_t = clip(q_t/h_t², 0, 1) = clip(Δη_t/h_t, 0, 1)
(Appendix A; q̃_t = 0 when h_t = 0). A non-finite μ_t or β_t makes η_t NaN, so the loop
reports the divergence at that step instead of carrying NaN on. Time indices: the paper computes μ_{t+1}, β_{t+1} at the end of its iteration t
from Δη_{t+1} = Z_{t+1}·∇E(w_{t+1}); the loop here shows the rule w_{t+1} at its step
t+1, where the same numbers are computed *before* choosing η_{t+1} — identical values.
Hence Δη_t = Σ_{i<t} (Π_{j=i+1}^{t−1} μ_j) ∂Obj(w_t)/∂η_i (Eq. 11), μ ≡ 0 gives HD's
h_t, μ ≡ 1 RTHO's accumulated hypergradient (tests check both against the oracle).
A_t Z_t and the gradient of the step come from one forward-over-reverse pass
(``obs.linearize``); with Obj = L that pass also gives ∇Obj.

**Sign of the β update.** Algorithm 1 prints β_{t+1} = β_t − beta·Δη_{t+1}·Δη_t. The
chain rule gives the opposite sign: η_t = η_{t−1} − β_t Δη_t, so ∂η_t/∂β_t = −Δη_t and
∂f/∂β_t = −Δη_t·∂f/∂η_t ≈ −Δη_t·Δη_{t+1}; gradient descent on β is therefore
β_{t+1} = β_t + beta·Δη_{t+1}·Δη_t (β grows while successive hypergradients agree, as in
HD's own rule one level down). We use "+". Evidence (tests/test_rules_marthe.py::
test_beta_sign_matches_oracle): (a) with the oracle, central finite differences of f_T
under a perturbation of β_t alone equal −Δη_t·J[T, t] (J[T, t] = exact ∂f/∂η_t), i.e.
the chain-rule factor ∂η_t/∂β_t = −Δη_t that fixes the sign; (b) end to end, "+"
reaches a lower E(w_T) than the printed "−" (tests/test_rules_marthe.py::
test_beta_sign_end_to_end_on_beale, Beale/Adam, 150 steps): from β_0 = 0 the printed
sign pushes β_t below 0 whenever successive hypergradients agree, the clip holds it at 0,
and β_t ≡ 0, η_t ≡ η_0 — the printed rule never adapts. (On Bukin with ε = 1e-6 the runs
are chaotic, ‖∇f_T‖ ~ 1e90 over 500 steps, so end points are not compared there.)
β is clipped at 0: a negative hyper-learning rate
would move η *up* its own hypergradient estimate; the released code clips too.

``variant="released"`` follows the authors' code (awslabs/adatune, ``mu_sgd.py``,
``mu_adam.py``), which differs from the paper in: (1) hyper-learning rate
β_t = max(β_{t−1} + beta·Δη_{t−1}·η_{t−1}, 0) (the released update runs after η, so
step t uses the value computed at step t−1); (2) μ normaliser
q̃_t = clip(η_t / (∇Obj(w_t)·g_{t−1}), 0, 1) with g_{t−1} = ∇L_{t−1}(w_{t−1}) (no weight
decay); (3) counter c_t = c_{t−1}·sign(μ_{t−1}) + μ_{t−1}, then μ_t = q̃_t^{1/(c_t+1)}
(new c in the exponent); (4) optional elementwise clipping: ``grad_clip`` clips ∇Obj and
g_{t−1}, ``hvp_clip`` clips the Hessian-vector product inside A_t Z_t. Not reproduced:
the released code starts adaptive μ from a negative sentinel (here μ_0 = 0, c_0 = 0),
does not clip η at 0 (here it is, as the loop rejects η < 0), uses the *initial* η in
its hand-written A_t (SGD) and an approximate Adam Jacobian (here the exact A_t of
:mod:`hgref.linearize`), and clips the gradient of the training step itself (here the
dynamics is not the rule's to change: clip in the problem for that).

>>> from hgref import problems, dynamics, run
>>> tr = run(problems.bukin(), dynamics.sgd(), marthe(1e-3), 0.01, 30)
>>> bool(((tr.diagnostics["mu"] >= 0) & (tr.diagnostics["mu"] <= 1)).all())
True
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from .._checks import check_choice, check_scalar, check_unit_interval
from ..linearize import tangent_update
from .base import Rule
from .hd import OBJECTIVES, clip_eta, objective_gradient, one_step_hypergradient

__all__ = ["marthe", "rtho", "MartheState", "VARIANTS"]

VARIANTS = ("paper", "released")


class MartheState(NamedTuple):
    eta: float                      # η_{t−1}
    z: np.ndarray                   # shape=(n,) tangent Z_t over the packed state x_t
    mu: float                       # μ_{t−1} (adaptive: the discount that formed Z_t)
    c: float                        # c_{t−1}, multiplicative counter (effective horizon)
    beta: float                     # β_{t−1}, the hyper-learning rate of the last step
    prev_hypergradient: float       # Δη_{t−1}
    prev_grad: Optional[np.ndarray]  # shape=(d,) released variant: g_{t−1} (clipped); else None


def _clip01(x):
    return min(max(x, 0.0), 1.0) if math.isfinite(x) else x


def _clipped_hvp_problem(problem, bound):
    """The problem with elementwise-clipped Hessian-vector products (released code)."""
    grad_and_hvp = problem.grad_and_hvp

    def clipped(w, batch, v):
        loss, g, hv = grad_and_hvp(w, batch, v)
        return loss, g, np.clip(hv, -bound, bound)

    return problem._replace(grad_and_hvp=clipped)


def _check_clip(name, value, variant):
    if value is None:
        return None
    if variant != "released":
        raise ValueError(f"{name} is an option of variant='released' only, got variant={variant!r}")
    return check_scalar(name, value, strict=True)


def marthe(beta, mu="adaptive", *, adapt_beta=True, beta0=0.0, variant="paper",
           objective="validation", grad_clip=None, hvp_clip=None):
    """MARTHE rule (module docstring: Algorithm 1 with the corrected β sign).

    Args:
      beta: with ``adapt_beta``, the step size of the hyper-learning-rate update (the
        paper's β, the released code's α); without, the fixed hyper-learning rate β.
      mu: a fixed discount μ ∈ [0, 1] or ``"adaptive"`` (Appendix A heuristic h_μ).
      adapt_beta: adapt β_t online (β_0 = ``beta0``) or keep β_t ≡ ``beta``.
      beta0: initial hyper-learning rate β_0 ≥ 0 when ``adapt_beta`` (paper default 0).
      variant: ``"paper"`` or ``"released"`` (authors' code; module docstring).
      objective: ``"validation"`` (∇E) or ``"train"`` (∇L_t + λw).
      grad_clip, hvp_clip: released variant only: elementwise bounds (> 0) or None.

    Returns:
      A :class:`Rule`; info per step: ``"hypergradient"`` Δη_t, ``"hd"`` h_t,
      ``"mu"`` μ_t (forms Z_{t+1}), ``"beta"`` β_t (used for η_t).
    """
    return _marthe(beta, mu, adapt_beta, beta0, variant, objective, grad_clip, hvp_clip, 1.0)


def _marthe(beta, mu, adapt_beta, beta0, variant, objective, grad_clip, hvp_clip, beta_sign):
    """:func:`marthe` with the sign of the paper-variant β update as a parameter
    (``beta_sign=-1`` is Algorithm 1 as printed; used only as evidence for the "+")."""
    beta = check_scalar("beta", beta)
    if isinstance(mu, str):
        check_choice("mu", mu, ("adaptive",))
    else:
        mu = check_unit_interval("mu", mu)
    beta0 = check_scalar("beta0", beta0)
    check_choice("variant", variant, VARIANTS)
    check_choice("objective", objective, OBJECTIVES)
    if not isinstance(adapt_beta, bool):
        raise TypeError(f"adapt_beta must be True or False, got {adapt_beta!r}")
    grad_clip = _check_clip("grad_clip", grad_clip, variant)
    hvp_clip = _check_clip("hvp_clip", hvp_clip, variant)
    adaptive_mu = mu == "adaptive"
    released = variant == "released"

    def init(eta0, state):
        eta0 = check_scalar("eta0", eta0)
        n = state.w.shape[0] * (len(state) - 1)
        return MartheState(eta0, np.zeros(n), 0.0 if adaptive_mu else mu, 0.0,
                           beta0 if adapt_beta else beta, 0.0, None)

    def update(rs, obs):
        surrogate = _clipped_hvp_problem(obs.problem, hvp_clip) if hvp_clip else None
        step, tangent = obs.linearize(rs.z, surrogate)     # also the step's gradient
        grad_obj = objective_gradient(obs, objective)
        if grad_clip:
            grad_obj = np.clip(grad_obj, -grad_clip, grad_clip)
        d = grad_obj.shape[0]
        dEta = float(rs.z[:d] @ grad_obj)                   # Δη_t
        h = one_step_hypergradient(grad_obj, obs.prev_direction)
        eta, beta_t, mu_t, c_t = rs.eta, rs.beta, rs.mu, rs.c
        if obs.t > 0:
            if released:
                if adapt_beta:
                    beta_t = max(rs.beta + beta * rs.prev_hypergradient * rs.eta, 0.0)
                eta = clip_eta(rs.eta - beta_t * dEta)
                if adaptive_mu:
                    denom = float(grad_obj @ rs.prev_grad)
                    q_norm = eta / denom if denom != 0 else (1.0 if eta > 0 else 0.0)
                    c_t = rs.c * float(np.sign(rs.mu)) + rs.mu
                    mu_t = _clip01(q_norm) ** (1.0 / (c_t + 1.0))
            else:
                if adapt_beta:
                    beta_t = max(rs.beta + beta_sign * beta * dEta * rs.prev_hypergradient, 0.0)
                eta = clip_eta(rs.eta - beta_t * dEta)
                if adaptive_mu:
                    # q/h² = Δη_t h_t / h_t² = Δη_t / h_t (no overflow of the square).
                    q_tilde = _clip01(dEta / h) if h != 0 else 0.0   # Eq. 10, App. A
                    mu_t = q_tilde ** (1.0 / (rs.c + 1.0))
                    c_t = rs.mu * (1.0 + rs.c)
        if not (math.isfinite(mu_t) and math.isfinite(beta_t)):
            eta = math.nan        # the loop reports the divergence at this step
        z = tangent_update(rs.z, step, tangent, eta, mu=mu_t)   # Z_{t+1} = μ_t A_t Z_t + B_t
        prev_grad = None
        if released:
            prev_grad = np.clip(step.grad, -grad_clip, grad_clip) if grad_clip else step.grad
        new = MartheState(eta, z, mu_t, c_t, beta_t, dEta, prev_grad)
        return eta, new, {"hypergradient": dEta, "hd": h, "mu": mu_t, "beta": beta_t}

    hp = {"beta": beta, "mu": mu, "adapt_beta": adapt_beta, "beta0": beta0, "variant": variant,
          "objective": objective, "grad_clip": grad_clip, "hvp_clip": hvp_clip}
    return Rule("marthe", init, update, hp)


def rtho(beta, *, objective="validation"):
    """RTHO (Franceschi et al., 2017; MARTHE Eq. 5–6): MARTHE with μ ≡ 1 and fixed β,
    η_t = max(η_{t−1} − β Δη_t, 0) with Δη_t = Σ_{i<t} ∂Obj(w_t)/∂η_i."""
    rule = marthe(beta, 1.0, adapt_beta=False, objective=objective)
    return rule._replace(name="rtho", hyperparams={"beta": rule.hyperparams["beta"],
                                                   "objective": objective})
