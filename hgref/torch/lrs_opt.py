"""Reverse-mode LRS-OPT in torch (MARTHE §5): ∇f_T(η) of f_T(η) = E(w_T(η)) for an MNIST MLP.

:func:`schedule_hypergradient` is the adjoint sweep of :func:`hgref.oracle.hypergradient`
(``method="reverse"``) on torch tensors, so paper-scale runs (784-500-500-500-10, T = 512)
fit a GPU. A forward sweep stores the states x_t = (w_t, buffers_t) and gradients ∇L_t(w_t)
(memory T·(n + d) numbers, no activations); the reverse sweep, with λ_T = (∇E(w_T), 0)::

    [∇f_T]_t = λ_{t+1}ᵀ B_t = −λ_{t+1}[w]·d_t,          λ_t = A_tᵀ λ_{t+1}
    A_tᵀλ = (λ_w, 0) + ∂D/∂xᵀ c + ∇²L_t ∂D/∂gᵀ c,      c = (−η_t λ_w, λ_b)

(:func:`hgref.linearize.adjoint`): the elementwise vjp of the dynamics by autograd, then one
HVP-only pass (:func:`hgref.torch.fused.grad_and_hvp`, ``with_grad=False``).

Cost, from the profile (784-500-500-10, batch 100, float32, 1 thread): the former version
sliced one flat w per layer, and every slice's backward filled and added a zero gradient of
length d (``SliceBackward``: fill_/add 25–37 % of the time), in two double-backward passes
per step — 5.4× plain torch SGD at T = 32, 8.7× at T = 128. Weights are now per-layer
tensors and no autograd graph touches a matmul: a step costs one gradient (forward sweep)
plus one HVP-only pass (≈ 2.1 gradients by FLOP count on 784-500-500-10). The stored
sweep (T·(2 + b)·n numbers, 2.65 GB in float32 on 784-500-500-10 at T = 512) is written into
one buffer (:mod:`hgref.torch._store`) that a :class:`Workspace` keeps across calls; freshly
allocated at every call, its first touch decided the ratio at large T (784-500-500-10,
float32, `run_all.py --quick` on a 2-core KVM guest, 2026-12-02: 3.39× / 4.27× / 5.16× plain
torch SGD at T = 32 / 128 / 512). With the workspace (as :func:`lrs_opt` and
``benchmarks/bench_torch_reverse.py`` use it), same machine and day: 3.40× / 3.24× / 3.23×,
float64 3.10× (T = 128), 784-200-200-10 3.05× (T = 128).
No host sync inside the sweeps (η is read once; divergence is checked on the recorded
losses after the forward sweep and on ∇f_T at the end). ``checkpoint_every=k`` keeps
every k-th state and recomputes each segment (memory O(T/k + k) states, one more forward
sweep), as the NumPy reverse mode. :func:`lrs_opt` runs the outer loop of :mod:`hgref.lrsopt`
(PGD or any other outer optimizer) on it, a fresh minibatch order per outer iteration
(MARTHE §5, footnote 7).
"""
from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from .._checks import DivergenceError, check_int, check_scalar
from . import fused
from ._dynamics import BUFFERS, direction
from ._store import SweepStore, Workspace

__all__ = ["schedule_hypergradient", "lrs_opt", "LRSResult", "mlp_forward", "Workspace"]


def _layers(w, widths):
    """Per-layer views ``[W_1, b_1, W_2, b_2, …]`` of a flat vector in hgref's layout."""
    out, o = [], 0
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        out += [w[o:o + n_in * n_out].view(n_in, n_out), w[o + n_in * n_out:o + n_in * n_out + n_out]]
        o += n_in * n_out + n_out
    return out


def mlp_forward(w, widths, X):
    """The :class:`hgref.torch.models.MLP` forward pass from a flat weight vector ``w`` or a
    list of per-layer tensors ``[W_1, b_1, …]`` (differentiable: use the list form under
    autograd, slices of one flat vector cost a length-d zero gradient each in backward)."""
    params = _layers(w, widths) if torch.is_tensor(w) else list(w)
    a, L = X, len(params) // 2
    for l in range(L):
        a = a @ params[2 * l] + params[2 * l + 1]
        if l < L - 1:
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


