"""A_t, B_t from hgref.linearize against autograd Jacobians of the whole step Φ_t."""
import numpy as np
import pytest
from autograd import grad, jacobian
from hypothesis import given, strategies as st

from hgref import dynamics as D
from hgref import problems
from hgref.dynamics import pack, unpack
from hgref.linearize import adjoint, advance, evaluate, linearize, tangent_update

ALL = {
    "sgd": lambda: D.sgd(weight_decay=0.1),
    "heavy_ball": lambda: D.heavy_ball(0.9, weight_decay=0.1),
    "nesterov": lambda: D.nesterov(0.8, weight_decay=0.1),
    "adam": lambda: D.adam(weight_decay=0.1),
    "adam_eps_root": lambda: D.adam(eps=1e-3, eps_root=1e-6),
    "heavy_ball_dampening": lambda: D.heavy_ball(0.9, weight_decay=0.1, dampening=0.3),
    "adamw": lambda: D.adamw(weight_decay=0.1),
    "adamw_eps_root": lambda: D.adamw(eps=1e-3, eps_root=1e-6, weight_decay=0.05),
}


def _phi(problem, dyn, like, batch):
    """Φ_t(x, η) written directly with autograd (the reference)."""
    def phi(xe):
        x, eta = xe[:-1], xe[-1]
        s = unpack(x, like)
        gw = grad(problem.loss)(s.w, batch)
        new = dyn.step(s, eta, gw)
        return pack(new)
    return phi


def _warm_state(problem, dyn, steps=3, eta=0.01):
    s = dyn.init(problem.w0)
    for t in range(steps):
        s = advance(s, evaluate(problem, dyn, s, None), eta)
    return s


@pytest.mark.parametrize("name", sorted(ALL))
@given(eta=st.floats(0.0, 0.05), seed=st.integers(0, 1000), warm=st.integers(0, 4))
def test_tangent_and_adjoint_match_autograd_jacobian(name, eta, seed, warm):
    problem = problems.beale(w0=(0.5, 0.8))
    dyn = ALL[name]()
    s = _warm_state(problem, dyn, warm)
    x = pack(s)
    J = jacobian(_phi(problem, dyn, s, None))(np.concatenate([x, [eta]]))
    A, B = J[:, :-1], J[:, -1]
    rng = np.random.default_rng(seed)
    z, lam = rng.standard_normal(x.size), rng.standard_normal(x.size)
    step, tan = linearize(problem, dyn, s, None, z)
    np.testing.assert_allclose(tangent_update(z, step, tan, eta), A @ z + B, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tangent_update(z, step, tan, eta, mu=0.3, with_b=False), 0.3 * (A @ z),
                               rtol=1e-12, atol=1e-12)
    xbar, dEta = adjoint(problem, dyn, s, None, eta, lam)
    np.testing.assert_allclose(xbar, A.T @ lam, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dEta, lam @ B, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pack(advance(s, step, eta)), pack(dyn.step(s, eta, step.grad)), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["sgd", "heavy_ball", "adam"])
def test_adjoint_hvp_only_path_equals_generic(name):
    """MNIST's HVP-only pass in :func:`adjoint` against ``grad_and_hvp(...)[2]``: bitwise
    equal in float64; a replaced ``grad_and_hvp`` drops the fast path."""
    from hgref.linearize import hvp_only
    from hgref.problems.mnist import mnist_mlp

    p = mnist_mlp((16,), seed=1, sizes=(300, 50, 50), l2=1e-3)
    generic = p._replace(grad_and_hvp=lambda w, b, v: p.grad_and_hvp(w, b, v))
    assert getattr(generic.grad_and_hvp, "hvp", None) is None
    rng = np.random.default_rng(0)
    dyn = ALL[name]()
    s = dyn.init(p.w0)
    for t in range(2):
        s = advance(s, evaluate(p, dyn, s, p.batch(t, 0)), 0.01)
    b, lam = p.batch(2, 0), rng.standard_normal(pack(s).shape[0])
    g = p.value_and_grad(s.w, b)[1]
    fast, slow = adjoint(p, dyn, s, b, 0.01, lam, grad=g), adjoint(generic, dyn, s, b, 0.01, lam, grad=g)
    assert np.array_equal(fast[0], slow[0]) and fast[1] == slow[1]
    v = rng.standard_normal(p.dim)
    assert np.array_equal(hvp_only(generic)(s.w, b, v), hvp_only(p)(s.w, b, v))
