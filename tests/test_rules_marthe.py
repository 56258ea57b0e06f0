"""MARTHE / RTHO against the oracle's prefix hypergradients J[t, i] = ∂E(w_t)/∂η_i."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from hgref import DivergenceError, problems, rules, run
from hgref import dynamics as D
from hgref.oracle import prefix_hypergradients, unroll
from hgref.rules.marthe import _marthe

DYNAMICS = {
    "sgd": lambda: D.sgd(weight_decay=0.1),
    "heavy_ball": lambda: D.heavy_ball(0.9, weight_decay=0.1),
    "nesterov": lambda: D.nesterov(0.8, weight_decay=0.1),
    "adam": lambda: D.adam(weight_decay=0.1),
    "adamw": lambda: D.adamw(weight_decay=0.1),
}
TOYS = {"beale": lambda: problems.beale(w0=(0.5, 0.8)), "bukin": lambda: problems.bukin(w0=(-5.0, 1.0))}
ETA0 = {"sgd": 1e-3, "heavy_ball": 1e-4, "nesterov": 1e-4, "adam": 1e-2, "adamw": 1e-2}


@pytest.fixture(scope="module")
def mnist_small():
    """A small MLP with L2 in L_t and E = validation cross-entropy (E ≠ L)."""
    return problems.mnist_mlp((8,), sizes=(200, 50, 50), batch_size=20, l2=1e-3)


def _discounted(J, mus):
    """Σ_{i<t} (Π_{j=i+1}^{t−1} μ_j) J[t, i] for t = 0 … T−1 (Eq. 11), and Σ |·|."""
    T = J.shape[1]
    out, scale = np.zeros(T), np.zeros(T)
    for t in range(1, T):
        w = np.array([np.prod(mus[i + 1:t]) for i in range(t)])
        out[t], scale[t] = w @ J[t, :t], np.abs(w) @ np.abs(J[t, :t])
    return out, scale


def _assert_discounted_sum(tr, J, mus):
    ref, scale = _discounted(J, mus)
    err = np.abs(tr.diagnostics["hypergradient"][:J.shape[1]] - ref)
    assert np.all(err <= 1e-10 * scale + 1e-300), (err / np.maximum(scale, 1e-300)).max()


@given(dyn=st.sampled_from(sorted(DYNAMICS)), toy=st.sampled_from(sorted(TOYS)),
       mu=st.floats(0.0, 1.0), log_beta=st.floats(-9, -6), seed=st.integers(0, 3),
       steps=st.integers(2, 14))
def test_fixed_mu_is_discounted_sum_of_prefix_hypergradients(dyn, toy, mu, log_beta, seed, steps):
    """Δη_t = Σ_{i<t} μ^{t−1−i} ∂E(w_t)/∂η_i on the schedule actually used (≤ 1e-10)."""
    problem, dynamics = TOYS[toy](), DYNAMICS[dyn]()
    rule = rules.marthe(10.0 ** log_beta, mu, adapt_beta=False)
    tr = run(problem, dynamics, rule, ETA0[dyn], steps, seed=seed)
    J = prefix_hypergradients(problem, dynamics, tr.etas, seed=seed)
    _assert_discounted_sum(tr, J, np.full(steps, mu))


@pytest.mark.parametrize("dyn", ["sgd", "adam"])
def test_mnist_validation_objective(mnist_small, dyn):
    """E ≠ L (validation loss, L2 only in L_t): fixed and adaptive μ."""
    dynamics = {"sgd": D.sgd(), "adam": D.adam()}[dyn]
    eta0 = {"sgd": 0.05, "adam": 1e-3}[dyn]
    for mu in (0.7, "adaptive"):
        rule = rules.marthe(1e-4, mu, adapt_beta=mu == "adaptive", beta0=1e-4)
        tr = run(mnist_small, dynamics, rule, eta0, 6, seed=1)
        J = prefix_hypergradients(mnist_small, dynamics, tr.etas, seed=1)
        _assert_discounted_sum(tr, J, tr.diagnostics["mu"])


@given(dyn=st.sampled_from(sorted(DYNAMICS)), toy=st.sampled_from(sorted(TOYS)),
       log_beta=st.floats(-12, -8), variant=st.sampled_from(["paper", "released"]),
       steps=st.integers(2, 30))
def test_adaptive_mu_in_unit_interval_and_eq11(dyn, toy, log_beta, variant, steps):
    """Adaptive μ (either variant) stays in [0, 1]; Δη_t follows Eq. 11 with the μ_j used."""
    problem, dynamics = TOYS[toy](), DYNAMICS[dyn]()
    rule = rules.marthe(10.0 ** log_beta, beta0=1e-7, variant=variant)
    tr = run(problem, dynamics, rule, ETA0[dyn], steps, on_divergence="return")
    mus, betas = tr.diagnostics["mu"], tr.diagnostics["beta"]
    assert np.all((mus >= 0) & (mus <= 1)) and np.all(betas >= 0) and np.all(tr.etas >= 0)
    # Adaptive β can blow up on Beale with momentum (β grows like Δη²): compare the
    # steps before the reported divergence (w_{k−1} is the last iterate with finite E).
    etas = tr.etas if tr.diverged_at is None else tr.etas[:-1]
    if etas.size == 0:
        return
    J = prefix_hypergradients(problem, dynamics, etas)
    _assert_discounted_sum(tr, J, mus)


def test_mu_zero_forgets_history():
    """Whenever μ_t = 0, Z_{t+1} = B_t: Δη_{t+1} is the one-step h_{t+1} (HD)."""
    problem = problems.bukin(w0=(-5.0, 1.0))
    tr = run(problem, D.heavy_ball(0.9), rules.marthe(1e-6, beta0=1e-4), 1e-3, 200)
    mus, dEta, h = (tr.diagnostics[k] for k in ("mu", "hypergradient", "hd"))
    reset = np.flatnonzero(mus[:-1] == 0.0) + 1
    assert reset.size > 5
    np.testing.assert_allclose(dEta[reset], h[reset], rtol=1e-13, atol=0)
    assert np.any(mus > 0)


def test_rtho_is_marthe_mu_one_and_full_sum():
    problem = problems.beale(w0=(0.5, 0.8))
    for dyn in ("sgd", "nesterov", "adam"):
        a = run(problem, DYNAMICS[dyn](), rules.rtho(1e-6), ETA0[dyn], 40)
        b = run(problem, DYNAMICS[dyn](), rules.marthe(1e-6, 1.0, adapt_beta=False), ETA0[dyn], 40)
        np.testing.assert_array_equal(a.etas, b.etas)
        J = prefix_hypergradients(problem, DYNAMICS[dyn](), a.etas)
        _assert_discounted_sum(a, J, np.ones(40))
        assert a.etas[1] == pytest.approx(ETA0[dyn] - 1e-6 * J[1, 0], rel=1e-12)


def _f(problem, dynamics, schedule):
    return problem.objective(unroll(problem, dynamics, schedule).states[-1].w)


@pytest.mark.parametrize("toy,dyn,eta0,beta", [("beale", "adam", 1e-2, 1e-6)])
def test_beta_sign_matches_oracle(toy, dyn, eta0, beta):
    """The β update is descent on f: "+" (derived), not Algorithm 1's printed "−".

    (a) Chain rule, checked with the oracle: perturbing β_t alone moves η_t by −δΔη_t, so
        ∂f/∂β_t = −Δη_t·J[T, t] (finite differences of f on the perturbed schedule).
    (b) is :func:`test_beta_sign_end_to_end_on_beale`. Beale only: on Bukin the adaptive run
    reaches η ≈ 0.45 where f_T is so curved in η that no finite-difference step resolves
    ∂f/∂η_t to 1e-5 (truncation and rounding errors cross above it); the oracle's own
    forward = reverse = fd tests cover Bukin.
    """
    problem, dynamics = TOYS[toy](), DYNAMICS[dyn]()
    plus = run(problem, dynamics, rules.marthe(beta), eta0, 150)
    etas, dEta = plus.etas, plus.diagnostics["hypergradient"]
    g = prefix_hypergradients(problem, dynamics, etas)[-1]
    for t in (5, 50, 100):
        delta = 1e-4 * etas[t] / abs(dEta[t])          # moves η_t by 1e-4 relative
        up, down = etas.copy(), etas.copy()
        up[t] -= delta * dEta[t]
        down[t] += delta * dEta[t]
        fd = (_f(problem, dynamics, up) - _f(problem, dynamics, down)) / (2 * delta)
        assert fd == pytest.approx(-dEta[t] * g[t], rel=1e-5, abs=1e-12)


def test_beta_sign_end_to_end_on_beale():
    """(b) End to end, the "+" rule reaches a lower E(w_T) than the printed "−" one, which
    (from β_0 = 0) keeps β_t at 0 whenever successive hypergradients agree. Checked on Beale
    only: on smoothed Bukin with ε = 1e-6 the runs are chaotic (‖∇f_T‖ ~ 1e90 for 500 steps),
    so which of two end points is lower is decided by rounding, not by the sign."""
    problem, dynamics = TOYS["beale"](), DYNAMICS["adam"]()
    plus = run(problem, dynamics, rules.marthe(1e-6), 1e-2, 150)
    minus = run(problem, dynamics, _marthe(1e-6, "adaptive", True, 0.0, "paper", "validation",
                                           None, None, -1.0), 1e-2, 150)
    assert plus.objective < minus.objective


def test_eta_never_negative_and_divergence_reported():
    tr = run(problems.bukin(w0=(-5.0, 1.0)), D.sgd(), rules.rtho(1.0), 1e-2, 300)
    assert np.all(tr.etas >= 0) and np.any(tr.etas == 0)
    with pytest.raises(DivergenceError) as err:
        run(problems.beale(), D.sgd(), rules.marthe(1e3, beta0=1e3), 1e-3, 100)
    tr = run(problems.beale(), D.sgd(), rules.marthe(1e3, beta0=1e3), 1e-3, 100, on_divergence="return")
    assert tr.diverged_at == err.value.step and np.all(np.isfinite(tr.etas))


def test_released_variant_updates():
    """β_t = max(β_{t−1} + α Δη_{t−1} η_{t−1}, 0); μ_t = q̃^{1/(c_t+1)}, c_t = c_{t−1} sign μ_{t−1} + μ_{t−1}."""
    problem, dynamics = problems.bukin(w0=(-5.0, 1.0)), D.sgd()
    alpha = 1e-4
    tr = run(problem, dynamics, rules.marthe(alpha, beta0=1e-3, variant="released"), 1e-3, 60)
    b, e, dEta, mu = tr.diagnostics["beta"], tr.etas, tr.diagnostics["hypergradient"], tr.diagnostics["mu"]
    np.testing.assert_allclose(b[1:], np.maximum(b[:-1] + alpha * dEta[:-1] * e[:-1], 0), rtol=1e-14)
    np.testing.assert_allclose(e[1:], np.maximum(e[:-1] - b[1:] * dEta[1:], 0), rtol=1e-14)
    c = 0.0
    for t in range(1, 60):
        c = c * np.sign(mu[t - 1]) + mu[t - 1]
        assert 0 <= mu[t] <= 1 and (mu[t] in (0.0, 1.0) or mu[t] ** (c + 1) < 1)
    # Huge clipping bounds change nothing; small ones change the hypergradient.
    same = run(problem, dynamics, rules.marthe(alpha, beta0=1e-3, variant="released",
                                               grad_clip=1e9, hvp_clip=1e9), 1e-3, 60)
    np.testing.assert_array_equal(same.etas, tr.etas)
    clipped = run(problem, dynamics, rules.marthe(alpha, beta0=1e-3, variant="released",
                                                  grad_clip=1e-3, hvp_clip=1e-3), 1e-3, 60)
    assert not np.allclose(clipped.diagnostics["hypergradient"], dEta)


def test_decimation():
    problem = problems.beale(w0=(0.5, 0.8))
    tr, beta, tried = rules.decimate(lambda b: rules.rtho(b), problem, D.sgd(), 1e-3, 100,
                                     beta_start=10.0)
    assert tr.diverged_at is None and tried[-1] == (beta, None)
    assert len(tried) > 1 and all(s is not None for _, s in tried[:-1])
    assert [b for b, _ in tried] == pytest.approx([10.0 / 10 ** k for k in range(len(tried))])
    with pytest.raises(DivergenceError, match="every beta"):
        rules.decimate(lambda b: rules.rtho(b), problem, D.sgd(), 1e-3, 100, beta_start=1e3, max_tries=2)


@pytest.mark.parametrize("make,arg", [
    (lambda: rules.marthe(-1.0), "beta"), (lambda: rules.marthe(float("nan")), "beta"),
    (lambda: rules.marthe(1e-3, 1.5), "mu"), (lambda: rules.marthe(1e-3, -0.1), "mu"),
    (lambda: rules.marthe(1e-3, "auto"), "mu"), (lambda: rules.marthe(1e-3, beta0=-1.0), "beta0"),
    (lambda: rules.marthe(1e-3, beta0=float("inf")), "beta0"),
    (lambda: rules.marthe(1e-3, variant="adatune"), "variant"),
    (lambda: rules.marthe(1e-3, objective="loss"), "objective"),
    (lambda: rules.marthe(1e-3, grad_clip=1.0), "grad_clip"),
    (lambda: rules.marthe(1e-3, variant="released", hvp_clip=0.0), "hvp_clip"),
    (lambda: rules.rtho(-1e-3), "beta"),
    (lambda: rules.decimate(rules.rtho, problems.beale(), D.sgd(), 1e-3, 5, beta_start=1.0, factor=1.0),
     "factor"),
])
def test_bad_arguments(make, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        make()
