"""The hypergradient oracle: forward = reverse = finite differences = unrolled autograd,
closed forms on a quadratic, agreement with the training loop, bad inputs, divergence."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad as ag_grad
from hypothesis import given, strategies as st

from hgref import DivergenceError, dynamics as D, problems, run
from hgref.oracle import hypergradient, prefix_hypergradients, unroll
from hgref.problems import make_problem
from hgref.rules import Rule

DYNAMICS = {
    "sgd": lambda wd: D.sgd(weight_decay=wd),
    "heavy_ball": lambda wd: D.heavy_ball(0.9, weight_decay=wd),
    "nesterov": lambda wd: D.nesterov(0.8, weight_decay=wd),
    "adam": lambda wd: D.adam(weight_decay=wd),
    "adamw": lambda wd: D.adamw(weight_decay=wd),
    "heavy_ball_dampening": lambda wd: D.heavy_ball(0.9, weight_decay=wd, dampening=0.3),
}
#: largest η per dynamics keeping T ≤ 12 steps finite and well-conditioned on every problem
ETA_MAX = {"sgd": 0.01, "heavy_ball": 0.002, "nesterov": 0.002, "adam": 0.05, "adamw": 0.05,
           "heavy_ball_dampening": 0.002}


def noisy_quadratic():
    """A stochastic problem with E ≠ L: L_t(w) = ½‖A(w − c − ξ_t)‖², ξ_t ~ N(0, 0.1²) from
    (t, seed); E(w) = ½‖A(w − c)‖² + ¼ Σ w⁴ (non-quadratic, so ∇E ≠ ∇L)."""
    A = np.array([[1.0, 0.3, 0.0], [0.0, 0.8, -0.2], [0.1, 0.0, 0.6]])
    c = np.array([0.5, -1.0, 2.0])

    def loss(w, xi):
        r = anp.dot(A, w - c - xi)
        return 0.5 * anp.dot(r, r)

    def objective(w):
        r = anp.dot(A, w - c)
        return 0.5 * anp.dot(r, r) + 0.25 * anp.sum(w ** 4)

    def batch(t, seed):
        return np.random.default_rng([seed, t]).normal(0.0, 0.1, 3)

    return make_problem("noisy_quadratic", [0.0, 0.5, 1.0], loss, objective=objective, batch=batch)


PROBLEMS = {
    "beale": lambda: problems.beale(w0=(0.5, 0.8)),
    "bukin": problems.bukin,
    "quadratic": lambda: problems.quadratic([[2.0, 0.5], [0.5, 1.0]], [1.0, -2.0], center=[0.3, 0.1]),
    "noisy_quadratic": noisy_quadratic,
}


def rel(a, b):
    """Norm-wise relative error ‖a − b‖ / ‖b‖."""
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@st.composite
def cases(draw, max_steps=12):
    pname = draw(st.sampled_from(sorted(PROBLEMS)))
    dname = draw(st.sampled_from(sorted(DYNAMICS)))
    wd = draw(st.sampled_from([0.0, 0.1]))
    T = draw(st.integers(1, max_steps))
    fractions = draw(st.lists(st.floats(0.0, 1.0), min_size=T, max_size=T))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    return PROBLEMS[pname](), DYNAMICS[dname](wd), ETA_MAX[dname] * np.array(fractions), seed


@given(cases())
def test_forward_equals_reverse_and_checkpointed_and_prefix(case):
    problem, dyn, eta, seed = case
    fwd = hypergradient(problem, dyn, eta, seed, method="forward")
    rev = hypergradient(problem, dyn, eta, seed, method="reverse")
    assert fwd.value == rev.value
    if np.linalg.norm(rev.grad) > 0:
        assert rel(fwd.grad, rev.grad) <= 1e-10
    k = 1 + seed % len(eta)
    chk = hypergradient(problem, dyn, eta, seed, method="reverse", checkpoint_every=k)
    np.testing.assert_array_equal(chk.grad, rev.grad)   # recomputation is deterministic
    J = prefix_hypergradients(problem, dyn, eta, seed)
    np.testing.assert_array_equal(J[-1], fwd.grad)
    assert not np.any(np.triu(J[:-1])) and not J[0].any()


@given(cases(max_steps=8))
def test_reverse_matches_finite_differences(case):
    """Central differences with h = 1e-6: truncation h²f''' ≈ 1e-12, rounding
    ε|f|/h ≈ 1e-10·|f|; hence 1e-6 relative for hypergradients of size ≳ 1e-4·|f|."""
    problem, dyn, eta, seed = case
    rev = hypergradient(problem, dyn, eta, seed)
    fd = hypergradient(problem, dyn, eta, seed, method="fd")
    assert fd.value == rev.value
    scale = max(np.linalg.norm(rev.grad), 1e-4 * max(abs(rev.value), 1e-2))
    assert np.linalg.norm(fd.grad - rev.grad) / scale <= 1e-6


@pytest.mark.parametrize("dname", sorted(DYNAMICS))
def test_prefix_rows_are_hypergradients_of_prefix_runs(dname):
    problem, dyn = PROBLEMS["noisy_quadratic"](), DYNAMICS[dname](0.1)
    eta = ETA_MAX[dname] * np.linspace(1.0, 0.2, 7)
    J = prefix_hypergradients(problem, dyn, eta, seed=3)
    for t in (1, 4, 7):
        np.testing.assert_allclose(J[t, :t], hypergradient(problem, dyn, eta[:t], 3).grad,
                                   rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("dname", ["heavy_ball_dampening", "adamw"])
def test_prefix_with_a_step_dependent_objective(dname):
    """objective_grad(t, w) = ∇L_t(w) (the minibatch loss of step t): row t of J is the
    hypergradient of the t-step run whose objective is L_t, an independent reverse sweep."""
    problem, dyn = PROBLEMS["noisy_quadratic"](), DYNAMICS[dname](0.1)
    eta = ETA_MAX[dname] * np.linspace(1.0, 0.2, 6)
    J = prefix_hypergradients(problem, dyn, eta, seed=3,
                              objective_grad=lambda t, w: problem.value_and_grad(w, problem.batch(t, 3))[1])
    for t in (1, 3, 6):
        xi = problem.batch(t, 3)
        p_t = problem._replace(objective=lambda w, xi=xi: problem.loss(w, xi),
                               objective_grad=lambda w, xi=xi: problem.value_and_grad(w, xi)[1])
        np.testing.assert_allclose(J[t, :t], hypergradient(p_t, dyn, eta[:t], 3).grad, rtol=1e-10)
    assert not np.allclose(J[3, :3], prefix_hypergradients(problem, dyn, eta, seed=3)[3, :3])
    with pytest.raises(TypeError, match="objective_grad"):
        prefix_hypergradients(problem, dyn, eta, objective_grad="loss")


@pytest.mark.parametrize("dname", sorted(DYNAMICS))
def test_matches_autograd_through_unrolled_loop(dname):
    """Independent check: autograd.grad of the whole unrolled loop (dynamics.step with
    autograd's ∇L inside) w.r.t. η, as jax's jacrev-vs-jacfwd optimizer test."""
    problem, dyn = problems.beale(), DYNAMICS[dname](0.1)
    eta = ETA_MAX[dname] * np.linspace(0.3, 1.0, 10)
    loss_grad = ag_grad(problem.loss)

    def f(eta_):
        state = dyn.init(problem.w0)
        for t in range(eta_.shape[0]):
            state = dyn.step(state, eta_[t], loss_grad(state.w, None))
        return problem.objective(state.w)

    expected = ag_grad(f)(eta)
    for method in ("forward", "reverse"):
        hg = hypergradient(problem, dyn, eta, method=method)
        assert rel(hg.grad, expected) <= 1e-12
        assert hg.value == pytest.approx(f(eta), rel=1e-14)


def _sgd_quadratic_closed_form(H, r0, eta):
    """SGD on L = ½ rᵀHr, r = w − c: r_{t+1} = (I − η_t H) r_t, so r_T = Π_t (I − η_t H) r_0 and
    ∂r_T/∂η_i = −Π_{s>i}(I − η_s H) H Π_{s<i}(I − η_s H) r_0, hence (f = ½ r_Tᵀ H r_T)
    ∂f/∂η_i = −r_Tᵀ H Π_{s>i}(I − η_s H) H Π_{s<i}(I − η_s H) r_0.
    At η = 0: r_T = r_0 and ∂f/∂η_i = −r_0ᵀ H H r_0 for every i."""
    eye = np.eye(H.shape[0])
    P = [eye - e * H for e in eta]
    prod = lambda Ms: np.linalg.multi_dot([eye, eye] + Ms[::-1])  # noqa: E731  (later factors left)
    rT = prod(P) @ r0
    grad = np.array([-rT @ H @ prod(P[i + 1:]) @ H @ prod(P[:i]) @ r0 for i in range(len(eta))])
    return 0.5 * rT @ H @ rT, grad


@given(eta=st.lists(st.floats(0.0, 0.3), min_size=1, max_size=15), seed=st.integers(0, 1000))
def test_quadratic_sgd_closed_form(eta, seed):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((3, 3))
    H = M @ M.T / 3 + 0.1 * np.eye(3)
    w0, c = rng.standard_normal(3), rng.standard_normal(3)
    problem = problems.quadratic(H, w0, center=c)
    value, grad = _sgd_quadratic_closed_form(H, w0 - c, np.array(eta))
    for method in ("forward", "reverse"):
        hg = hypergradient(problem, D.sgd(), eta, method=method)
        assert hg.value == pytest.approx(value, rel=1e-12, abs=1e-300)
        assert rel(hg.grad, grad) <= 1e-11


def test_quadratic_zero_schedule_analytic():
    H = np.array([[3.0, 1.0], [1.0, 2.0]])
    r0 = np.array([1.0, -2.0])
    problem = problems.quadratic(H, r0 + 0.5, center=[0.5, 0.5])
    for method in ("forward", "reverse", "fd"):
        hg = hypergradient(problem, D.sgd(), np.zeros(6), method=method)
        np.testing.assert_allclose(hg.grad, -(r0 @ H @ H @ r0), rtol=1e-9 if method == "fd" else 1e-15)


@given(cases())
def test_unroll_equals_training_loop(case):
    problem, dyn, eta, seed = case
    replay = Rule("replay", lambda eta0, state: None, lambda r, obs: (eta[obs.t], r, {}), {})
    tr = run(problem, dyn, replay, 0.0, len(eta), seed, metrics=False)
    u = unroll(problem, dyn, eta, seed)
    np.testing.assert_array_equal(u.states[-1].w, tr.state.w)
    np.testing.assert_array_equal(D.pack(u.states[-1]), D.pack(tr.state))
    np.testing.assert_array_equal(u.losses, tr.losses)
    assert u.objective == tr.objective == hypergradient(problem, dyn, eta, seed).value


@pytest.mark.parametrize("bad, err, match", [
    ([0.1, -0.01], ValueError, "entry 1"),
    ([0.1, np.nan], ValueError, "finite"),
    ([np.inf], ValueError, "finite"),
    ([], ValueError, "empty"),
    ([[0.1, 0.2]], ValueError, "1-d"),
    ("fast", TypeError, "schedule"),
])
def test_bad_schedules(bad, err, match):
    for method in ("forward", "reverse", "fd"):
        with pytest.raises(err, match=match):
            hypergradient(problems.beale(), D.sgd(), bad, method=method)
    with pytest.raises(err, match=match):
        prefix_hypergradients(problems.beale(), D.sgd(), bad)


def test_bad_arguments():
    p, dyn, eta = problems.beale(), D.sgd(), [0.01] * 4
    with pytest.raises(ValueError, match="accepted values: 'forward', 'reverse', 'fd'"):
        hypergradient(p, dyn, eta, method="backward")
    with pytest.raises(ValueError, match="checkpoint_every must be an integer >= 1"):
        hypergradient(p, dyn, eta, checkpoint_every=0)
    with pytest.raises(TypeError, match="checkpoint_every must be an integer"):
        hypergradient(p, dyn, eta, checkpoint_every=2.5)
    with pytest.raises(ValueError, match="method='reverse' only"):
        hypergradient(p, dyn, eta, method="forward", checkpoint_every=2)
    with pytest.raises(ValueError, match="fd_step"):
        hypergradient(p, dyn, eta, method="fd", fd_step=0.0)
    with pytest.raises(ValueError, match="seed"):
        hypergradient(p, dyn, eta, seed=-1)


@pytest.mark.parametrize("method", ["forward", "reverse", "fd"])
def test_divergence_names_the_step(method):
    eta = np.array([0.01] * 3 + [5.0] * 20)
    problem, dyn = problems.beale(), D.sgd()
    with pytest.raises(DivergenceError) as expected:
        run(problem, dyn, Rule("replay", lambda e, s: None, lambda r, o: (eta[o.t], r, {}), {}), 0.0, eta.size)
    with pytest.raises(DivergenceError) as got:
        hypergradient(problem, dyn, eta, method=method)
    assert got.value.step == expected.value.step > 3
    assert f"step {expected.value.step}" in str(got.value)


@pytest.mark.parametrize("dname, eta", [("sgd", 0.1), ("adam", 0.002)])
def test_mnist_mlp_forward_equals_reverse(dname, eta):
    """784-32-10, batch 100, T = 50: the hand-written HVP (forward's A_t z and reverse's
    A_tᵀλ) through a real network, a varying schedule, minibatches from the seed."""
    from hgref.problems.mnist import mnist_mlp

    problem, dyn = mnist_mlp((32,), seed=1), DYNAMICS[dname](1e-4)
    schedule = eta * (1.0 + 0.5 * np.sin(np.arange(50)))
    fwd = hypergradient(problem, dyn, schedule, seed=2, method="forward")
    rev = hypergradient(problem, dyn, schedule, seed=2, method="reverse")
    assert fwd.value == rev.value
    assert rel(fwd.grad, rev.grad) <= 1e-10
    assert fwd.value < problem.objective(problem.w0)   # the schedule trains
