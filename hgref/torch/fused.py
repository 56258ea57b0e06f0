"""Fused gradient and Hessian-vector passes for :class:`hgref.torch.models.MLP` (no autograd).

The torch twin of :func:`hgref.problems.mnist._grad_and_hvp`: for a ReLU MLP with softmax
cross-entropy, L(w) = mean_i CE(f(x_i; w), y_i) (+ (l2/2)‖w‖²), one forward, R-forward
(Pearlmutter 1994), backward and R-backward pass give ∇L and ∇²L v together. Hidden
activations and their R-values are stacked ``[a; Ra]`` (2B rows) and the errors ``[Rδ; δ]``
so the products pair into single matmuls: ``[a; Ra] W``, ``[a; Ra]ᵀ [Rδ; δ] = aᵀRδ + Raᵀδ``,
``[Rδ; δ] Wᵀ``. ReLU'' = 0, so no R-term enters the masks.

Parameters and tangents are lists in hgref's flat order ``[W_1, b_1, W_2, b_2, …]``
(``W_l`` shape (in, out), ``b_l`` shape (out,), :meth:`MLP.flat_parameters`); every
function is pure, device- and dtype-agnostic and never syncs with the host.

* :func:`grad` — (L, ∇L): the plain backprop pass;
* :func:`grad_and_hvp` — (L, ∇L, ∇²L v); ``with_grad=False``: (L, None, ∇²L v), the HVP-only
  pass of the reverse-mode adjoint (the gradient comes from its forward sweep);
* :func:`tangent_pass` — (L, ∇L, ∇L·v) with v ← γv + α∇²L v accumulated in place by the
  backward GEMMs (the optimizer's SGD tangent step);
* :class:`MLPClosure` — a closure for :class:`hgref.torch.HypergradientOptimizer` whose
  RTHO/MARTHE steps take ∇L and ∇²L Z in one fused pass instead of double backward
  (called as a plain closure it is the usual ``backward(create_graph=True)``).

Tested equal to autograd's double backward in float64 (tests/test_torch_fused.py).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["grad", "grad_and_hvp", "tangent_pass", "MLPClosure"]


def _softmax_ce(logits, y):
    """(mean cross-entropy, softmax probabilities), as ``F.cross_entropy``."""
    logp = torch.log_softmax(logits, dim=1)
    return -logp.gather(1, y[:, None]).mean(), logp.exp_()


def grad(params, X, y, l2=0.0, out=None):
    """``(L, [∇_W1 L, ∇_b1 L, …])`` of the MLP with weights ``params`` on batch (X, y);
    ``out`` (optional, tensors shaped as params) receives the gradient."""
    L = len(params) // 2
    acts, a = [], X
    for l in range(L):
        acts.append(a)
        z = torch.addmm(params[2 * l + 1], a, params[2 * l])
        a = torch.relu_(z) if l < L - 1 else z
    loss, delta = _softmax_ce(a, y)
    B = X.shape[0]
    delta[torch.arange(B, device=X.device), y] -= 1.0
    delta.div_(B)
    dest = [None] * (2 * L) if out is None else out
    g = [None] * (2 * L)
    for l in range(L - 1, -1, -1):
        g[2 * l] = torch.mm(acts[l].T, delta, out=dest[2 * l])
        g[2 * l + 1] = torch.sum(delta, 0, out=dest[2 * l + 1])
        if l:
            delta = (delta @ params[2 * l].T).mul_(acts[l] > 0)
    if l2:
        loss = loss + _l2_value(params, l2)
        g = [gg.add_(p, alpha=l2) for gg, p in zip(g, params)]
    return loss, g


def _r_forward(params, X, y, vecs):
    """Forward and R-forward: ``(L, [Rδ; δ] / B, stacks, R{L})``; R{L} = ∇L·v without the L2 term."""
    L, B = len(params) // 2, X.shape[0]
    W, V = params[0::2], vecs[0::2]
    zz = X.new_empty((2 * B, W[0].shape[1]))    # [z; Rz] stacked, written in place
    torch.addmm(params[1], X, W[0], out=zz[:B])
    torch.addmm(vecs[1], X, V[0], out=zz[B:])
    stacks = []                       # ([a; Ra], ReLU' as 0/1 floats) per hidden layer
    for l in range(1, L):
        mask = (zz[:B] > 0).to(zz.dtype)
        ar = zz
        ar.view(2, B, -1).mul_(mask)
        stacks.append((ar, mask))
        zz = ar @ W[l]                # [a W; Ra W]
        zz[:B].add_(params[2 * l + 1])
        zz[B:].addmm_(ar[:B], V[l]).add_(vecs[2 * l + 1])
    z, rz = zz[:B], zz[B:]
    loss, p = _softmax_ce(z, y)
    delta = p.clone()
    delta[torch.arange(B, device=X.device), y] -= 1.0
    dloss = (delta * rz).sum() / B     # Pearlmutter's R{L}: the directional derivative ∇L·v
    rdelta = p.mul_(rz - (p * rz).sum(1, keepdim=True))
    return loss, torch.cat([rdelta, delta]).div_(B), stacks, dloss


def _l2_value(params, l2):
    """(l2/2)‖w‖²."""
    return 0.5 * l2 * sum((q * q).sum() for q in params)


def _l2_terms(params, vecs, l2):
    """(l2/2)‖w‖² and its directional derivative l2 w·v."""
    return _l2_value(params, l2), l2 * sum((q * v).sum() for q, v in zip(params, vecs))


def grad_and_hvp(params, X, y, vecs, l2=0.0, with_grad=True):
    """``(L, ∇L, ∇²L v)`` (lists in flat order) for tangent ``vecs`` (same shapes as params).

    ``with_grad=False`` skips the weight gradients ``aᵀδ`` and returns ``(L, None, ∇²L v)``.
    """
    L, B = len(params) // 2, X.shape[0]
    W, V = params[0::2], vecs[0::2]
    loss, d, stacks, _ = _r_forward(params, X, y, vecs)
    h, g = [None] * (2 * L), ([None] * (2 * L) if with_grad else None)
    for l in range(L - 1, -1, -1):
        a = stacks[l - 1][0] if l else X
        h[2 * l] = a.T @ d if l else X.T @ d[:B]    # aᵀRδ + Raᵀδ
        h[2 * l + 1] = d[:B].sum(0)
        if with_grad:
            g[2 * l] = a[:B].T @ d[B:]
            g[2 * l + 1] = d[B:].sum(0)
        if l:
            d = _back(d, W[l], V[l], stacks[l - 1][1], B)
    if l2:
        loss = loss + _l2_value(params, l2)
        h = [hh.add_(v, alpha=l2) for hh, v in zip(h, vecs)]
        if with_grad:
            g = [gg.add_(q, alpha=l2) for gg, q in zip(g, params)]
    return loss, g, h


def _back(d, W, V, mask, B):
    """``[Rδ; δ]`` of the layer below: ``[Rδ Wᵀ + δ Vᵀ; δ Wᵀ]`` masked by ReLU'."""
    dn = d @ W.T
    dn[:B].addmm_(d[B:], V.T)
    dn.view(2, B, -1).mul_(mask)
    return dn


