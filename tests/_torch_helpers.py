"""Shared helpers for tests/test_torch_*.py: one torch thread, and a driver that trains the
torch MNIST bridge with a :class:`hgref.torch.HypergradientOptimizer` (the NumPy reference is
:func:`hgref.train.run` with :mod:`hgref.rules`)."""
from __future__ import annotations


import torch


torch.set_num_threads(1)   # tiny models: threads only add contention on the 2-core CI


def torch_run(tp, steps, seed=0, *, opt=None, model=None, start=0, **opt_kwargs):
    """Train ``tp``'s MLP with :class:`HypergradientOptimizer`; returns (model, optimizer)."""
    from hgref.torch import HypergradientOptimizer

    model = model or tp.model()
    opt = opt or HypergradientOptimizer(model.flat_parameters(), **opt_kwargs)
    tangent = opt.rule in ("rtho", "marthe")
    for t in range(start, start + steps):
        X, y = tp.batch(t, seed)

        def closure():
            opt.zero_grad()
            loss = tp.loss(model, X, y)
            loss.backward(create_graph=tangent)
            return loss

        needs_e = opt.objective == "validation"
        opt.step(closure, objective_closure=(lambda: tp.objective(model)) if needs_e else None)
    return model, opt
