"""MNIST problems: hand-written derivatives against autograd, batches, metrics, arguments."""
import math

import numpy as np
import pytest
from autograd import grad, make_jvp, value_and_grad

from hgref.data import load_mnist, split_indices
from hgref.problems.mnist import mnist_logreg, mnist_mlp

ARCHS = {"logreg": (), "mlp32": (32,), "mlp32-16": (32, 16)}


@pytest.fixture(scope="module")
def problems():
    cache = {}

    def get(hidden=(32,), **kw):
        key = (tuple(hidden), tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = mnist_mlp(hidden, **kw)
        return cache[key]

    return get


def _close(actual, ref):
    ref = np.asarray(ref)
    np.testing.assert_allclose(actual, ref, rtol=1e-12, atol=1e-12 * max(np.abs(ref).max(), 1e-300))


def _point(p, seed):
    rng = np.random.default_rng(seed)
    return p.w0 + 0.05 * rng.standard_normal(p.dim), rng.standard_normal(p.dim)


# --------------------------------------------------------------------------- derivatives

@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("arch", ARCHS)
def test_derivatives_match_autograd(problems, arch, l2):
    p = problems(ARCHS[arch], l2=l2, seed=1)
    ag_vg, ag_g = value_and_grad(p.loss), grad(p.loss)
    for t in (0, 69, 70):  # last batch of epoch 0, first of epoch 1
        b = p.batch(t, 5)
        w, v = _point(p, t)
        value, g = p.value_and_grad(w, b)
        ref_value, ref_g = ag_vg(w, b)
        assert isinstance(value, float)
        _close(value, ref_value)
        _close(g, ref_g)
        value2, g2, hv = p.grad_and_hvp(w, b, v)
        ref_g2, ref_hv = make_jvp(lambda u: ag_g(u, b))(w)(v)
        _close(value2, ref_value)
        _close(g2, ref_g2)
        _close(hv, ref_hv)
    w_copy, v_copy, X_copy = w.copy(), v.copy(), b[0].copy()
    p.grad_and_hvp(w, b, v)
    p.value_and_grad(w, b)
    assert np.array_equal(w, w_copy) and np.array_equal(v, v_copy) and np.array_equal(b[0], X_copy)


@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("arch", ARCHS)
def test_hvp_only_pass_equals_grad_and_hvp(problems, arch, l2):
    """The adjoint's fast path (``grad_and_hvp.hvp``, no weight gradients) is the same
    arithmetic as the fused pass: bitwise equal in float64."""
    p = problems(ARCHS[arch], l2=l2, seed=1)
    for t in (0, 70):
        b = p.batch(t, 2)
        w, v = _point(p, t + 1)
        assert np.array_equal(p.grad_and_hvp.hvp(w, b, v), p.grad_and_hvp(w, b, v)[2])


def test_hvp_is_linear_and_symmetric(problems):
    p = problems((32, 16))
    b = p.batch(3, 0)
    w, u = _point(p, 0)
    v = np.random.default_rng(9).standard_normal(p.dim)
    hu, hv = p.grad_and_hvp(w, b, u)[2], p.grad_and_hvp(w, b, v)[2]
    _close(p.grad_and_hvp(w, b, 2.0 * u - v)[2], 2.0 * hu - hv)
    assert math.isclose(u @ hv, v @ hu, rel_tol=1e-10)


@pytest.mark.parametrize("arch", ["logreg", "mlp32-16"])
def test_objective_grad_matches_autograd(problems, arch):
    p = problems(ARCHS[arch], l2=0.01)
    w, _ = _point(p, 2)
    _close(p.objective_grad(w), grad(p.objective)(w))


def test_objective_has_no_l2(problems):
    p0, p1 = problems((32,)), problems((32,), l2=0.5)
    w, _ = _point(p0, 3)
    assert p1.objective(w) == p0.objective(w)
    np.testing.assert_array_equal(p1.objective_grad(w), p0.objective_grad(w))
    b = p0.batch(0, 0)
    assert math.isclose(p1.loss(w, b) - p0.loss(w, b), 0.25 * (w @ w), rel_tol=1e-12)


# --------------------------------------------------------------------------- batches

def test_batches_deterministic_and_seeded(problems):
    p = problems((32,))
    X, y = p.batch(4, 0)
    assert X.shape == (100, 784) and y.shape == (100,) and y.dtype == np.int64
    X2, y2 = p.batch(4, 0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(p.batch(4, 1)[0], X)
    assert not np.array_equal(p.batch(4 + 70, 0)[0], X)  # same slot, next epoch


def test_one_epoch_covers_the_train_split_once(problems):
    p = problems((32,), batch_size=100)
    assert p.info["steps_per_epoch"] == 70
    epoch = np.concatenate([p.batch(t, 7)[0] for t in range(70)])
    images, _ = load_mnist("test")
    train = images[split_indices(10000, (7000, 700, 2300), seed=0)[0]]
    as_rows = lambda X: sorted(map(bytes, np.rint(X * 255).astype(np.uint8)))  # noqa: E731
    assert as_rows(epoch) == as_rows(train)


def test_split_seed_defaults_to_seed(problems):
    assert problems((32,), seed=3).info["split_seed"] == 3
    a = problems((32,), seed=3, split_seed=0)
    b = problems((32,), seed=0)
    assert a.objective(b.w0) == b.objective(b.w0)  # same validation split
    assert problems((32,), seed=3).objective(b.w0) != b.objective(b.w0)


# --------------------------------------------------------------------------- init, metrics, info

def test_glorot_init(problems):
    p = problems((32, 16), seed=4)
    o = 0
    for n_in, n_out in zip((784, 32, 16), (32, 16, 10)):
        W, b = p.w0[o:o + n_in * n_out], p.w0[o + n_in * n_out:o + n_in * n_out + n_out]
        o += n_in * n_out + n_out
        lim = math.sqrt(6.0 / (n_in + n_out))
        assert np.all(np.abs(W) <= lim) and np.abs(W).max() > 0.9 * lim
        assert abs(W.mean()) < 0.1 * lim and np.all(b == 0.0)
    assert o == p.dim
    np.testing.assert_array_equal(p.w0, mnist_mlp((32, 16), seed=4).w0)
    assert not np.array_equal(p.w0, problems((32, 16), seed=5).w0)


def test_he_and_zeros_init():
    he = mnist_mlp((64,), init="he", seed=0)
    W1 = he.w0[:784 * 64]
    assert math.isclose(W1.std(), math.sqrt(2.0 / 784), rel_tol=0.05)
    assert not np.any(mnist_logreg(init="zeros").w0)


def test_metrics_keys_and_ranges(problems):
    p = problems((32,))
    m = p.metrics(p.w0)
    assert set(m) == {f"{s}_{k}" for s in ("train", "val", "test") for k in ("loss", "acc")}
    for s in ("train", "val", "test"):
        assert 0.0 <= m[f"{s}_acc"] <= 1.0 and 0.0 < m[f"{s}_loss"] < 5.0
    assert m["val_loss"] == pytest.approx(p.objective(p.w0), rel=1e-12)


def test_sgd_on_logreg_learns(problems):
    p = problems(())
    w = p.w0.copy()
    for t in range(100):
        w -= 0.5 * p.value_and_grad(w, p.batch(t, 0))[1]
    m0, m = p.metrics(p.w0), p.metrics(w)
    assert m["val_loss"] < 0.6 * m0["val_loss"] and m["test_acc"] > 0.8


def test_logreg_is_mlp_without_hidden_layers():
    p = mnist_logreg(seed=2, l2=0.1)
    q = mnist_mlp((), seed=2, l2=0.1)
    assert p.name == q.name == "mnist_logreg" and p.dim == 785 * 10
    np.testing.assert_array_equal(p.w0, q.w0)
    assert mnist_mlp((32, 16)).name == "mnist_mlp32-16"
    assert p.info["layers"] == [784, 10] and p.info["l2"] == 0.1


# --------------------------------------------------------------------------- arguments

@pytest.mark.parametrize("kwargs, exc, match", [
    ({"l2": -0.1}, ValueError, "l2"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 7001}, ValueError, "batch_size.*7000"),
    ({"init": "xavier"}, ValueError, "init.*'glorot', 'he', 'zeros'"),
    ({"hidden": (32, 0)}, ValueError, r"hidden\[1\]"),
    ({"hidden": (-4,)}, ValueError, r"hidden\[0\]"),
    ({"hidden": (2.5,)}, TypeError, r"hidden\[0\]"),
    ({"seed": -1}, ValueError, "seed"),
    ({"sizes": (7000, 700)}, ValueError, "sizes"),
    ({"sizes": (9000, 700, 2300)}, ValueError, "sizes"),
    ({"split": "val"}, ValueError, "split"),
])
def test_bad_arguments_are_named(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mnist_mlp(**kwargs)


def test_bad_batch_step_is_named(problems):
    with pytest.raises(ValueError, match="t must"):
        problems((32,)).batch(-1, 0)
