"""Toy problems: values at known points, derivatives against autograd, bad input."""
import numpy as np
import pytest
from autograd import grad, hessian
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from hgref import problems


def test_beale_minimum_and_gradient():
    p = problems.beale()
    assert float(p.objective(np.array([3.0, 0.5]))) == 0.0
    np.testing.assert_allclose(p.value_and_grad(np.array([3.0, 0.5]), None)[1], 0, atol=1e-12)
    assert p.objective_is_loss and p.batch(3, 0) is None and p.dim == 2


def test_bukin_valley_value():
    eps = 0.05
    p = problems.bukin(eps=eps)
    assert float(p.objective(np.array([10.0, 0.1]))) == pytest.approx(np.sqrt(np.sqrt(eps) + eps))


@pytest.mark.parametrize("make", [problems.beale, problems.bukin, lambda: problems.bukin(eps=1e-4)])
@given(w=arrays(np.float64, 2, elements=st.floats(-4, 4)), v=arrays(np.float64, 2, elements=st.floats(-2, 2)))
def test_grad_and_hvp_match_autograd(make, w, v):
    """The written-out derivatives of Beale and Bukin equal autograd's."""
    p = make()
    L, g, hv = p.grad_and_hvp(w, None, v)
    np.testing.assert_allclose(g, grad(p.objective)(w), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hv, hessian(p.objective)(w) @ v, rtol=1e-10, atol=1e-10)
    assert L == pytest.approx(float(p.objective(w)))


def test_quadratic_closed_form():
    H = np.array([[2.0, 0.5], [0.5, 1.0]])
    p = problems.quadratic(H, [1.0, -1.0], center=[0.5, 0.0])
    w = np.array([0.2, 0.4])
    np.testing.assert_allclose(p.value_and_grad(w, None)[1], H @ (w - [0.5, 0.0]))
    np.testing.assert_allclose(p.grad_and_hvp(w, None, np.ones(2))[2], H @ np.ones(2))


def test_bad_inputs():
    with pytest.raises(ValueError, match="eps"):
        problems.bukin(eps=0.0)
    with pytest.raises(ValueError, match="w0"):
        problems.beale(w0=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="hessian"):
        problems.quadratic(np.array([[1.0, 2.0], [0.0, 1.0]]), [1.0, 1.0])
