"""hgref.testing's references and plumbing without torch: the case matrix, declared objectives,
the per-group exact reference, adapter helpers, shift diagnosis."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from hgref import dynamics, problems
from hgref.oracle import hypergradient, prefix_hypergradients
from hgref.testing import (BATTERY, COLUMNS, DYNAMICS, MATRIX, Objective, Unsupported,
                           exact_hypergradients, get_cases, group_prefix, only, torch_kwargs)
from hgref.testing.diagnose import shift_diagnosis
from hgref.testing.objectives import resolve_objective


def test_matrix_is_five_dynamics_by_five_columns():
    assert len(MATRIX) == 25 and {(c.dynamics, c.column) for c in MATRIX} == \
        {(d, col) for d in DYNAMICS for col in COLUMNS}
    assert all(c.matrix for c in MATRIX) and not any(c.matrix for c in BATTERY[25:])
    assert len({c.name for c in BATTERY}) == len(BATTERY)
    hb = get_cases("heavy_ball_first_steps")[0]
    assert hb.config["dampening"] == 0.5 and hb.steps == 8 and np.ptp(hb.schedule) > 0
    assert get_cases("adamw")[0].config["weight_decay"] == 0.01
    assert [c.name for c in get_cases("first_steps")] == [f"{d}_first_steps" for d in DYNAMICS]
    assert {c.name for c in get_cases("adamw*")} == {c.name for c in BATTERY if c.name.startswith("adamw")}
    with pytest.raises(ValueError, match="unknown case 'nope'.*pattern"):
        get_cases("nope")
    groups = get_cases("sgd_groups")[0]
    masks = groups.group_masks()
    assert masks.shape == (2, 784 * 8 + 8 + 8 * 10 + 10) and np.all(masks.sum(axis=0) == 1)
    np.testing.assert_allclose(groups.schedules[1], 0.5 * groups.schedules[0])


def test_tanh_problem_shares_data_and_w0():
    case = get_cases("sgd_validation")[0]
    relu, tanh = case.problem(), case.problem(activation="tanh")
    np.testing.assert_array_equal(relu.w0, tanh.w0)
    b = relu.batch(3, 0)
    assert np.array_equal(b[0], tanh.batch(3, 0)[0])
    assert tanh.loss(tanh.w0, b) != relu.loss(relu.w0, b)
    with pytest.raises(ValueError, match="activation"):
        case.problem(activation="gelu")


def noisy():
    """A 3-d problem with minibatch noise, E ≠ L_t and a coupled-decay dynamics."""
    A = np.array([[1.0, 0.3, 0.0], [0.0, 0.8, -0.2], [0.1, 0.0, 0.6]])

    def loss(w, xi):
        r = anp.dot(A, w - xi)
        return 0.5 * anp.dot(r, r) + 0.1 * anp.sum(w ** 4)

    return problems.make_problem("noisy", [0.5, -1.0, 2.0], loss,
                                 objective=lambda w: loss(w, np.zeros(3)) + anp.sum(anp.sin(w)),
                                 batch=lambda t, seed: np.random.default_rng([seed, t]).normal(0, 0.1, 3))


@pytest.mark.parametrize("name", ["loss", "train", "callable"])
def test_declared_objectives_against_reverse_mode_of_prefix_runs(name):
    """J[t, i] for Obj_t = L_t, L_t + λ/2‖w‖² or a callable equals the reverse-mode hypergradient
    of the t-step run whose objective is that Obj_t (an independent sweep)."""
    p, lam = noisy(), 0.05
    dyn = dynamics.heavy_ball(0.8, weight_decay=lam)
    spec = (lambda w, xi: anp.sum(w ** 2) + anp.dot(w, xi)) if name == "callable" else name
    obj = resolve_objective(spec, p, dyn)
    eta = 0.02 * (1 + 0.5 * np.cos(np.arange(6.0)))
    J = prefix_hypergradients(p, dyn, eta, objective_grad=obj.grad)
    for t in (2, 5):
        xi = p.batch(t, 0)
        f = {"loss": lambda w: p.loss(w, xi), "train": lambda w: p.loss(w, xi) + lam / 2 * anp.dot(w, w),
             "callable": lambda w: spec(w, xi)}[name]
        p_t = p._replace(objective=f, objective_grad=grad(f))
        np.testing.assert_allclose(J[t, :t], hypergradient(p_t, dyn, eta[:t]).grad, rtol=1e-10)
        assert obj.value(t, p.w0) == pytest.approx(float(f(p.w0)), rel=1e-14)
    assert exact_hypergradients(p, dyn, eta, mu=1.0, objective=spec)[3] == pytest.approx(J[3, :3].sum(), rel=1e-12)
    assert resolve_objective("train", p, dynamics.adamw(weight_decay=lam)).name == "train"   # λ decoupled
    with pytest.raises(ValueError, match="accepted values: 'validation', 'loss', 'train'"):
        resolve_objective("val", p, dyn)
    named = resolve_objective(Objective("mine", lambda w, b: anp.sum(w), lambda w, b: np.ones(3)), p, dyn)
    assert named.name == "mine" and np.array_equal(named.grad(0, p.w0), np.ones(3))


@pytest.mark.parametrize("dyn", [dynamics.sgd(0.01), dynamics.adamw(weight_decay=0.1),
                                 dynamics.heavy_ball(0.9, dampening=0.5)], ids=lambda d: d.name)
def test_group_prefix_identities_and_finite_differences(dyn):
    p = noisy()
    masks = np.array([[True, True, False], [False, False, True]])
    eta = 0.01 * (1 + 0.5 * np.cos(np.arange(7.0)))
    same = group_prefix(p, dyn, np.stack([eta, eta]), masks)
    np.testing.assert_allclose(same.sum(axis=0), prefix_hypergradients(p, dyn, eta), rtol=1e-11, atol=1e-300)
    schedules = np.stack([eta, 2.5 * eta])
    J = group_prefix(p, dyn, schedules, masks)
    h = 1e-6
    for k, i in ((0, 2), (1, 4)):        # ∂E(w_T)/∂η^k_i by central differences of an unrolled run
        def f(s):
            state = dyn.init(p.w0)
            for t in range(7):
                g = p.value_and_grad(state.w, p.batch(t, 0))[1]
                state = _step(dyn, state, s[:, t] @ masks, g)
            return p.objective(state.w)
        up, down = schedules.copy(), schedules.copy()
        up[k, i] += h
        down[k, i] -= h
        assert (f(up) - f(down)) / (2 * h) == pytest.approx(J[k, 7, i], rel=1e-6)
    with pytest.raises(ValueError, match="partition"):
        group_prefix(p, dyn, schedules, np.ones((2, 3), bool))


def _step(dyn, state, eta_vec, g):
    d, buffers = dyn.direction(state.w, state[1:-1], g, state.count)
    return type(state)(state.w - eta_vec * d, *buffers, state.count + 1)


def test_shift_diagnosis():
    exact = np.array([0.0, 1.0, 0.5, 0.3, 0.2])
    assert shift_diagnosis(np.r_[exact[1:], 9.0], exact, 1e-10, 0.0) == "shifted_late"
    assert shift_diagnosis(np.r_[0.0, exact[:-1]], exact, 1e-10, 0.0) == "shifted_early"
    assert shift_diagnosis(exact * 1.1, exact, 1e-10, 0.0) is None


class _SGDLike:
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        pass


def test_adapter_helpers():
    hb = get_cases("heavy_ball")[0]
    assert torch_kwargs(hb) == {"lr": 0.05, "momentum": 0.9, "dampening": 0.0, "nesterov": False,
                                "weight_decay": 0.0}
    assert torch_kwargs(hb, _SGDLike) == {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0}
    with pytest.raises(Unsupported, match="takes no 'dampening'"):
        torch_kwargs(get_cases("heavy_ball_first_steps")[0], _SGDLike)
    with pytest.raises(Unsupported, match="takes no 'nesterov'"):
        torch_kwargs(get_cases("nesterov")[0], _SGDLike)
    adam = torch_kwargs(get_cases("adam_eps_root")[0])
    assert adam["eps_root"] == 1e-8 and "eps_root" not in torch_kwargs(get_cases("adam")[0])
    only(hb, "heavy_ball", "nesterov", groups=1)
    with pytest.raises(Unsupported, match="runs sgd only"):
        only(hb, "sgd")
    with pytest.raises(Unsupported, match="2"):
        only(get_cases("sgd_groups")[0], groups=1)