def _free_bytes(device):
    """Memory free for the stored sweep: CUDA's free memory, else available physical RAM."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _checkpoint_every(value, T, per_step_bytes, device):
    """``None`` (store every state), or the segment length k (see schedule_hypergradient)."""
    if value == "auto":
        if T * per_step_bytes <= 0.5 * _free_bytes(device):
            return None
        return max(1, math.isqrt(T - 1) + 1)       # ⌈√T⌉: memory O(√T) states
    return None if value is None else check_int("checkpoint_every", value, low=1)


def _dot(xs, ys):
    return sum(torch.dot(x.reshape(-1), y.reshape(-1)) for x, y in zip(xs, ys))


class _Sweep:
    """Forward steps of one (tp, schedule, dynamics, seed); state = (params, buffers)."""

    def __init__(self, tp, eta_host, dynamics, hp, seed):
        self.tp, self.eta, self.dynamics, self.hp, self.seed = tp, eta_host, dynamics, hp, seed

    def run(self, state, start, stop, keep_every, keep_grads, losses=None, store=None):
        """Steps start … stop−1 from x_start; returns (x_stop, {t: (x_t, ∇L_t or None)}).

        With ``store`` (a :class:`hgref.torch._store.SweepStore` of stop − start slots), ∇L_t
        and x_t (start < t < stop) are written into slot t − start, not into fresh tensors.
        """
        kept = {}
        for t in range(start, stop):
            w, bufs = state
            X, y = self.tp.batch(t, self.seed)
            slot = t - start
            loss, g = fused.grad(w, X, y, self.tp.l2, out=None if store is None else store.grad(slot))
            if losses is not None:
                losses[t] = loss
            if slot % keep_every == 0:
                kept[t] = (state, g if keep_grads else None)
            steps = [direction(self.dynamics, self.hp, wi, tuple(b[i] for b in bufs), gi, t)
                     for i, (wi, gi) in enumerate(zip(w, g))]
            if store is not None and t + 1 < stop:
                w = [torch.add(wi, d, alpha=-self.eta[t], out=o)
                     for wi, (d, _), o in zip(w, steps, store.weights(slot + 1))]
                bufs = tuple([o.copy_(s[1][j]) for s, o in zip(steps, into)]
                             for j, into in enumerate(store.buffers(slot + 1)))
            else:
                w = [torch.add(wi, d, alpha=-self.eta[t]) for wi, (d, _) in zip(w, steps)]
                bufs = tuple([s[1][j] for s in steps] for j in range(len(bufs)))
            state = (w, bufs)
        return state, kept


def schedule_hypergradient(tp, schedule, dynamics="sgd", seed=0, *, checkpoint_every="auto",
                           workspace=None, **hyperparams):
    """f_T(η) = E(w_T) and its exact gradient w.r.t. the whole schedule η (MARTHE Eq. 2, 4).

    Args:
      tp: a :class:`hgref.torch.mnist.TorchMNIST` (from :func:`hgref.torch.mnist.mnist_torch`).
      schedule: η, shape (T,), learning rates ≥ 0 (NumPy or torch).
      dynamics: ``"sgd"``, ``"heavy_ball"``, ``"nesterov"``, ``"adam"`` or ``"adamw"``.
      seed: fixes the minibatch sequence ``tp.batch(t, seed)``.
      checkpoint_every: keep every k-th state only and recompute segments (memory
        O(T/k + k) states instead of T states and gradients; ≈ one more forward sweep);
        ``None``: store every state; ``"auto"`` (default): store every state if that takes
        at most half the free memory of ``tp``'s device, else k = ⌈√T⌉. The result is
        bitwise the same for every k.
      workspace: a :class:`hgref.torch.Workspace` holding the stored sweep's memory across
        calls (:func:`lrs_opt` keeps one): without it every call touches that memory anew
        (page faults, see :mod:`hgref.torch._store`). The result does not depend on it.
      **hyperparams: momentum, dampening, b1, b2, eps, eps_root, weight_decay of the dynamics.

    Returns:
      ``(value, grad)``: a 0-d tensor and a tensor of shape (T,) (``tp``'s dtype and device).

    Raises:
      hgref.DivergenceError: non-finite loss (step t) or objective in the inner run, or a
        non-finite hypergradient entry.
    """
    if dynamics not in BUFFERS:
        raise ValueError(f"Invalid dynamics: {dynamics!r}; accepted values: {', '.join(map(repr, BUFFERS))}")
    hp = _hp(dynamics, hyperparams)
    if workspace is not None and not isinstance(workspace, Workspace):
        raise TypeError(f"workspace must be an hgref.torch.Workspace or None, got {type(workspace).__name__}")
    model = tp.model()
    w0 = [p.detach() for p in model.flat_parameters()]
    like = w0[0]
    eta_host = torch.as_tensor(schedule).detach().to("cpu", torch.float64)   # one copy, then no syncs
    if eta_host.ndim != 1 or eta_host.numel() == 0 or not bool(torch.all(eta_host >= 0)):
        raise ValueError(f"schedule must be a non-empty 1-d array of numbers >= 0, got {tuple(eta_host.shape)}")
    T = eta_host.numel()
    nb = len(BUFFERS[dynamics])
    per_step = (2 + nb) * sum(p.numel() for p in w0) * like.element_size()
    checkpoint_every = _checkpoint_every(checkpoint_every, T, per_step, like.device)
    k = T if checkpoint_every is None else checkpoint_every
    eta = eta_host.tolist()
    sweep = _Sweep(tp, eta, dynamics, hp, seed)
    x0 = (w0, tuple([torch.zeros_like(p) for p in w0] for _ in range(nb)))
    losses = torch.empty(T, dtype=like.dtype, device=like.device)
    stored = checkpoint_every is None
    store = SweepStore(k, [p.shape for p in w0], nb, like.dtype, like.device, workspace)
    final, kept = sweep.run(x0, 0, T, keep_every=1 if stored else k, keep_grads=stored, losses=losses,
                            store=store if stored else None)
    bad = (~torch.isfinite(losses)).nonzero()
    value, lam_w = fused.grad(final[0], tp.X_val, tp.y_val)
    if bad.numel():
        raise DivergenceError(int(bad[0, 0]), "loss", "torch schedule_hypergradient")
    if not bool(torch.isfinite(value)):
        raise DivergenceError(T, "objective", "torch schedule_hypergradient")
    lam_b = [None] * nb
    grad = torch.empty(T, dtype=like.dtype, device=like.device)
    for start in reversed(range(0, T, k)):
        stop = min(start + k, T)
        segment = kept if stored else sweep.run(kept[start][0], start, stop, 1, True, store=store)[1]
        for t in range(stop - 1, start - 1, -1):
            (w, bufs), g = segment.pop(t)
            X, y = tp.batch(t, seed)
            with torch.enable_grad():
                wr = [p.detach().requires_grad_(True) for p in w]
                br = [[b.detach().requires_grad_(True) for b in bl] for bl in bufs]
                gr = [p.detach().requires_grad_(True) for p in g]
                outs, couts = [], []
                for i in range(len(wr)):
                    d, new = direction(dynamics, hp, wr[i], tuple(b[i] for b in br), gr[i], t)
                    outs += [d, *new]
                    couts += [lam_w[i] * -eta[t]] + [torch.zeros_like(d) if lb is None else lb[i]
                                                      for lb in lam_b]
                inputs = wr + [b for bl in br for b in bl] + gr
                bars = torch.autograd.grad(outs, inputs, grad_outputs=couts, allow_unused=True)
            grad[t] = -_dot(lam_w, [o.detach() for o in outs[::1 + nb]])
            n = len(wr)
            wbar, gbar = bars[:n], [torch.zeros_like(p) if b is None else b for p, b in zip(w, bars[-n:])]
            with torch.no_grad():
                hg = fused.grad_and_hvp(w, X, y, gbar, tp.l2, with_grad=False)[2]
            lam_w = [lw + h if wb is None else (lw + wb).add_(h) for lw, wb, h in zip(lam_w, wbar, hg)]
            lam_b = [[torch.zeros_like(p) if b is None else b for p, b in zip(w, bars[n * (1 + j):n * (2 + j)])]
                     for j in range(nb)]
    bad = (~torch.isfinite(grad)).nonzero()
    if bad.numel():
        raise DivergenceError(int(bad[-1, 0]), "adjoint", "torch schedule_hypergradient")
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

    workspace = Workspace()         # the stored sweep's memory, touched once for all iterations

    def value_and_grad(schedule, batch_seed):
        value, grad = schedule_hypergradient(tp, schedule, dynamics, batch_seed, workspace=workspace,
                                             **hyperparams)
        return float(value), grad.detach().to("cpu", torch.float64).numpy()

    w0 = tp.model().flat()
    config = {"problem": tp.problem.name, "dynamics": dynamics, "hyperparams": hyperparams,
              "torch": f"{w0.dtype}@{w0.device.type}"}
    return optimize_schedule(value_and_grad, np.asarray(schedule0, dtype=float), outer, outer_steps, seed=seed,
                             fresh_batches=fresh_batches, config=config, state_path=state_path, evaluate=evaluate,
                             eval_every=eval_every, restart_above=restart_above, callback=callback,
                             desc=f"LRS-OPT torch {tp.problem.name}")
