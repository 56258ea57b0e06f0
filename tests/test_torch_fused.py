"""hgref.torch.fused and the fast paths built on it, each against its reference in float64:
the fused gradient / HVP passes against autograd's double backward, the optimizer's fused
RTHO/MARTHE step (MLPClosure) against the generic double-backward closure, the torch
reverse mode with checkpointing against the stored sweep."""
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.nn import functional as F

import _torch_helpers  # noqa: F401  (one torch thread)
from hgref import DivergenceError
from hgref.problems import mnist_mlp
from hgref.torch import HypergradientOptimizer, schedule_hypergradient
from hgref.torch import fused
from hgref.torch.lrs_opt import _checkpoint_every, _layers, mlp_forward
from hgref.torch.mnist import mnist_torch
from hgref.torch.models import MLP


def _max_rel(xs, ys):
    return max(float(((x - y).abs().max() / y.abs().max().clamp_min(1e-300)).detach()) for x, y in zip(xs, ys))


@settings(max_examples=15, deadline=None)
@given(hidden=st.lists(st.integers(1, 7), max_size=3), B=st.integers(1, 9),
       l2=st.sampled_from([0.0, 0.1]), seed=st.integers(0, 10_000))
def test_fused_passes_equal_double_backward(hidden, B, l2, seed):
    g = torch.Generator().manual_seed(seed)
    m = MLP((6, *hidden, 4), generator=g, dtype=torch.float64)
    X = torch.randn(B, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (B,), generator=g)
    ps = m.flat_parameters()
    for p in ps[1::2]:
        p.data.normal_(generator=g)          # nonzero biases: every term of the R-op matters
    vs = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in ps]
    loss = F.cross_entropy(m(X), y) + 0.5 * l2 * sum((p * p).sum() for p in ps)
    ref_g = torch.autograd.grad(loss, ps, create_graph=True)
    ref_h = torch.autograd.grad(ref_g, ps, grad_outputs=vs)
    w = [p.detach() for p in ps]
    with torch.no_grad():
        l1, g1 = fused.grad(w, X, y, l2)
        l2_, g2, h2 = fused.grad_and_hvp(w, X, y, vs, l2)
        _, none, h3 = fused.grad_and_hvp(w, X, y, vs, l2, with_grad=False)
    ref = float(loss.detach())
    assert abs(float(l1) - ref) <= 1e-14 and abs(float(l2_) - ref) <= 1e-14 and none is None
    assert _max_rel(g1, ref_g) <= 1e-12 and _max_rel(g2, ref_g) <= 1e-12
    assert _max_rel(h2, ref_h) <= 1e-12 and all(torch.equal(a, b) for a, b in zip(h3, h2))
    assert torch.equal(mlp_forward(w, m.widths, X), mlp_forward(m.flat(), m.widths, X))


def _train(tp, steps, fast, **kw):
    model = tp.model()
    opt = HypergradientOptimizer(model.flat_parameters(), **kw)
    for t in range(steps):
        X, y = tp.batch(t, 0)
        if fast:
            closure = fused.MLPClosure(model, X, y, tp.l2)
        else:
            def closure():
                opt.zero_grad()
                loss = tp.loss(model, X, y)
                loss.backward(create_graph=True)
                return loss
        obj = (lambda: tp.objective(model)) if opt.objective == "validation" else None
        opt.step(closure, objective_closure=obj)
    return model, opt


@pytest.mark.parametrize("dyn, kw", [("sgd", dict(rule="marthe", hyper_lr=1e-3, objective="train")),
                                     ("heavy_ball", dict(rule="rtho", hyper_lr=1e-3)),
                                     ("adam", dict(rule="marthe", hyper_lr=1e-7, objective="train"))])
