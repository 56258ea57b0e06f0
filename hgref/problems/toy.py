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

    def grad_and_hvp(w, batch, v):
        # L = Σ_i r_i², r_i = c_i − x + x yⁱ: ∇L = Σ 2 r_i ∇r_i, ∇²L = Σ 2(∇r_i ∇r_iᵀ + r_i ∇²r_i)
        x, y = np.float64(w[0]), np.float64(w[1])  # NumPy floats: overflow gives inf, not an exception
        value, g, H = 0.0, np.zeros(2), np.zeros((2, 2))
        for i, c in ((1, 1.5), (2, 2.25), (3, 2.625)):
            r = c - x + x * y ** i
            dr = np.array([y ** i - 1.0, i * x * y ** (i - 1)])
            d2r = np.array([[0.0, i * y ** (i - 1)], [i * y ** (i - 1), i * (i - 1) * x * y ** max(i - 2, 0)]])
            value += r * r
            g += 2 * r * dr
            H += 2 * (np.outer(dr, dr) + r * d2r)
        return value, g, (H @ v if v is not None else None)

    return _closed_form("beale", w0, loss, grad_and_hvp, {"w0": list(map(float, w0))})


def bukin(eps=BUKIN_EPS, w0=BUKIN_W0):
    """Smoothed, simplified Bukin N.6 (MARTHE footnote 5):
    L(x, y) = √(((y − 0.01x)² + ε)^{1/2} + ε), ε > 0.

    Minimisers: the valley y = 0.01 x, where L = √(√ε + ε).
    """
    eps = check_scalar("eps", eps, strict=True)

    def loss(w, batch=None):
        r = w[1] - 0.01 * w[0]
        return anp.sqrt(anp.sqrt(r ** 2 + eps) + eps)

    u = np.array([-0.01, 1.0])  # ∇r

    def grad_and_hvp(w, batch, v):
        # L = f(r), s = √(r² + ε), f = √(s + ε): f' = r/(2fs), f'' = (2fs − r²/f − 2fr²/s)/(4f²s²)
        r = np.float64(w[1] - 0.01 * w[0])
        s = np.sqrt(r * r + eps)
        f = np.sqrt(s + eps)
        d1 = r / (2 * f * s)
        d2 = (2 * f * s - r * r / f - 2 * f * r * r / s) / (4 * f * f * s * s)
        return f, d1 * u, (d2 * (u @ v) * u if v is not None else None)

    return _closed_form("bukin", w0, loss, grad_and_hvp, {"w0": list(map(float, w0)), "eps": eps})


def _closed_form(name, w0, loss, grad_and_hvp, info):
    """A deterministic problem whose derivatives are written out (autograd's HVP on a
    two-variable function is dominated by tracing overhead); tests compare with autograd."""
    def value_and_grad(w, batch=None):
        value, g, _ = grad_and_hvp(w, batch, None)
        return value, g

    return make_problem(name, check_vector("w0", w0, size=2), loss, value_and_grad=value_and_grad,
                        grad_and_hvp=grad_and_hvp, objective_grad=lambda w: value_and_grad(w)[1],
                        info=info)


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