def _scaled_add_(c, x, alpha, gamma):
    """c ← γ c + α x (α, γ floats or 0-d tensors: no host sync on a device)."""
    if isinstance(alpha, float) and isinstance(gamma, float):
        return c.mul_(gamma).add_(x, alpha=alpha) if gamma != 1.0 else c.add_(x, alpha=alpha)
    return c.mul_(gamma).addcmul_(x, torch.as_tensor(alpha, dtype=c.dtype, device=c.device))


def tangent_pass(params, X, y, vecs, scale_of, l2=0.0, on_grad=None):
    """One fused pass that also advances the tangent in place: ``v ← γ v + α ∇²L v``.

    Forward and R-forward as in :func:`grad_and_hvp` come first; R{L} = ∇L·v, the
    directional derivative along v (Pearlmutter), falls out of the R-forward. Then
    ``scale_of(L, R{L})`` returns ``(α, γ)`` — nothing has been written yet, so it may
    raise — and the backward pass accumulates α ∇²L v into each layer's v by one GEMM,
    ``v.addmm_([a; Ra]ᵀ, [Rδ; δ], beta=γ, alpha=α)``, once the layer's own backward step has read v:
    no HVP tensor is formed and v is read and written once, in cache. α, γ are floats,
    or 0-d tensors (a device without host sync: ``v.mul_(γ).addcmul_(…)``).
    ``on_grad(i, g_i)`` is called for each parameter (flat order, last layer first) as
    soon as its gradient and tangent are final and the pass no longer reads its weight:
    the caller may update both there, while they are in cache. Returns ``(L, ∇L, R{L})``,
    L2 terms included. :mod:`hgref.torch._fast` builds the SGD tangent step (MARTHE Eq. 9
    with A_t = (1 − ηλ)I − η∇²L_t) on it.
    """
    L, B = len(params) // 2, X.shape[0]
    W, V = params[0::2], vecs[0::2]
    loss, d, stacks, dloss = _r_forward(params, X, y, vecs)
    if l2:
        reg, dreg = _l2_terms(params, vecs, l2)
        loss, dloss = loss + reg, dloss + dreg
    alpha, gamma = scale_of(loss, dloss)
    gamma = gamma + alpha * l2                          # the L2 Hessian l2·I folded into γ
    fast = isinstance(alpha, float) and isinstance(gamma, float)
    g = [None] * (2 * L)
    for l in range(L - 1, -1, -1):
        a = stacks[l - 1][0] if l else X
        g[2 * l] = a[:B].T @ d[B:]
        hb, g[2 * l + 1] = d.view(2, B, -1).sum(1)      # ΣRδ (bias HVP), Σδ
        dn = _back(d, W[l], V[l], stacks[l - 1][1], B) if l else None    # reads W_l, v_l first
        at, dd = (a.T, d) if l else (X.T, d[:B])
        if fast:
            V[l].addmm_(at, dd, beta=gamma, alpha=alpha)   # γv + α(aᵀRδ + Raᵀδ)
        else:
            _scaled_add_(V[l], at @ dd, alpha, gamma)
        _scaled_add_(vecs[2 * l + 1], hb, alpha, gamma)
        for i in (2 * l + 1, 2 * l):
            if l2:
                g[i].add_(params[i], alpha=l2)
            if on_grad is not None:
                on_grad(i, g[i])
        d = dn
    return loss, g, dloss


