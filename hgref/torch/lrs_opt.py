"""Reverse-mode LRS-OPT in torch (MARTHE §5): ∇f_T(η) of f_T(η) = E(w_T(η)) for an MNIST MLP.

:func:`schedule_hypergradient` is the adjoint sweep of :func:`hgref.oracle.hypergradient`
(``method="reverse"``) on torch tensors, so paper-scale runs (784-500-500-500-10, T = 512)
fit a GPU. A forward sweep stores the states x_t = (w_t, buffers_t) (memory (T + 1)·n
numbers, no activations); the reverse sweep recomputes step t and, with λ_T = (∇E(w_T), 0)::

    [∇f_T]_t = λ_{t+1}ᵀ B_t = −λ_{t+1}[w]·d_t,          λ_t = A_tᵀ λ_{t+1}
    A_tᵀλ = (λ_w, 0) + ∂D/∂xᵀ c + ∇²L_t ∂D/∂gᵀ c,      c = (−η_t λ_w, λ_b)

(:func:`hgref.linearize.adjoint`), one double-backward through the recomputed gradient per
step (≈ 3 gradient passes). :func:`lrs_opt` runs projected gradient descent on η ≥ 0 with a
fresh minibatch order per outer iteration (MARTHE §5, footnote 7).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from .._checks import DivergenceError, check_int, check_scalar
from ._dynamics import BUFFERS, direction

__all__ = ["schedule_hypergradient", "lrs_opt", "LRSResult", "mlp_forward"]


def mlp_forward(w, widths, X):
    """The :class:`hgref.torch.models.MLP` forward pass from a flat weight vector ``w``."""
    a, o = X, 0
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        W = w[o:o + n_in * n_out].view(n_in, n_out)
        b = w[o + n_in * n_out:o + n_in * n_out + n_out]
        o += n_in * n_out + n_out
        a = a @ W + b
        if i < len(widths) - 2:
            a = F.relu(a)
    return a


def _hp(dynamics, hyperparams):
    hp = {"momentum": 0.9, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0, "weight_decay": 0.0,
          "dampening": 0.0}
    unknown = set(hyperparams) - set(hp)
    if unknown:
        raise ValueError(f"Invalid dynamics hyperparameter(s) {sorted(unknown)}; accepted: {sorted(hp)}")
    hp.update({k: float(v) for k, v in hyperparams.items()})
    return hp


def schedule_hypergradient(tp, schedule, dynamics="sgd", seed=0, **hyperparams):
    """f_T(η) = E(w_T) and its exact gradient w.r.t. the whole schedule η (MARTHE Eq. 2, 4).

    Args:
      tp: a :class:`hgref.torch.mnist.TorchMNIST` (from :func:`hgref.torch.mnist.mnist_torch`).
      schedule: η, shape (T,), learning rates ≥ 0 (NumPy or torch).
      dynamics: ``"sgd"``, ``"heavy_ball"``, ``"nesterov"``, ``"adam"`` or ``"adamw"``.
      seed: fixes the minibatch sequence ``tp.batch(t, seed)``.
      **hyperparams: momentum, dampening, b1, b2, eps, eps_root, weight_decay of the dynamics.

    Returns:
      ``(value, grad)``: a 0-d tensor and a tensor of shape (T,) (``tp``'s dtype and device).
    """
    if dynamics not in BUFFERS:
        raise ValueError(f"Invalid dynamics: {dynamics!r}; accepted values: {', '.join(map(repr, BUFFERS))}")
    hp = _hp(dynamics, hyperparams)
    w0 = tp.model().flat()
    eta = torch.as_tensor(schedule, dtype=w0.dtype, device=w0.device).detach()
    if eta.ndim != 1 or eta.numel() == 0 or not bool(torch.all(eta >= 0)):
        raise ValueError(f"schedule must be a non-empty 1-d array of numbers >= 0, got {tuple(eta.shape)}")
    widths = tp.problem.info["layers"]

    def loss(w, t):
        X, y = tp.batch(t, seed)
        value = F.cross_entropy(mlp_forward(w, widths, X), y)
        return value + 0.5 * tp.l2 * (w @ w) if tp.l2 else value

    T, nb = eta.numel(), len(BUFFERS[dynamics])
    states = [(w0, tuple(torch.zeros_like(w0) for _ in range(nb)))]
    for t in range(T):
        w, bufs = states[-1]
        wr = w.detach().requires_grad_(True)
        with torch.enable_grad():
            g = torch.autograd.grad(loss(wr, t), wr)[0]
        d, new = direction(dynamics, hp, w, bufs, g, t)
        w_next = w - eta[t] * d
        if not bool(torch.isfinite(w_next).all()):
            raise DivergenceError(t, "weights", "torch schedule_hypergradient")
        states.append((w_next, tuple(new)))
    wT = states[-1][0].detach().requires_grad_(True)
    with torch.enable_grad():
        value = F.cross_entropy(mlp_forward(wT, widths, tp.X_val), tp.y_val)
        lam_w = torch.autograd.grad(value, wT)[0]
    lam_b = [torch.zeros_like(w0) for _ in range(nb)]
    grad = torch.zeros_like(eta)
    for t in range(T - 1, -1, -1):
        w, bufs = states[t]
        with torch.enable_grad():
            wr = w.detach().requires_grad_(True)
            br = tuple(b.detach().requires_grad_(True) for b in bufs)
            g = torch.autograd.grad(loss(wr, t), wr, create_graph=True)[0]
            d, new = direction(dynamics, hp, wr, br, g, t)
            grad[t] = -(lam_w @ d.detach())
            outs = [d] + list(new)
            couts = [-eta[t] * lam_w] + lam_b
            xbar = torch.autograd.grad(outs, [wr, *br], grad_outputs=couts, allow_unused=True)
        xbar = [torch.zeros_like(w0) if x is None else x for x in xbar]
        lam_w = lam_w + xbar[0]
        lam_b = list(xbar[1:])
    return value.detach(), grad


class LRSResult(NamedTuple):
    """Result of :func:`lrs_opt` (scipy.optimize-style fields)."""

    x: np.ndarray           # shape=(T,) the optimized schedule η*
    fun: float              # f_T(η*) on the last outer iteration's minibatch order
    nit: int                # outer iterations done
    history: np.ndarray     # shape=(nit,) f_T at each outer iteration (before its update)


def lrs_opt(tp, schedule0, outer_steps, outer_lr, dynamics="sgd", seed=0, callback=None,
            **hyperparams):
    """LRS-OPT (MARTHE §5): projected gradient descent η ← max(η − α ∇f_T(η), 0).

    Outer iteration k uses the minibatch order of seed ``seed + k`` (§5: fresh minibatches
    each iteration, so η does not fit one sample progression); ``w0`` stays fixed.
    ``callback(k, eta, value)`` may return True to stop.
    """
    outer_steps = check_int("outer_steps", outer_steps, low=1)
    outer_lr = check_scalar("outer_lr", outer_lr, strict=True)
    seed = check_int("seed", seed)
    eta = torch.as_tensor(np.asarray(schedule0, dtype=float)).clone()
    history = []
    for k in range(outer_steps):
        value, grad = schedule_hypergradient(tp, eta, dynamics, seed + k, **hyperparams)
        history.append(float(value))
        eta = torch.clamp(eta - outer_lr * grad.cpu().to(eta.dtype), min=0.0)
        if callback is not None and callback(k, eta.numpy().copy(), history[-1]):
            break
    return LRSResult(eta.numpy(), history[-1], len(history), np.array(history))
