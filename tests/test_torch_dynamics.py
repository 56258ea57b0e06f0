"""hgref.torch._dynamics and hgref.dynamics against torch.optim in float64.

torch.optim.SGD (momentum, dampening, Nesterov, weight decay), Adam and AdamW trajectories equal
hgref's dynamics to rounding; the torch mirror's direction and written-out JVP equal the NumPy
ones; the bridge runs AdamW and dampened momentum as the NumPy rules do.
"""
import warnings

import numpy as np
import pytest
import torch

from _torch_helpers import torch_run  # noqa: F401  (one torch thread)
from hgref import dynamics as D
from hgref import rules, run
from hgref.torch import HypergradientOptimizer
from hgref.torch._dynamics import BUFFERS, direction, direction_jvp

T, D_W = 6, 7
SETTINGS = {   # name: (torch optimizer factory, hgref dynamics, lr)
    "sgd_wd": (lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.05), D.sgd(0.05), 0.1),
    "heavy_ball_dampening": (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05),
                             D.heavy_ball(0.9, 0.05, dampening=0.3), 0.1),
    "nesterov": (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05),
                 D.nesterov(0.8, 0.05), 0.1),
    "adam": (lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.05),
             D.adam(0.8, 0.99, weight_decay=0.05), 0.01),
    "adamw": (lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
              D.adamw(0.8, 0.99, weight_decay=0.1), 0.01),
}


def _grad(w):      # a smooth non-quadratic loss: sum(w⁴)/4 + sin(w)
    return w ** 3 + np.cos(w)


@pytest.mark.parametrize("name", SETTINGS)
def test_torch_optim_trajectory_equals_hgref_dynamics(name):
    factory, dyn, lr = SETTINGS[name]
    w0 = np.linspace(-1.0, 1.2, D_W)
    p = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    opt, s = factory([p]), dyn.init(w0)
    for _ in range(T):
        g = _grad(s.w)
        p.grad = torch.tensor(_grad(p.detach().numpy()), dtype=torch.float64)
        opt.step()
        s = dyn.step(s, lr, g)
        np.testing.assert_allclose(p.detach().numpy(), s.w, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", ["heavy_ball_dampening", "adamw", "adamw_eps_root"])
def test_torch_mirror_direction_and_jvp_equal_numpy(name):
    dyn = {"heavy_ball_dampening": D.heavy_ball(0.9, 0.05, dampening=0.3),
           "adamw": D.adamw(weight_decay=0.1), "adamw_eps_root": D.adamw(eps_root=1e-6)}[name]
    hp = {"momentum": 0.0, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0, **dyn.hyperparams}
    rng = np.random.default_rng(0)
    w = rng.standard_normal(D_W)
    bufs = tuple(rng.random(D_W) for _ in BUFFERS[dyn.name])
    for count in (0, 3):
        g, zw, hz = (rng.standard_normal(D_W) for _ in range(3))
        zb = tuple(rng.standard_normal(D_W) for _ in bufs)
        d, nb, dd, dnb = dyn.direction_jvp(w, bufs, g, count, zw, zb, hz)
        tt = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
        td, tnb = direction(dyn.name, hp, tt(w), tuple(map(tt, bufs)), tt(g), count)
        tdd, tdnb = direction_jvp(dyn.name, hp, tt(w), tuple(map(tt, bufs)), tt(g), count, tnb,
                                  tt(zw), tuple(map(tt, zb)), tt(hz))
        for a, b in [(d, td), (dd, tdd)] + list(zip(nb, tnb)) + list(zip(dnb, tdnb)):
            np.testing.assert_allclose(b.numpy(), a, rtol=1e-13, atol=1e-15)


def test_bridge_rejects_nesterov_dampening():
    with pytest.raises(ValueError, match="dampening"):
        HypergradientOptimizer([torch.zeros(2, requires_grad=True)], 0.1, "nesterov", dampening=0.1)


@pytest.mark.parametrize("dyn, kw", [("adamw", {"weight_decay": 0.1}),
                                     ("heavy_ball", {"momentum": 0.9, "dampening": 0.3})])
@pytest.mark.parametrize("rule", ["hd", "rtho"])
def test_bridge_equals_numpy_rules(dyn, kw, rule):
    from hgref.problems import mnist_mlp
    from hgref.torch.mnist import mnist_torch

    problem = mnist_mlp(hidden=(8,), seed=0, batch_size=50, sizes=(500, 100, 100))
    tp = mnist_torch(problem)
    eta0, beta = (1e-3, 1e-6) if dyn == "adamw" else (0.05, 1e-3)
    numpy_rule = rules.hd(beta) if rule == "hd" else rules.rtho(beta)
    ref = run(problem, D.get_dynamics(dyn, **kw), numpy_rule, eta0, 12, metrics=False)
    with warnings.catch_warnings():   # backward(create_graph=True) of RTHO's closure
        warnings.filterwarnings("ignore", message=".*create_graph=True.*", category=UserWarning)
        _, opt = torch_run(tp, 12, lr=eta0, dynamics=dyn, rule=rule, hyper_lr=beta, **kw)
    etas = opt.lr_history().numpy()
    assert np.ptp(ref.etas) > 0
    np.testing.assert_allclose(etas, ref.etas, rtol=1e-10)
    np.testing.assert_allclose(opt.lr_history(0, "hypergradient").numpy(), ref.diagnostics["hypergradient"],
                               rtol=1e-8, atol=1e-300)
