"""Optimization dynamics Φ_t (MARTHE paper, Eq. 1): SGD, heavy-ball, Nesterov, Adam, AdamW.

Every dynamics here is affine in the learning rate::

    w_{t+1} = w_t − η_t · d_t,        buffers_{t+1} = b(w_t, buffers_t, g_t)

with ``d_t = direction(state_t, g_t)`` and ``g_t = ∇L_t(w_t)`` (weight decay λ is added
inside: ``g ← g + λ w``, the torch.optim convention; AdamW decays decoupled from g). Hence
``B_t = ∂Φ_t/∂η_t = (−d_t, 0)`` and ``A_t = ∂Φ_t/∂state`` is the Jacobian of the η-free map
``(w, buffers, g(w)) ↦ (d, b)`` plus the identity on w (Eq. 3). :mod:`hgref.linearize` builds A_t and B_t from these pieces.

The update equations follow torch.optim (PyTorch 2.x) so the torch bridge can match them:

====================  ==============================================================
``sgd``               d = g
``heavy_ball``        v ← μ v + (1−τ) g;  d = v    (torch ``SGD(momentum, dampening=τ)``)
``nesterov``          v ← μ v + g;  d = g + μ v                 (torch ``SGD(nesterov=True)``)
``adam``              m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
                      d = (m / (1−β1^k)) / (√(v / (1−β2^k) + ε_root) + ε),  k = count + 1
``adamw``             the Adam direction of the raw gradient g (no λw in g) plus λ w:
                      d = λ w + m̂/(√v̂ + ε)     (torch ``AdamW``: w ← w(1−ηλ) − η m̂/(√v̂+ε))
====================  ==============================================================

The first momentum step gives v = g (no dampening), as torch's ``buf = g.clone()``. AdamW
stays affine in η: ``w(1 − ηλ) − η m̂/(√v̂+ε) = w − η (λw + m̂/(√v̂+ε))``, so B_t = (−d_t, 0)
and :mod:`hgref.linearize`, the oracle and the rules need nothing beyond its
direction/JVP/VJP. :func:`l2_weight_decay` is the coupled part of the decay, the one that
belongs to the training loss L_t + λ/2‖w‖² (0 for AdamW). Functions are written
with ``autograd.numpy``; they are differentiable with respect to the state, the gradient
and η.
"""
from __future__ import annotations

import numbers
from typing import Callable, NamedTuple

import autograd.numpy as anp
import numpy as np
from autograd.extend import defjvp, defvjp, primitive

from ._checks import check_choice, check_scalar, check_vector

__all__ = [
    "Dynamics", "SGDState", "MomentumState", "AdamState",
    "sgd", "heavy_ball", "nesterov", "adam", "adamw", "get_dynamics", "DYNAMICS",
    "l2_weight_decay", "pack", "unpack",
]


class SGDState(NamedTuple):
    w: np.ndarray          # shape=(d,) weights
    count: int             # steps taken


class MomentumState(NamedTuple):
    w: np.ndarray          # shape=(d,) weights
    velocity: np.ndarray   # shape=(d,) momentum buffer v
    count: int             # steps taken


class AdamState(NamedTuple):
    w: np.ndarray          # shape=(d,) weights
    m: np.ndarray          # shape=(d,) first moment (not bias-corrected)
    v: np.ndarray          # shape=(d,) second moment (not bias-corrected)
    count: int             # steps taken


class Dynamics(NamedTuple):
    """A dynamics Φ: ``init(w0) -> state`` and ``step(state, eta, grad) -> state``.

    ``direction(w, buffers, grad, count) -> (d, new_buffers)`` is the η-free part and
    ``step`` is ``w − η d`` with the new buffers. Its derivatives, written out (elementwise,
    checked against autograd in tests/test_linearize.py) for :mod:`hgref.linearize`:
    ``direction_jvp(w, buffers, grad, count, dw, dbuffers, dgrad) -> (d, new_buffers, dd,
    dnew_buffers)`` and ``direction_vjp(w, buffers, grad, count, cd, cbuffers) -> (d,
    new_buffers, w̄, buffers̄, ḡ)``.
    """

    name: str
    hyperparams: dict
    init: Callable
    step: Callable
    direction: Callable
    state_type: type
    direction_jvp: Callable
    direction_vjp: Callable

    @property
    def n_buffers(self) -> int:
        return len(self.state_type._fields) - 2