def test_optimizer_fused_step_equals_double_backward(dyn, kw):
    tp = mnist_torch(mnist_mlp((8, 6), seed=0, batch_size=20, sizes=(200, 50, 50), l2=1e-3))
    lr = 1e-3 if dyn == "adam" else 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # the reference closure's backward(create_graph)
        ref_model, ref = _train(tp, 12, False, lr=lr, dynamics=dyn, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # the fused path emits none
        model, opt = _train(tp, 12, True, lr=lr, dynamics=dyn, **kw)
    etas, ref_etas = opt.lr_history().numpy(), ref.lr_history().numpy()
    assert np.ptp(ref_etas) > 0
    np.testing.assert_allclose(etas, ref_etas, rtol=1e-12, atol=0)
    np.testing.assert_allclose(model.flat().numpy(), ref_model.flat().numpy(), rtol=0,
                               atol=1e-12 * float(ref_model.flat().abs().max()))


@pytest.mark.parametrize("rule, kw", [
    ("rtho", dict(objective="train")),
    ("rtho", dict(objective="validation", weight_decay=1e-3)),
    ("marthe", dict(objective="train", weight_decay=1e-3)),                 # adaptive μ and β
    ("marthe", dict(objective="validation")),
    ("marthe", dict(objective="train", mu=0.9, adapt_beta=False)),
    ("marthe", dict(objective="train", mu=0.0, beta0=1e-3)),                # μ = 0: Z reset each step
])
@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_sgd_fast_tangent_step_equals_double_backward(rule, kw, l2, monkeypatch):
    """hgref.torch._fast (in-GEMM tangent update) against the generic double-backward step."""
    from hgref.torch import _fast
    calls = []
    monkeypatch.setattr(_fast, "tangent_pass", lambda *a, **k: calls.append(1) or fused.tangent_pass(*a, **k))
    tp = mnist_torch(mnist_mlp((8, 6), seed=0, batch_size=20, sizes=(200, 50, 50), l2=l2))
    kw = dict(lr=0.05, dynamics="sgd", rule=rule, hyper_lr=1e-3, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # the reference closure's backward(create_graph)
        ref_model, ref = _train(tp, 12, False, **kw)
    assert not calls
    model, opt = _train(tp, 12, True, **kw)
    assert len(calls) == 11                       # every step after t = 0
    for key in ref._gstate[0]["history"]:
        np.testing.assert_allclose(opt.lr_history(key=key).numpy(), ref.lr_history(key=key).numpy(),
                                   rtol=1e-11, atol=1e-300)
    assert np.ptp(ref.lr_history().numpy()) > 0
    scale = float(ref_model.flat().abs().max())
    np.testing.assert_allclose(model.flat().numpy(), ref_model.flat().numpy(), rtol=0, atol=1e-12 * scale)
    for p, q in zip(model.flat_parameters(), ref_model.flat_parameters()):
        z, zr = opt.state[p]["z"], ref.state[q]["z"]
        assert float((z - zr).abs().max()) <= 1e-11 * float(zr.abs().max().clamp_min(1e-300))
        assert float((p.grad - q.grad).abs().max()) <= 1e-12 * float(q.grad.abs().max().clamp_min(1e-300))
        if rule == "marthe":
            assert torch.allclose(opt.state[p]["prev_d"], ref.state[q]["prev_d"], rtol=1e-11, atol=0)


@pytest.mark.parametrize("scalars", ["float", "tensor"])
def test_tangent_pass_equals_grad_and_hvp(scalars):
    """v ← γv + α∇²L v in the backward GEMMs, float and 0-d tensor coefficients (device path)."""
    g = torch.Generator().manual_seed(3)
    m = MLP((6, 5, 4, 3), generator=g, dtype=torch.float64)
    w = [p.detach() for p in m.flat_parameters()]
    for p in w[1::2]:
        p.normal_(generator=g)
    X, y = torch.randn(7, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (7,), generator=g)
    vs = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in w]
    loss, grad, hvp = fused.grad_and_hvp(w, X, y, vs, 0.1)
    coef = (-0.3, 0.7) if scalars == "float" else (torch.tensor(-0.3, dtype=torch.float64),
                                                    torch.tensor(0.7, dtype=torch.float64))
    seen, v2 = [], [v.clone() for v in vs]
    l2_, g2, dl = fused.tangent_pass(w, X, y, v2, lambda L, d: coef, 0.1, lambda i, gi: seen.append(i))
    assert sorted(seen) == list(range(len(w))) and float(abs(l2_ - loss)) <= 1e-15
    assert _max_rel(g2, grad) <= 1e-14
    assert abs(float(dl) - sum(float((a * b).sum()) for a, b in zip(grad, vs))) <= 1e-13
    assert _max_rel(v2, [0.7 * v - 0.3 * h for v, h in zip(vs, hvp)]) <= 1e-14


def test_mlp_closure_is_a_plain_closure_too():
    tp = mnist_torch(mnist_mlp((8,), seed=0, batch_size=20, sizes=(200, 50, 50)))
    model = tp.model()
    X, y = tp.batch(0, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = fused.MLPClosure(model, X, y)()
    other = tp.model()
    ref = torch.autograd.grad(F.cross_entropy(other(X), y), list(other.parameters()))
    assert float(loss.detach()) == float(F.cross_entropy(other(X), y).detach())
    assert all(p.grad.requires_grad for p in model.flat_parameters())
    assert _max_rel([p.grad.detach() for p in model.parameters()], ref) <= 1e-14


@pytest.mark.parametrize("dyn, hp", [("sgd", {}), ("adam", {"weight_decay": 1e-3})])
def test_reverse_checkpointed_equals_stored_and_divergence_named(dyn, hp):
    tp = mnist_torch(mnist_mlp((8,), seed=1, batch_size=20, sizes=(200, 50, 50)))
    schedule = np.linspace(0.05, 0.01, 7) if dyn == "sgd" else np.full(7, 1e-3)
    value, grad = schedule_hypergradient(tp, schedule, dyn, seed=2, **hp)
    for k in (1, 3, 7):
        v, g = schedule_hypergradient(tp, schedule, dyn, seed=2, checkpoint_every=k, **hp)
        assert torch.equal(v, value) and torch.equal(g, grad)
    with pytest.raises(DivergenceError) as err:
        schedule_hypergradient(tp, np.full(15, 1e30), "sgd", weight_decay=1.0)
    assert err.value.step >= 1 and "loss" in str(err.value)
    v, g = schedule_hypergradient(tp, schedule, dyn, seed=2, checkpoint_every=None, **hp)
    assert torch.equal(v, value) and torch.equal(g, grad)
    with pytest.raises(ValueError, match="checkpoint_every"):
        schedule_hypergradient(tp, schedule, checkpoint_every=0)
    assert _checkpoint_every("auto", 10, 1, torch.device("cpu")) is None
    assert _checkpoint_every("auto", 10, 2 ** 62, torch.device("cpu")) == 4     # ⌈√10⌉
    assert [p.shape for p in _layers(tp.model().flat(), (784, 8, 10))] == [
        p.shape for p in tp.model().flat_parameters()]
