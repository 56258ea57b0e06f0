"""Each dynamics against hand-written update equations, and their properties."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from hgref import dynamics as D

vec = st.lists(st.floats(-10, 10), min_size=1, max_size=6).map(np.array)


def _grads(rng, d, steps):
    return [rng.standard_normal(d) for _ in range(steps)]


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_sgd_by_hand(wd):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(4)
    dyn = D.sgd(weight_decay=wd)
    s = dyn.init(w)
    for k, g in enumerate(_grads(rng, 4, 3)):
        eta = 0.1 * (k + 1)
        expected = s.w - eta * (g + wd * s.w)
        s = dyn.step(s, eta, g)
        np.testing.assert_allclose(s.w, expected, rtol=1e-15)
    assert s.count == 3


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_momentum_by_hand(nesterov, wd):
    rng = np.random.default_rng(1)
    w = rng.standard_normal(5)
    mu = 0.9
    dyn = D.nesterov(mu, wd) if nesterov else D.heavy_ball(mu, wd)
    s = dyn.init(w)
    v = np.zeros(5)
    for k, g in enumerate(_grads(rng, 5, 4)):
        eta = 0.05
        geff = g + wd * w
        v = geff if k == 0 else mu * v + geff          # torch: buf = g.clone() at step 1
        w = w - eta * (geff + mu * v if nesterov else v)
        s = dyn.step(s, eta, g)
        np.testing.assert_allclose(s.w, w, rtol=1e-14)
        np.testing.assert_allclose(s.velocity, v, rtol=1e-14)


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_adam_by_hand(wd):
    rng = np.random.default_rng(2)
    w = rng.standard_normal(3)
    b1, b2, eps = 0.9, 0.999, 1e-8
    dyn = D.adam(b1, b2, eps, weight_decay=wd)
    s = dyn.init(w)
    m = v = np.zeros(3)
    for k, g in enumerate(_grads(rng, 3, 5), start=1):
        geff = g + wd * w
        m = b1 * m + (1 - b1) * geff
        v = b2 * v + (1 - b2) * geff ** 2
        mhat, vhat = m / (1 - b1 ** k), v / (1 - b2 ** k)
        w = w - 0.01 * mhat / (np.sqrt(vhat) + eps)
        s = dyn.step(s, 0.01, g)
        np.testing.assert_allclose(s.w, w, rtol=1e-13)
    assert s.count == 5


@pytest.mark.parametrize("tau", [0.0, 0.5])
def test_heavy_ball_dampening_by_hand(tau):
    """torch SGD(dampening=τ): the first buffer is g (clone, undamped), then v ← μv + (1−τ)g."""
    rng = np.random.default_rng(3)
    w, v, mu, wd = rng.standard_normal(4), np.zeros(4), 0.9, 0.02
    dyn = D.heavy_ball(mu, wd, dampening=tau)
    s = dyn.init(w)
    for k, g in enumerate(_grads(rng, 4, 4)):
        geff = g + wd * w
        v = geff if k == 0 else mu * v + (1 - tau) * geff
        w = w - 0.1 * v
        s = dyn.step(s, 0.1, g)
        np.testing.assert_allclose(s.w, w, rtol=1e-14)
    assert dyn.hyperparams.get("dampening", 0.0) == tau
    assert D.get_dynamics("heavy_ball", **dyn.hyperparams).hyperparams == dyn.hyperparams


def test_nesterov_rejects_dampening_as_torch():
    with pytest.raises(ValueError, match="dampening must be 0 for nesterov"):
        D.nesterov(0.9, dampening=0.1)
    with pytest.raises(ValueError, match="dampening must lie in"):
        D.heavy_ball(0.9, dampening=1.5)


@pytest.mark.parametrize("eps_root", [0.0, 1e-6])
def test_adamw_by_hand(eps_root):
    """torch AdamW: w ← w(1 − ηλ), then w ← w − η m̂/(√v̂ + ε) with moments of the raw g."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal(3)
    b1, b2, eps, lam = 0.9, 0.99, 1e-8, 0.1
    dyn = D.adamw(b1, b2, eps, weight_decay=lam, eps_root=eps_root)
    s = dyn.init(w)
    m = v = np.zeros(3)
    for k, g in enumerate(_grads(rng, 3, 5), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        mhat, vhat = m / (1 - b1 ** k), v / (1 - b2 ** k)
        w = w * (1 - 0.01 * lam) - 0.01 * mhat / (np.sqrt(vhat + eps_root) + eps)
        s = dyn.step(s, 0.01, g)
        np.testing.assert_allclose(s.w, w, rtol=1e-13)
    assert D.l2_weight_decay(dyn) == 0.0 and D.l2_weight_decay(D.adam(weight_decay=0.1)) == 0.1
    assert D.get_dynamics("adamw").hyperparams["weight_decay"] == 1e-2   # torch's default


@given(w=vec, seed=st.integers(0, 2 ** 16))
def test_adamw_without_decay_is_adam(w, seed):
    rng = np.random.default_rng(seed)
    a, b = D.adamw(weight_decay=0.0), D.adam()
    s1, s2 = a.init(w), b.init(w)
    for _ in range(3):
        g = rng.standard_normal(w.size)
        s1, s2 = a.step(s1, 0.01, g), b.step(s2, 0.01, g)
    np.testing.assert_array_equal(D.pack(s1), D.pack(s2))


@given(w=vec, seed=st.integers(0, 2 ** 16))
def test_zero_eta_leaves_weights(w, seed):
    g = np.random.default_rng(seed).standard_normal(w.size)
    for dyn in (D.sgd(0.1), D.heavy_ball(dampening=0.5), D.nesterov(), D.adam(), D.adamw()):
        assert np.array_equal(dyn.step(dyn.init(w), 0.0, g).w, w)


@given(w=vec, eta=st.floats(0, 1), seed=st.integers(0, 2 ** 16), wd=st.floats(0, 1))
def test_heavy_ball_with_zero_momentum_is_sgd(w, eta, seed, wd):
    rng = np.random.default_rng(seed)
    hb, sgd = D.heavy_ball(0.0, wd), D.sgd(wd)
    s1, s2 = hb.init(w), sgd.init(w)
    for _ in range(3):
        g = rng.standard_normal(w.size)
        s1, s2 = hb.step(s1, eta, g), sgd.step(s2, eta, g)
    np.testing.assert_array_equal(s1.w, s2.w)


def test_pack_unpack_roundtrip():
    s = D.adam().init(np.arange(3.0))
    s = D.adam().step(s, 0.1, np.ones(3))
    x = D.pack(s)
    assert x.shape == (9,)
    back = D.unpack(x, s)
    assert type(back) is type(s) and back.count == s.count
    np.testing.assert_array_equal(D.pack(back), x)


def test_adam_zero_gradient_history_has_finite_tangent():
    from autograd import make_jvp
    dyn = D.adam()
    def f(g):
        return dyn.direction(np.zeros(2), (np.zeros(2), np.zeros(2)), g, 0)[0]
    _, t = make_jvp(f)(np.zeros(2))(np.ones(2))
    assert np.all(np.isfinite(t))


@pytest.mark.parametrize("factory,kwargs,arg", [
    (D.sgd, {"weight_decay": -1.0}, "weight_decay"),
    (D.sgd, {"weight_decay": float("nan")}, "weight_decay"),
    (D.heavy_ball, {"momentum": -0.1}, "momentum"),
    (D.heavy_ball, {"momentum": 1.5}, "momentum"),
    (D.nesterov, {"momentum": float("inf")}, "momentum"),
    (D.adam, {"b1": 1.0}, "b1"),
    (D.adam, {"b2": -0.5}, "b2"),
    (D.adam, {"eps": -1e-8}, "eps"),
])
def test_bad_hyperparameters(factory, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        factory(**kwargs)


@pytest.mark.parametrize("eta", [-0.1, float("nan"), float("inf")])
def test_bad_eta(eta):
    dyn = D.sgd()
    with pytest.raises(ValueError, match="eta"):
        dyn.step(dyn.init(np.ones(2)), eta, np.ones(2))


def test_bad_w0_and_name():
    with pytest.raises(ValueError, match="w0"):
        D.sgd().init(np.ones((2, 2)))
    with pytest.raises(ValueError, match="w0"):
        D.sgd().init([1.0, float("nan")])
    with pytest.raises(ValueError, match="dynamics.*accepted values: 'sgd'"):
        D.get_dynamics("rmsprop")
    assert D.get_dynamics("nesterov", momentum=0.5).hyperparams["momentum"] == 0.5