def pack(state) -> np.ndarray:
    """Flat vector x = (w, buffers...) of a state; shape=((1 + n_buffers) d,)."""
    if len(state) == 2:
        return state.w
    return anp.concatenate(state[:-1])


def unpack(x, like):
    """Inverse of :func:`pack`: a state of ``like``'s type and count from vector x."""
    k = len(like) - 1
    d = x.shape[0] // k
    return type(like)(*(x[i * d:(i + 1) * d] for i in range(k)), like.count)


def _check_eta(eta):
    if isinstance(eta, numbers.Real) or isinstance(eta, np.ndarray):
        check_scalar("eta", float(eta))


def _make(name, hyperparams, state_type, direction, jvp, vjp):
    n_buffers = len(state_type._fields) - 2

    def init(w0):
        w0 = check_vector("w0", w0)
        zeros = [np.zeros_like(w0) for _ in range(n_buffers)]
        return state_type(w0.copy(), *zeros, 0)

    def step(state, eta, grad):
        _check_eta(eta)
        if np.shape(grad) != np.shape(state.w):
            raise ValueError(f"grad must have shape {np.shape(state.w)} (the shape of state.w), "
                             f"got {np.shape(grad)}")
        d, buffers = direction(state.w, state[1:-1], grad, state.count)
        return state_type(state.w - eta * d, *buffers, state.count + 1)

    return Dynamics(name, dict(hyperparams), init, step, direction, state_type, jvp, vjp)


def sgd(weight_decay=0.0):
    """Plain SGD: ``w ← w − η (∇L + λ w)``; Φ_t of MARTHE Eq. 1.

    >>> s = sgd().init([1.0]); sgd().step(s, 0.5, np.array([2.0])).w
    array([0.])
    """
    wd = check_scalar("weight_decay", weight_decay)

    def direction(w, buffers, grad, count):
        return grad + wd * w, ()

    def jvp(w, buffers, grad, count, dw, dbuffers, dgrad):
        return grad + wd * w, (), dgrad + wd * dw, ()

    def vjp(w, buffers, grad, count, cd, cbuffers):
        return grad + wd * w, (), wd * cd, (), cd

    return _make("sgd", {"weight_decay": wd}, SGDState, direction, jvp, vjp)


def _momentum(name, momentum, weight_decay, nesterov, dampening=0.0):
    mu = check_scalar("momentum", momentum)
    if mu > 1:
        raise ValueError(f"momentum must lie in [0, 1], got {mu}")
    wd = check_scalar("weight_decay", weight_decay)
    tau = check_scalar("dampening", dampening)
    if tau > 1:
        raise ValueError(f"dampening must lie in [0, 1], got {tau}")
    if nesterov and tau != 0:
        raise ValueError(f"dampening must be 0 for nesterov (torch: 'Nesterov momentum requires a "
                         f"momentum and zero dampening'), got {tau}")

    def _c(count):
        """Weight of g in the new velocity: 1 on the first step (torch's buf = g.clone()), then 1 − τ."""
        return 1.0 if count == 0 or not tau else 1.0 - tau

    def direction(w, buffers, grad, count):
        g = grad + wd * w
        c = _c(count)
        v = mu * buffers[0] + (g if c == 1.0 else c * g)
        return (g + mu * v if nesterov else v), (v,)

    def jvp(w, buffers, grad, count, dw, dbuffers, dgrad):
        d, (v,) = direction(w, buffers, grad, count)
        dg = dgrad + wd * dw
        c = _c(count)
        dv = mu * dbuffers[0] + (dg if c == 1.0 else c * dg)
        return d, (v,), (dg + mu * dv if nesterov else dv), (dv,)

    def vjp(w, buffers, grad, count, cd, cbuffers):
        d, (v,) = direction(w, buffers, grad, count)
        cv = cbuffers[0] + (mu * cd if nesterov else cd)
        c = _c(count)
        cg = (cv if c == 1.0 else c * cv) + (cd if nesterov else 0.0)
        return d, (v,), wd * cg, (mu * cv,), cg

    hp = {"momentum": mu, "weight_decay": wd}
    if tau:
        hp["dampening"] = tau        # only when set: results files of τ = 0 runs are unchanged
    return _make(name, hp, MomentumState, direction, jvp, vjp)


