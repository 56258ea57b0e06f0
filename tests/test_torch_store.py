"""hgref.torch._store: the reverse mode's stored sweep in one reusable buffer changes no result."""
import sys

import numpy as np
import pytest

import _torch_helpers  # noqa: F401  (one torch thread)
import torch
from hgref.problems import mnist_mlp
from hgref.torch import Workspace, lrs_opt, schedule_hypergradient
from hgref.torch import fused
from hgref.torch._store import SweepStore, _allocate
from hgref.torch.mnist import mnist_torch

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tp():
    return mnist_torch(mnist_mlp((8, 6), seed=1, batch_size=20, sizes=(200, 50, 50)))


def test_workspace_reuses_its_memory_and_reallocates_when_it_must():
    ws = Workspace()
    a = ws.buffer(1000, torch.float64, CPU)
    assert a.shape == (1000,) and a.dtype == torch.float64
    assert ws.buffer(400, torch.float64, CPU).data_ptr() == a.data_ptr()      # smaller: same memory
    b = ws.buffer(5000, torch.float64, CPU)                                  # larger: new memory
    assert b.shape == (5000,) and ws.buffer(5000, torch.float64, CPU).data_ptr() == b.data_ptr()
    assert ws.buffer(10, torch.float32, CPU).dtype == torch.float32          # another dtype
    ws.release()
    assert ws._buf is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_large_cpu_buffers_are_one_writable_region(dtype):
    n = (3 << 22) // torch.empty((), dtype=dtype).element_size() + 7     # > 4 MiB: the mmap path
    x = _allocate(n, dtype, CPU)
    assert x.shape == (n,) and x.dtype == dtype and x.is_contiguous()
    x.fill_(2.5)
    x[-1] = -1.0
    assert float(x[:-1].sum()) == 2.5 * (n - 1) and float(x[-1]) == -1.0


def test_sweep_store_slots_are_disjoint_views_of_the_shapes():
    shapes = [(3, 2), (2,), (2, 4), (4,)]
    store = SweepStore(5, shapes, 2, torch.float64, CPU)
    views = [v for i in range(5) for v in store.weights(i) + store.grad(i) + [u for b in store.buffers(i) for u in b]]
    assert [tuple(v.shape) for v in store.weights(2)] == shapes and len(store.buffers(0)) == 2
    for k, v in enumerate(views):
        v.fill_(k)
    assert all(torch.all(v == k) for k, v in enumerate(views))             # no two views overlap


def test_grad_into_given_tensors_equals_grad(tp):
    params = [p.detach() for p in tp.model().flat_parameters()]
    X, y = tp.batch(0, 0)
    loss, g = fused.grad(params, X, y, 1e-3)
    out = [torch.full_like(p, np.nan) for p in params]
    loss2, g2 = fused.grad(params, X, y, 1e-3, out=out)
    assert torch.equal(loss, loss2) and all(a is b for a, b in zip(g2, out))
    assert all(torch.equal(a, b) for a, b in zip(g, g2))


@pytest.mark.parametrize("name, hp", [("sgd", {}), ("heavy_ball", {"momentum": 0.9, "weight_decay": 1e-3}),
                                      ("adam", {})])
def test_schedule_hypergradient_with_a_shared_workspace_is_bitwise_unchanged(tp, name, hp):
    ws = Workspace()
    runs = [(np.linspace(0.05, 0.02, 9), None), (np.full(4, 0.03), None), (np.linspace(0.04, 0.01, 9), 3)]
    if name == "adam":
        runs = [(s * 0.02, k) for s, k in runs]
    for schedule, k in runs:
        fresh = schedule_hypergradient(tp, schedule, name, seed=4, checkpoint_every=k, **hp)
        shared = schedule_hypergradient(tp, schedule, name, seed=4, checkpoint_every=k, workspace=ws, **hp)
        kept = [t.clone() for t in shared]
        assert all(torch.equal(a, b) for a, b in zip(fresh, shared))
        ws.buffer(1, tp.X_val.dtype, CPU).fill_(np.nan)                       # results own their memory
        assert all(torch.equal(a, b) for a, b in zip(kept, shared))
    assert ws._buf is not None
    with pytest.raises(TypeError, match="workspace must be an hgref.torch.Workspace or None, got dict"):
        schedule_hypergradient(tp, [0.1], workspace={})


def test_lrs_opt_keeps_one_workspace_for_its_iterations(tp, monkeypatch):
    seen = []
    real = schedule_hypergradient

    def spy(*args, workspace=None, **kw):
        seen.append(workspace)
        return real(*args, workspace=workspace, **kw)

    monkeypatch.setattr(sys.modules["hgref.torch.lrs_opt"], "schedule_hypergradient", spy)
    lrs_opt(tp, np.full(5, 0.05), outer_steps=3, outer_lr=0.05, seed=0)
    assert len(seen) >= 3 and isinstance(seen[0], Workspace) and all(w is seen[0] for w in seen)
