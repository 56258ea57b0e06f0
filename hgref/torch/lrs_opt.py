"""Reverse-mode LRS-OPT in torch (MARTHE §5): ∇f_T(η) of f_T(η) = E(w_T(η)) for an MNIST MLP.

:func:`schedule_hypergradient` is the adjoint sweep of :func:`hgref.oracle.hypergradient`
(``method="reverse"``) on torch tensors, so paper-scale runs (784-500-500-500-10, T = 512)
fit a GPU. A forward sweep stores the states x_t = (w_t, buffers_t) (memory (T + 1)·n
numbers, no activations); the reverse sweep recomputes step t and, with λ_T = (∇E(w_T), 0)::

    [∇f_T]_t = λ_{t+1}ᵀ B_t = −λ_{t+1}[w]·d_t,          λ_t = A_tᵀ λ_{t+1}
    A_tᵀλ = (λ_w, 0) + ∂D/∂xᵀ c + ∇²L_t ∂D/∂gᵀ c,      c = (−η_t λ_w, λ_b)

(:func:`hgref.linearize.adjoint`), one double-backward through the recomputed gradient per
step (≈ 3 gradient passes). :func:`lrs_opt` runs the outer loop of :mod:`hgref.lrsopt`
(PGD or any other outer optimizer) on it, a fresh minibatch order per outer iteration
(MARTHE §5, footnote 7).
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
    hp = {"momentum": 0.9, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0, "weight_decay": 0.0}
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
      dynamics: ``"sgd"``, ``"heavy_ball"``, ``"nesterov"`` or ``"adam"``.
      seed: fixes the minibatch sequence ``tp.batch(t, seed)``.
      **hyperparams: momentum, b1, b2, eps, eps_root, weight_decay of the dynamics.

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
    """Field names of :func:`lrs_opt`'s result (kept for imports; the result itself is the
    :class:`scipy.optimize.OptimizeResult` of :func:`hgref.lrsopt.optimize_schedule`)."""

    x: np.ndarray           # shape=(T,) the optimized schedule η*
    fun: float              # f_T(η*) on the minibatch sequence of ``seed``
    nit: int                # outer iterations done
    history: np.ndarray     # shape=(nit,) f_T at each outer iteration (before its update)


def lrs_opt(tp, schedule0, outer_steps, outer_lr=None, dynamics="sgd", seed=0, callback=None, *, outer=None,
            fresh_batches=True, state_path=None, restart_above=None, evaluate=None, eval_every=None,
            **hyperparams):
    """LRS-OPT (MARTHE §5) on the torch reverse mode: :func:`hgref.lrsopt.optimize_schedule`
    (the loop of the NumPy path) with ``value_and_grad`` = :func:`schedule_hypergradient`.

    Args:
      tp: a :class:`hgref.torch.mnist.TorchMNIST` (dtype and device of the reverse mode).
      schedule0: η⁰ ≥ 0, shape (T,).
      outer_steps: outer iterations K.
      outer_lr: PGD step size (the paper's protocol, η ← max(η − α ∇f_T(η), 0)); or give
        ``outer`` (an :class:`hgref.lrsopt.Outer`, e.g. ``adam(1e-2)``) instead.
      seed: outer iteration k uses the minibatch order ``outer_seed(seed, k)`` (fresh
        batches, as the NumPy path); ``w0`` stays fixed.
      callback: ``callback(k, eta, value)`` may return True to stop.
      fresh_batches, state_path, restart_above, evaluate, eval_every: as in
        :func:`hgref.lrsopt.optimize_schedule`.

    Returns:
      scipy OptimizeResult (x, fun, jac, nit, history, status, success, message, grad_norm, ...).
    """
    from ..lrsopt import Outer, optimize_schedule, pgd
    outer_steps = check_int("outer_steps", outer_steps, low=1)
    if (outer_lr is None) == (outer is None):
        raise ValueError("give exactly one of outer_lr (PGD step size) and outer (an hgref.lrsopt.Outer)")
    if outer is None:
        outer = pgd(check_scalar("outer_lr", outer_lr, strict=True))
    elif not isinstance(outer, Outer):
        raise TypeError(f"outer must be an hgref.lrsopt.Outer, got {type(outer).__name__}")
    seed = check_int("seed", seed)

    def value_and_grad(schedule, batch_seed):
        value, grad = schedule_hypergradient(tp, schedule, dynamics, batch_seed, **hyperparams)
        return float(value), grad.detach().to("cpu", torch.float64).numpy()

    w0 = tp.model().flat()
    config = {"problem": tp.problem.name, "dynamics": dynamics, "hyperparams": hyperparams,
              "torch": f"{w0.dtype}@{w0.device.type}"}
    return optimize_schedule(value_and_grad, np.asarray(schedule0, dtype=float), outer, outer_steps, seed=seed,
                             fresh_batches=fresh_batches, config=config, state_path=state_path, evaluate=evaluate,
                             eval_every=eval_every, restart_above=restart_above, callback=callback,
                             desc=f"LRS-OPT torch {tp.problem.name}")
