"""What bounds the fused RTHO/MARTHE step of the torch bridge: its GEMMs, counted and timed.

The exact SGD tangent step (MARTHE Eq. 9) needs ∇L_t and ∇²L_t Z_t. Per hidden layer with
input a, weights W and tangent V (batch B), Pearlmutter's passes cost these B-row GEMMs
(one "unit" = 2·B·in·out flops):

* forward ``aW`` (1, as SGD), R-forward ``Ra W + a V`` (2);
* backward ``aᵀδ`` and ``δWᵀ`` (2, as SGD), R-backward ``Rδ Wᵀ + δ Vᵀ`` (2) and
  ``aᵀRδ + Raᵀδ`` (2);

9 units against SGD's 3. The first layer has no error to pass down and Ra = 0 there: 4
units against 2. :func:`flop_ratio` is that count for a network; on 784-500×3-10 it is
2.66. Where a GEMM's rate does not depend on its shape (B or 2B rows, K = B or 2B), the
step can come below that ratio only by the SGD step's own non-GEMM work (autograd,
allocation, cross-entropy, the update).

:func:`gemm_replay` times exactly the GEMMs of :func:`hgref.torch.fused.tangent_pass` (same
shapes, layouts and in-place accumulations, outputs preallocated, nothing else) and those of
an SGD step; :func:`pass_only` the pass alone with fixed coefficients (no rule, no weight
update, no μ). :mod:`bench_torch` reports each against a torch SGD train step.
"""
from __future__ import annotations

import torch

from hgref.torch.fused import tangent_pass


def flop_ratio(widths):
    """GEMM flops of the exact gradient + HVP step over those of an SGD step (a count)."""
    layers = list(zip(widths[:-1], widths[1:]))
    fused = sum(i * o * (4 if l == 0 else 9) for l, (i, o) in enumerate(layers))
    sgd = sum(i * o * (2 if l == 0 else 3) for l, (i, o) in enumerate(layers))
    return fused / sgd


def gemm_replay(widths, B, dtype=torch.float32, seed=0):
    """``(fused, sgd)``: callables running only the GEMMs of the fused pass / an SGD step."""
    g = torch.Generator().manual_seed(seed)
    layers = list(zip(widths[:-1], widths[1:]))
    W = [torch.randn(i, o, generator=g, dtype=dtype) * 0.05 for i, o in layers]
    V = [torch.randn(i, o, generator=g, dtype=dtype) * 0.05 for i, o in layers]
    G = [torch.empty(i, o, dtype=dtype) for i, o in layers]
    X = torch.randn(B, widths[0], generator=g, dtype=dtype)
    A = [X] + [torch.randn(2 * B, o, generator=g, dtype=dtype) for o in widths[1:-1]]   # [a; Ra]
    D = [torch.randn(2 * B, o, generator=g, dtype=dtype) for o in widths[1:]]           # [Rδ; δ]
    Z = [torch.empty(2 * B, o, dtype=dtype) for o in widths[1:]]
    n = len(layers)

    def fused():
        torch.mm(X, W[0], out=Z[0][:B])
        torch.mm(X, V[0], out=Z[0][B:])
        for l in range(1, n):
            torch.mm(A[l], W[l], out=Z[l])
            Z[l][B:].addmm_(A[l][:B], V[l])
        for l in range(n - 1, 0, -1):
            torch.mm(A[l][:B].T, D[l][B:], out=G[l])
            torch.mm(D[l], W[l].T, out=Z[l - 1])
            Z[l - 1][:B].addmm_(D[l][B:], V[l].T)
            V[l].addmm_(A[l].T, D[l], beta=0.9, alpha=-1e-3)
        torch.mm(X.T, D[0][B:], out=G[0])
        V[0].addmm_(X.T, D[0][:B], beta=0.9, alpha=-1e-3)

    def sgd():
        torch.mm(X, W[0], out=Z[0][:B])
        for l in range(1, n):
            torch.mm(A[l][:B], W[l], out=Z[l][:B])
        for l in range(n - 1, 0, -1):
            torch.mm(A[l][:B].T, D[l][B:], out=G[l])
            torch.mm(D[l][B:], W[l].T, out=Z[l - 1][B:])
        torch.mm(X.T, D[0][B:], out=G[0])

    return fused, sgd


def pass_only(model, opt, X, y):
    """The fused tangent pass alone on ``model`` (``opt``'s tangents, α = −1e-9, γ = 1)."""
    params = [p.detach() for p in model.flat_parameters()]
    zs = [opt.state[p]["z"][0, 0] for p in model.flat_parameters()]
    return lambda: tangent_pass(params, X, y, zs, lambda loss, dloss: (-1e-9, 1.0))