def heavy_ball(momentum=0.9, weight_decay=0.0, dampening=0.0):
    """Heavy-ball momentum (torch ``SGD(momentum=μ, dampening=τ)``): ``v ← μ v + (1−τ) g``
    (``v = g`` on the first step, as torch's ``buf = g.clone()``); ``w ← w − η v``."""
    return _momentum("heavy_ball", momentum, weight_decay, nesterov=False, dampening=dampening)


def nesterov(momentum=0.9, weight_decay=0.0, dampening=0.0):
    """Nesterov momentum (torch ``SGD(nesterov=True)``; seed HD paper §2):
    ``v ← μ v + g;  w ← w − η (g + μ v)``. ``dampening`` must be 0 (torch rejects it too)."""
    return _momentum("nesterov", momentum, weight_decay, nesterov=True, dampening=dampening)


@primitive
def _sqrt0(x):
    """√x whose derivative is taken as 0 where x = 0 (a zero second moment only
    arises with an all-zero gradient history, whose tangent is zero too)."""
    return np.sqrt(x)


def _dsqrt0(ans, x):
    return np.where(ans > 0, 0.5 / np.where(ans > 0, ans, 1.0), 0.0)


defjvp(_sqrt0, lambda g, ans, x: g * _dsqrt0(ans, x))
defvjp(_sqrt0, lambda ans, x: lambda g: g * _dsqrt0(ans, x))


def adam(b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, eps_root=0.0):
    """Adam (Kingma & Ba; torch ``Adam``), bias-corrected moments, L2 weight decay.

    ``d = m̂ / (√(v̂ + ε_root) + ε)``. ``eps_root = 0`` is torch's convention (ε outside
    the square root); ``eps_root > 0`` puts a constant inside it (optax's ``eps_root``).
    """
    return _adam("adam", b1, b2, eps, weight_decay, eps_root, decoupled=False)


def adamw(b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-2, eps_root=0.0):
    """AdamW (Loshchilov & Hutter; torch ``AdamW``): decoupled weight decay.

    torch: ``w ← w(1 − ηλ)``, then ``w ← w − η m̂/(√v̂ + ε)`` with the moments of the raw
    gradient (no λw in g). Hence ``d = λ w + m̂/(√(v̂ + ε_root) + ε)``: affine in η.

    >>> dyn = adamw(weight_decay=0.5)
    >>> float(dyn.step(dyn.init([2.0]), 0.1, np.array([0.0])).w[0])     # 2·(1 − 0.1·0.5)
    1.9
    """
    return _adam("adamw", b1, b2, eps, weight_decay, eps_root, decoupled=True)


