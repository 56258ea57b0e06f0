"""Deterministic test functions of the MARTHE paper (footnote 5, Fig. 1) and a quadratic.

For these problems E = L and there are no minibatches (``batch`` returns ``None``).
"""
from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from .._checks import check_scalar, check_vector
from .base import make_problem

__all__ = ["beale", "bukin", "quadratic", "BEALE_W0", "BUKIN_W0", "BUKIN_EPS"]

#: Default start on Beale: on the plateau left of the minimum (3, 0.5), where small
#: gradients make HD's one-step hypergradient small (MARTHE §3, Fig. 1 left). With plain GD,
#: η_0 = 1e-3, 500 steps and β ∈ {1e-8 … 1}: RTHO's best objective is below HD's for every
#: β that does not diverge (benchmarks/toy_rules.py, results/toy_rules.json).
BEALE_W0 = (-1.0, 1.5)
#: Default start on smoothed Bukin N.6: away from the valley y = 0.01 x (Fig. 1 right).
#: With ε = BUKIN_EPS, η_0 = 1e-2, GD, 500 steps: HD's best objective is below RTHO's for
#: every β ∈ {1e-8 … 1} (RTHO overshoots the sharp valley; benchmarks/toy_rules.py).
BUKIN_W0 = (-5.0, 2.0)
#: Default smoothing ε of Bukin: small, so the valley is sharp (minimum √(√ε + ε) ≈ 0.0316).
BUKIN_EPS = 1e-6


def beale(w0=BEALE_W0):
    """Beale: L(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)².

    Global minimum L = 0 at (3, 0.5).

    >>> float(beale().objective(np.array([3.0, 0.5])))
    0.0
    """
    def loss(w, batch=None):
        x, y = w[0], w[1]
        return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2
                + (2.625 - x + x * y ** 3) ** 2)

    return make_problem("beale", check_vector("w0", w0, size=2), loss,
                        info={"w0": list(map(float, w0))})


def bukin(eps=BUKIN_EPS, w0=BUKIN_W0):
    """Smoothed, simplified Bukin N.6 (MARTHE footnote 5):
    L(x, y) = √(((y − 0.01x)² + ε)^{1/2} + ε), ε > 0.

    Minimisers: the valley y = 0.01 x, where L = √(√ε + ε).
    """
    eps = check_scalar("eps", eps, strict=True)

    def loss(w, batch=None):
        r = w[1] - 0.01 * w[0]
        return anp.sqrt(anp.sqrt(r ** 2 + eps) + eps)

    return make_problem("bukin", check_vector("w0", w0, size=2), loss,
                        info={"w0": list(map(float, w0)), "eps": eps})


def quadratic(hessian, w0, center=None):
    """L(w) = ½ (w − c)ᵀ H (w − c) with symmetric H: the closed-form test problem.

    With SGD, w_T − c = Π_t (I − η_t H) (w_0 − c), so the hypergradient has a closed
    form (used by the oracle tests).
    """
    H = np.asarray(hessian, dtype=float)
    w0 = check_vector("w0", w0)
    if H.shape != (w0.size, w0.size) or not np.allclose(H, H.T):
        raise ValueError(f"hessian must be a symmetric ({w0.size}, {w0.size}) matrix, got shape {H.shape}")
    c = np.zeros_like(w0) if center is None else check_vector("center", center, size=w0.size)

    def loss(w, batch=None):
        r = w - c
        return 0.5 * anp.dot(r, anp.dot(H, r))

    def value_and_grad(w, batch=None):
        r = w - c
        return 0.5 * float(r @ H @ r), H @ r

    def grad_and_hvp(w, batch, v):
        value, g = value_and_grad(w)
        return value, g, H @ v

    return make_problem("quadratic", w0, loss, value_and_grad=value_and_grad,
                        grad_and_hvp=grad_and_hvp, objective_grad=lambda w: H @ (w - c),
                        info={"hessian": H.tolist(), "center": c.tolist()})
