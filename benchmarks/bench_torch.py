"""Step-time ratios of the torch bridge (CPU) on the MARTHE §5 MLP 784-500-500-500-10, batch 100.

Usage: ``python benchmarks/bench_torch.py [--quick] [--threads N]`` → benchmarks/results/torch.json.

A "train step" is what a user's loop pays per iteration: zero_grad, forward, backward (with
``create_graph`` for the tangent rules), ∇E on a validation batch of 100 where the rule needs
it, and ``optimizer.step``. Reported, each as a median of interleaved per-repetition ratios:

* float32: HD / torch.optim.SGD (target ≤ 1.05), MARTHE / SGD (target ≤ 3), RTHO / SGD,
  MARTHE with E = L (no validation pass) / SGD, the same with the fused gradient+HVP closure
  :class:`hgref.torch.fused.MLPClosure` (``*_train_fused``, target ≤ 2.5), the bridge's
  constant rule / SGD, the optimizer.step()-only ratio of HD, and ``torch_sgd_vs_torch_sgd``,
  a second SGD model against the first: the noise floor of these ratios (A/A control);
* ``floor`` (:mod:`torch_floor`): the fused tangent pass alone, the pass's GEMMs alone and an
  SGD step's GEMMs alone, each / a torch SGD step, and the GEMM flop count of the exact
  gradient + HVP step over SGD's — what bounds ``*_train_fused`` from below;
* torch / NumPy per step in float64 and float32 (NumPy is float64 only): a plain SGD step
  (gradient + update) and a tangent step (gradient, HVP, update: ``hgref.linearize``).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from common import ratio, write
from torch_floor import flop_ratio, gemm_replay, pass_only
from torch.nn import functional as F

from hgref import dynamics as D
from hgref.linearize import advance, linearize
from hgref.problems import make_problem
from hgref.torch import HypergradientOptimizer
from hgref.torch.fused import MLPClosure
from hgref.torch.models import MLP

WIDTHS, B = (784, 500, 500, 500, 10), 100


def make_step(kind, dtype, n_batches=8):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n_batches, B, 784, generator=g, dtype=dtype)
    y = torch.randint(0, 10, (n_batches, B), generator=g)
    Xv, yv = torch.randn(B, 784, generator=g, dtype=dtype), torch.randint(0, 10, (B,), generator=g)
    model = MLP(WIDTHS, generator=g, dtype=dtype)
    params = list(model.parameters())
    tangent = kind.startswith(("marthe", "rtho"))
    if kind == "torch_sgd":
        opt = torch.optim.SGD(params, lr=1e-3)
    elif kind == "constant":
        opt = HypergradientOptimizer(params, 1e-3, rule="constant")
    elif kind == "hd":
        opt = HypergradientOptimizer(params, 1e-3, rule="hd", hyper_lr=1e-6)
    elif kind == "rtho":
        opt = HypergradientOptimizer(params, 1e-3, rule="rtho", hyper_lr=1e-8)
    elif kind == "marthe":
        opt = HypergradientOptimizer(params, 1e-3, rule="marthe", hyper_lr=1e-8)
    elif kind in ("marthe_train", "marthe_train_fused"):
        opt = HypergradientOptimizer(params, 1e-3, rule="marthe", hyper_lr=1e-8, objective="train")
    elif kind == "rtho_train_fused":
        opt = HypergradientOptimizer(params, 1e-3, rule="rtho", hyper_lr=1e-8, objective="train")
    counter = [0]

    def step():
        k = counter[0] % n_batches
        counter[0] += 1

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(model(X[k]), y[k])
            loss.backward(create_graph=tangent)
            return loss

        if kind.endswith("_fused"):
            closure = MLPClosure(model, X[k], y[k])
        if isinstance(opt, HypergradientOptimizer) and opt.objective == "validation":
            opt.step(closure, objective_closure=lambda: F.cross_entropy(model(Xv), yv))
        else:
            opt.step(closure)

    for _ in range(2):          # past t = 0 (no HVP) and lazy state allocation
        step()
    return step, opt, model, (X[0], y[0])


def step_only(kind, dtype):
    """optimizer.step() alone, gradients precomputed."""
    _, opt, model, (X, y) = make_step(kind, dtype)
    opt.zero_grad()
    F.cross_entropy(model(X), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]

    def step():
        for p, g in zip(model.parameters(), grads):
            p.grad = g.clone()
        opt.step()

    return step


def numpy_steps():
    """hgref NumPy SGD step and tangent step (linearize) on the same MLP, float64."""
    from hgref.problems.mnist import _grad_and_hvp, _init_weights, _value_and_grad
    shapes = tuple(zip(WIDTHS[:-1], WIDTHS[1:]))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((B, 784)), rng.integers(0, 10, B)
    problem = make_problem("mlp", _init_weights(shapes, "glorot", 0), lambda w, b: 0.0,
                           value_and_grad=lambda w, b: _value_and_grad(w, X, y, shapes, 0.0),
                           grad_and_hvp=lambda w, b, v: _grad_and_hvp(w, X, y, v, shapes, 0.0),
                           batch=lambda t, s: None)
    dyn = D.sgd()
    state = [dyn.init(problem.w0)]
    z = [np.zeros(problem.dim)]

    def sgd_step():
        _, g = problem.value_and_grad(state[0].w, None)
        state[0] = dyn.step(state[0], 1e-3, g)

    def tangent_step():
        step, tan = linearize(problem, dyn, state[0], None, z[0])
        z[0] = z[0] - 1e-3 * tan.direction - step.direction
        state[0] = advance(state[0], step, 1e-3)

    return sgd_step, tangent_step


def collect(quick=False, threads=1):
    """Torch-bridge ratios (float32 vs torch.optim.SGD) and torch/NumPy per step; the payload of torch.json."""
    torch.set_num_threads(threads)
    repeat, inner = (11, 10) if quick else (15, 10)   # cheap: keeps the median stable under load

    def loop(fn):
        return lambda: [fn() for _ in range(inner)]

    results = {"float32": {}, "torch_vs_numpy": {}}
    base = loop(make_step("torch_sgd", torch.float32)[0])
    for kind in ("torch_sgd", "constant", "hd", "rtho", "marthe", "marthe_train", "marthe_train_fused",
                 "rtho_train_fused"):
        r = ratio(loop(make_step(kind, torch.float32)[0]), base, repeat=repeat)
        results["float32"][f"{kind}_vs_torch_sgd"] = dict(r, numerator_s=r["numerator_s"] / inner,
                                                          denominator_s=r["denominator_s"] / inner)
    _, opt, model, (X, y) = make_step("rtho_train_fused", torch.float32)
    fused_gemms, sgd_gemms = gemm_replay(WIDTHS, B, torch.float32)
    results["floor"] = {f"{name}_vs_torch_sgd": ratio(loop(fn), base, repeat=repeat) for name, fn in
                        (("tangent_pass", pass_only(model, opt, X, y)), ("fused_gemms", fused_gemms),
                         ("sgd_gemms", sgd_gemms))}
    results["floor"]["fused_gemms_vs_sgd_gemms"] = ratio(loop(fused_gemms), loop(sgd_gemms), repeat=repeat)
    results["floor"]["gemm_flops_fused_over_sgd"] = {"ratio": flop_ratio(WIDTHS), "kind": "count"}
    r = ratio(loop(step_only("hd", torch.float32)), loop(step_only("torch_sgd", torch.float32)), repeat=repeat)
    results["float32"]["hd_vs_torch_sgd_optimizer_step_only"] = r
    np_sgd, np_tangent = numpy_steps()
    for dt in (torch.float64, torch.float32):
        name = str(dt).split(".")[1]
        results["torch_vs_numpy"][f"sgd_step_{name}"] = ratio(
            loop(make_step("constant", dt)[0]), loop(np_sgd), repeat=max(3, repeat // 3))
        results["torch_vs_numpy"][f"tangent_step_{name}"] = ratio(
            loop(make_step("marthe_train", dt)[0]), loop(np_tangent), repeat=max(3, repeat // 3))
    targets = {"hd_vs_torch_sgd": 1.05, "marthe_vs_torch_sgd": 3.0, "marthe_train_fused_vs_torch_sgd": 2.5}
    return {"results": results, "targets": targets, "torch": torch.__version__,
            "threads": threads, "model": "MLP 784-500-500-500-10", "batch_size": B,
            "note": "train step = zero_grad + forward + backward (+ create_graph, + validation "
                    "gradient on 100 examples where the rule needs it) + optimizer.step"}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    payload = collect(args.quick, args.threads)
    write("torch", payload)
    for group, rs in payload["results"].items():
        for k, v in rs.items():
            print(f"{group:15s} {k:45s} ratio {v['ratio']:.3f}")


if __name__ == "__main__":
    main()