def _adam(name, b1, b2, eps, weight_decay, eps_root, decoupled):
    b1 = check_scalar("b1", b1)
    b2 = check_scalar("b2", b2)
    for arg, b in (("b1", b1), ("b2", b2)):
        if b >= 1:
            raise ValueError(f"{arg} must lie in [0, 1), got {b}")
    eps = check_scalar("eps", eps)
    eps_root = check_scalar("eps_root", eps_root)
    lam = check_scalar("weight_decay", weight_decay)
    wd, dwd = (0.0, lam) if decoupled else (lam, 0.0)     # coupled (in g) / decoupled (in d)

    def direction(w, buffers, grad, count):
        g = grad + wd * w
        m = b1 * buffers[0] + (1 - b1) * g
        v = b2 * buffers[1] + (1 - b2) * g * g
        k = count + 1
        bc1, bc2 = 1 - b1 ** k, 1 - b2 ** k
        if eps_root:
            denom = anp.sqrt(v / bc2 + eps_root) + eps
        else:
            denom = _sqrt0(v) / np.sqrt(bc2) + eps
        d = (m / bc1) / denom
        return (d + dwd * w if dwd else d), (m, v)

    def _parts(w, buffers, grad, count):
        """g, m', v', bc1, d (without the decoupled λw), 1/denom and ∂√(·)/∂v' (0 where
        v' = 0 and ε_root = 0), with d computed by the same operations as ``direction``."""
        g = grad + wd * w
        m = b1 * buffers[0] + (1 - b1) * g
        v = b2 * buffers[1] + (1 - b2) * g * g
        k = count + 1
        bc1, bc2 = 1 - b1 ** k, 1 - b2 ** k
        root = np.sqrt(v / bc2 + eps_root) if eps_root else np.sqrt(v) / np.sqrt(bc2)
        denom = root + eps
        d = (m / bc1) / denom
        dsqrt = np.divide(0.5 / bc2, root, out=np.zeros_like(root), where=root > 0)
        return g, m, v, bc1, d, 1.0 / denom, dsqrt

    def jvp(w, buffers, grad, count, dw, dbuffers, dgrad):
        g, m, v, bc1, d, r, dsqrt = _parts(w, buffers, grad, count)
        dg = dgrad + wd * dw if wd else dgrad
        dm = b1 * dbuffers[0] + (1 - b1) * dg
        dv = b2 * dbuffers[1] + 2 * (1 - b2) * g * dg
        dsqrt *= dv
        dsqrt *= d
        dd = dm * (r / bc1)
        dd -= dsqrt * r                       # ∂d = dm/(bc1·denom) − d·(∂√/∂v')·dv/denom
        if dwd:
            d, dd = d + dwd * w, dd + dwd * dw
        return d, (m, v), dd, (dm, dv)

    def vjp(w, buffers, grad, count, cd, cbuffers):
        g, m, v, bc1, d, r, dsqrt = _parts(w, buffers, grad, count)
        cdr = cd * r
        cm = cbuffers[0] + cdr / bc1
        cv = cbuffers[1] - cdr * d * dsqrt
        cg = (1 - b1) * cm + 2 * (1 - b2) * g * cv
        wbar = wd * cg + dwd * cd if dwd else wd * cg
        return (d + dwd * w if dwd else d), (m, v), wbar, (b1 * cm, b2 * cv), cg

    hp = {"b1": b1, "b2": b2, "eps": eps, "eps_root": eps_root, "weight_decay": lam}
    return _make(name, hp, AdamState, direction, jvp, vjp)


def l2_weight_decay(dynamics) -> float:
    """λ of the weight decay that enters the gradient (``g ← g + λw``: the training loss is
    L_t + λ/2‖w‖²); 0 for AdamW, whose decay is decoupled from the loss."""
    if dynamics.name == "adamw":
        return 0.0
    return float(dynamics.hyperparams.get("weight_decay", 0.0))


DYNAMICS = {"sgd": sgd, "heavy_ball": heavy_ball, "nesterov": nesterov, "adam": adam, "adamw": adamw}


def get_dynamics(name, **hyperparams):
    """Dynamics by name (``sgd``, ``heavy_ball``, ``nesterov``, ``adam``, ``adamw``)."""
    check_choice("dynamics", name, tuple(DYNAMICS))
    return DYNAMICS[name](**hyperparams)
