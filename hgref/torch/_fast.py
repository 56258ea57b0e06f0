"""The fused RTHO/MARTHE step over SGD for :class:`hgref.torch.fused.MLPClosure`.

The tangent step of SGD (MARTHE Eq. 9 with Φ_t(w, η) = w − η(∇L_t(w) + λw)) is

    Z_{t+1} = μ_t ((1 − η_t λ) Z_t − η_t ∇²L_t Z_t) − (∇L_t(w_t) + λ w_t).

:func:`hgref.torch.fused.tangent_pass` runs forward and R-forward, which give
Δη_t = Z_t·∇L_t(w_t) for free (Pearlmutter's R{L}; for E = validation Δη_t = Z_t·∇E is
one dot), so η_t and β_t are chosen — and checked, raising before anything moves —
before the backward pass; that pass then accumulates the ∇²L_t Z_t term into Z by its
GEMMs, and each layer's gradient, tangent and weight are finished in the ``on_grad`` hook
while in cache. MARTHE's adaptive μ_t needs g'_1 = −d_{t−1}·∇E(w_t), i.e. the whole
gradient: Z is scaled by μ_t after the pass (``Z ← μ_t Z − d``), exact because μ_t
depends on neither η_t nor β_t (:func:`hgref.torch._rules.tangent_mu`).

Cost (E = L, benchmark MLP 784-500×3-10, batch 100, float32, one thread, as a ratio to a
torch SGD train step). Measured in one process, interleaved A/B against the generic fused
step (HVP tensors, then ``z += −ηh; z *= μ; z −= d``, two dot products per step), on the
machine of 2026-12-01: RTHO 2.56× → 2.35×, MARTHE (adaptive μ and β) 2.71× → 2.56×. On the
machine of 2026-12-02 (AMD Zen 5; MKL's AVX2 path, GEMM rate the same for 100 and 200 rows)
``benchmarks/run_all.py --quick`` gives MARTHE 2.66×, RTHO 2.45×, and shows the floor
(``benchmarks/torch_floor.py``): the exact step's GEMMs are 2.66× an SGD step's by flop
count (9 B-row GEMMs per hidden layer against 3; 4 against 2 in the first layer), timed
alone 2.63× the SGD step's GEMMs and 2.11× a whole SGD step (whose GEMMs are 86 % of it);
the pass alone is 2.22×. On top of the pass, adaptive μ needs g'_1 over the whole gradient:
timing-only A/B (20 interleaved repetitions) with parts of ``on_grad`` removed — the g'_1
dots over d_{t−1} and μ_t ≈ 0.06–0.11×, the d_{t−1} copy ≈ 0.04×, the weight update
≈ 0.05×, the μ pass over Z ≈ 0.015×; with all of them removed the step is still
2.46–2.52× (two A/B runs; the pass alone in the second: 2.42×). So ≤ 2.5× for MARTHE
would need GEMMs faster than the SGD step's own, not less elementwise work.
Tried and not kept (no gain or slower, same A/B): deferring the Z GEMMs until μ_t is
known (operands gone cold); folding −∇L into the GEMM as [αRδ − δ; αδ]; advancing layer
0 (the last, 43 % of the weights) with μ_t inside the pass; keeping d_{t−1} as a
reference to ``p.grad`` instead of a copy; writing the weight gradients into buffers kept
across steps (0.6 ms of page faults suspected on the 784×500 gradient; A/B 2.636× against
2.633×).

Taken when the optimizer has one param group equal to the closure's model parameters,
dynamics ``"sgd"``, no ``process_group`` and t > 0 (every other case returns
``NotImplemented`` and the optimizer's generic step runs). Tested equal to the
double-backward step in float64 (tests/test_torch_fused.py).
"""
from __future__ import annotations

import torch

from . import _rules
from ._groups import _axpy_, _dot
from .fused import tangent_pass


def _applies(opt, params):
    group = opt.param_groups[0]
    return (opt.dynamics == "sgd" and opt.process_group is None and len(group["params"]) == len(params)
            and {id(p) for p in group["params"]} == {id(p) for p in params}
            and all(opt.state[p] for p in params))


def sgd_tangent_step(opt, closure, objective_closure):
    """One RTHO/MARTHE step of ``opt`` (a HypergradientOptimizer) on ``closure``; the loss."""
    params = closure.model.flat_parameters()
    if not _applies(opt, params):
        return NotImplemented
    group, st = opt.param_groups[0], opt._gstate[0]
    opt._adopt_written_lr()
    t, wd, rule = st["count"], group["weight_decay"], opt.rule
    states = [opt.state[p] for p in params]
    zs = [s["z"][0, 0] for s in states]
    weights = [p.detach() for p in params]
    og = None
    if opt.objective == "validation":      # ∇E(w_t), before the pass moves nothing but Z
        og = opt._objective_grads(params, None, objective_closure, None)
    opt._objective_grad = None
    mu_known = not _rules.needs_g1(rule, group)
    on_cpu = weights[0].device.type == "cpu"
    out = {}

    def scale_of(loss, dloss):
        like = st["eta"]
        if og is not None:
            delta = _dot(zs, og, like)
        else:                               # Z·∇(L_t + λ/2‖w‖²)
            delta = dloss.to(like.dtype) + wd * _dot(zs, weights, like) if wd else dloss.to(like.dtype)
        eta = _rules.tangent_step(st, group, rule, delta, t)
        out.update(loss=loss.detach(), delta=delta, eta=eta, neg_eta=float(-eta) if on_cpu else -eta)
        if opt.sync_lr:
            opt._check_finite([eta], out["loss"], t)     # raises before Z or w change
        c = st["mu"] if mu_known else 1.0
        alpha, gamma = -c * eta, c * (1.0 - eta * wd)
        return (float(alpha), float(gamma)) if on_cpu else (alpha, gamma)

    prev = [s.get("prev_d") for s in states] if rule == "marthe" else None
    g1_parts, dirs = [], [None] * len(params)

    def on_grad(i, g):                      # while g_i, z_i, w_i are in cache; w_i no longer read
        w, z = weights[i], zs[i]
        d = g.add(w, alpha=wd) if wd else g
        if not mu_known:
            g1_parts.append(torch.dot((og[i] if og is not None else d).reshape(-1), prev[i].reshape(-1)))
        if prev is not None:
            states[i]["prev_d"] = prev[i].copy_(d) if d is g else d
        if mu_known:
            z.sub_(d)
        else:
            dirs[i] = d
        _axpy_(w, d, out["neg_eta"])

    loss, grads, _ = tangent_pass(weights, closure.X, closure.y, zs, scale_of, closure.l2, on_grad)
    delta, eta = out["delta"], out["eta"]
    if not mu_known:                        # μ_t needs the whole g'_1 = −d_{t−1}·∇E(w_t)
        _rules.tangent_mu(st, group, rule, delta, -torch.stack(g1_parts).sum(), t)
        mu = float(st["mu"]) if on_cpu else st["mu"]
        for z, d in zip(zs, dirs):
            z.mul_(mu).sub_(d)
    for p, g in zip(params, grads):
        p.grad = g
    rec = {"lr": eta, "hypergradient": delta}
    if rule == "marthe":
        rec.update(mu=st["mu"], beta=st["beta"])
    st["count"] += 1
    opt._record(st, rec)
    return loss.detach()