class MLPClosure:
    """Training-loss closure of an :class:`hgref.torch.models.MLP` on one batch.

    ``closure()`` is the usual closure of the tangent rules (forward, ``p.grad`` = ∇L with
    its graph, as ``backward(create_graph=True)`` gives, return the loss): any optimizer
    accepts it.
    :class:`hgref.torch.HypergradientOptimizer` with rule RTHO/MARTHE and one param group
    instead calls :meth:`grad_and_hvp`, the fused pass (the gradient for E = L comes from it
    too). The loss is mean cross-entropy + (l2/2)‖w‖² (as :class:`hgref.torch.mnist.TorchMNIST`).

    >>> from hgref.torch.models import MLP
    >>> m = MLP((4, 3, 2)); X, y = torch.randn(5, 4), torch.tensor([0, 1, 0, 1, 1])
    >>> loss = MLPClosure(m, X, y)()
    """

    def __init__(self, model, X, y, l2=0.0):
        self.model, self.X, self.y, self.l2 = model, X.reshape(X.shape[0], -1), y, float(l2)

    def __call__(self):
        params = self.model.flat_parameters()
        loss = F.cross_entropy(self.model(self.X), self.y)
        if self.l2:
            loss = loss + 0.5 * self.l2 * sum((p * p).sum() for p in params)
        # autograd.grad, not backward(create_graph=True): no parameter <-> gradient cycle
        for p, g in zip(params, torch.autograd.grad(loss, params, create_graph=True)):
            p.grad = g
        return loss

    def grad_and_hvp(self, tangent):
        """Loss, and ∇²L v per parameter; sets ``p.grad = ∇_p L``. ``tangent(p)`` gives v_p."""
        params = self.model.flat_parameters()
        with torch.no_grad():
            loss, g, h = grad_and_hvp([p.detach() for p in params], self.X, self.y,
                                      [tangent(p) for p in params], self.l2)
        for p, gp in zip(params, g):
            p.grad = gp
        return loss, {p: hp for p, hp in zip(params, h)}
