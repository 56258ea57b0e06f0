"""hgref.torch.optim: the torch bridge equals the NumPy reference in float64.

Same MNIST MLP (784-16-10), minibatches, seed and w0 on both sides; every rule × dynamics,
50 steps, η schedule and weights to ≤ 1e-10 relative against hgref.rules (hd, rtho, marthe
variant="paper") run by hgref.train.run.
"""
import copy
import math

import numpy as np
import pytest
import torch

from _torch_helpers import torch_run
from hgref import DivergenceError, dynamics, rules, run
from hgref.problems import mnist_mlp
from hgref.torch import AdamHD, HypergradientOptimizer, MARTHE, RTHO, SGDHD
from hgref.torch.mnist import mnist_torch

T = 50
WD = 1e-3
DYNAMICS = {"sgd": {}, "heavy_ball": {"momentum": 0.9}, "nesterov": {"momentum": 0.9}, "adam": {}}
RULES = {
    "hd-sgd": dict(rule="hd", hyper_lr=1e-2),
    "hd-sgdn": dict(rule="hd", hyper_lr=1e-2, lop="sgdn"),
    "hd-adam": dict(rule="hd", hyper_lr=1e-3, lop="adam"),
    "hd-validation": dict(rule="hd", hyper_lr=1e-2, objective="validation"),
    "rtho": dict(rule="rtho", hyper_lr=1e-3),
    "marthe-fixed": dict(rule="marthe", hyper_lr=1e-3, mu=0.9, adapt_beta=False),
    "marthe": dict(rule="marthe", hyper_lr=1e-4),
}


@pytest.fixture(scope="module")
def problem():
    return mnist_mlp(hidden=(16,), seed=0, batch_size=50, sizes=(1000, 200, 100))


@pytest.fixture(scope="module")
def tp(problem):
    return mnist_torch(problem)


def _config(rule, dyn):
    kw = dict(RULES[rule])
    eta0 = 1e-3 if dyn == "adam" else 0.05
    if dyn == "adam":
        kw["hyper_lr"] *= 1e-3     # η0 is 50× smaller: smaller β keeps η in range
    return eta0, kw


def _numpy_rule(kw):
    """The hgref.rules rule that the torch configuration ``kw`` mirrors."""
    if kw["rule"] == "hd":
        return rules.hd(kw["hyper_lr"], kw.get("lop", "sgd"), objective=kw.get("objective", "train"))
    if kw["rule"] == "rtho":
        return rules.rtho(kw["hyper_lr"])
    return rules.marthe(kw["hyper_lr"], kw.get("mu", "adaptive"), adapt_beta=kw.get("adapt_beta", True))


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("dyn", list(DYNAMICS))
@pytest.mark.parametrize("rule", list(RULES))
def test_torch_equals_numpy_reference(problem, tp, rule, dyn):
    eta0, kw = _config(rule, dyn)
    ref = run(problem, dynamics.get_dynamics(dyn, weight_decay=WD, **DYNAMICS[dyn]),
              _numpy_rule(kw), eta0, T, seed=0, metrics=False)
    model, opt = torch_run(tp, T, lr=eta0, dynamics=dyn, weight_decay=WD, **DYNAMICS[dyn], **kw)
    etas = opt.lr_history().numpy()
    assert etas.shape == (T,)
    assert np.ptp(ref.etas) > 0          # the rule did move η: the comparison means something
    assert _rel(etas, ref.etas) <= 1e-10
    assert _rel(model.flat().numpy(), ref.state.w) <= 1e-10
    for key in ("hypergradient", "mu", "beta"):
        if key in ref.diagnostics and key in opt._gstate[0]["history"]:
            assert _rel(opt.lr_history(key=key).numpy(), ref.diagnostics[key]) <= 1e-9
    assert isinstance(opt.param_groups[0]["lr"], float) and opt.param_groups[0]["lr"] == etas[-1]


@pytest.mark.parametrize("rule", ["hd-adam", "marthe"])
def test_state_dict_round_trip_continues_identically(tp, rule):
    eta0, kw = _config(rule, "heavy_ball")
    common = dict(lr=eta0, dynamics="heavy_ball", weight_decay=WD, momentum=0.9, **kw)
    full, full_opt = torch_run(tp, 20, **common)
    half, half_opt = torch_run(tp, 10, **common)
    saved_model = {k: v.clone() for k, v in half.state_dict().items()}
    saved = copy.deepcopy(half_opt.state_dict())
    torch_run(tp, 3, model=half, opt=half_opt, start=10)     # the original moves on: no aliasing
    fresh = tp.model()
    fresh.load_state_dict(saved_model)
    fresh_opt = HypergradientOptimizer(fresh.flat_parameters(), **common)
    fresh_opt.load_state_dict(saved)
    torch_run(tp, 10, model=fresh, opt=fresh_opt, start=10)
    assert torch.equal(fresh.flat(), full.flat())
    for key in fresh_opt._gstate[0]["history"]:
        assert torch.equal(fresh_opt.lr_history(key=key), full_opt.lr_history(key=key))


def test_state_dict_holds_tangent_and_rule_state(tp):
    _, opt = torch_run(tp, 3, lr=0.05, dynamics="adam", **RULES["marthe"])
    sd = opt.state_dict()
    first = sd["state"][0]
    assert first["z"].shape == (1, 3) + tuple(tp.model().weights[0].shape)
    group = sd["hypergradient"]["groups"][0]
    assert {"eta", "mu", "beta", "c", "prev_delta"} <= set(group)
    assert group["history"]["lr"].shape == (3,)
    with pytest.raises(ValueError, match="rule"):
        HypergradientOptimizer(tp.model().parameters(), lr=0.1, rule="rtho").load_state_dict(sd)


def test_float32_and_scheduler_written_lr_is_adopted(tp):
    model = tp.model().float()
    opt = SGDHD(model.parameters(), lr=0.05, hyper_lr=1e-2)
    X, y = tp.batch(0, 0)
    for t in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X.float()), y).backward()
        opt.step()
        if t == 1:
            opt.param_groups[0]["lr"] = 0.5        # e.g. a warm-up scheduler
    hist = opt.lr_history()
    assert hist.dtype == torch.float32 and model.weights[0].dtype == torch.float32
    assert hist[2] != hist[1] and abs(float(hist[2]) - 0.5) < 0.1   # restarted from 0.5


def test_param_groups_have_their_own_eta(tp):
    model = tp.model()
    W1, b1, W2, b2 = model.flat_parameters()
    opt = HypergradientOptimizer([{"params": [W1, b1]}, {"params": [W2, b2], "lr": 0.01}], lr=0.05,
                                 rule="marthe", hyper_lr=1e-3, mu=0.5, adapt_beta=False)
    torch_run(tp, 5, model=model, opt=opt)
    assert opt.state[W1]["z"].shape[0] == 2          # one tangent per group, over all parameters
    h0, h1 = opt.lr_history(0), opt.lr_history(1)
    assert h0[0] == 0.05 and h1[0] == 0.01 and not torch.equal(h0, h1)


def test_named_constructors():
    p = [torch.nn.Parameter(torch.zeros(3))]
    assert SGDHD(p, 0.1, 1e-3, momentum=0.9, nesterov=True).dynamics == "nesterov"
    assert SGDHD(p, 0.1, 1e-3, momentum=0.9).dynamics == "heavy_ball"
    assert AdamHD(p, 1e-3, 1e-7).dynamics == "adam"
    assert RTHO(p, 0.1, 1e-8).objective == "validation"
    assert MARTHE(p, 0.1, 1e-8, dynamics="heavy_ball").rule == "marthe"


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=-1), "Invalid learning rate: -1"),
    (dict(lr=float("nan")), "Invalid learning rate"),
    (dict(lr=0.1, momentum=1.5), "momentum"),
    (dict(lr=0.1, betas=(0.9, 1.0)), "beta parameter at index 1"),
    (dict(lr=0.1, eps=-1e-8), "epsilon"),
    (dict(lr=0.1, weight_decay=-1), "weight_decay"),
    (dict(lr=0.1, hyper_lr=-1e-3), "hyper_lr"),
    (dict(lr=0.1, dynamics="rmsprop"), "dynamics.*'sgd'"),
    (dict(lr=0.1, rule="magic"), "rule.*'marthe'"),
    (dict(lr=0.1, lop="rmsprop"), "lop"),
    (dict(lr=0.1, rule="marthe", mu=2.0), "mu"),
    (dict(lr=0.1, rule="marthe", mu="fast"), "mu"),
    (dict(lr=0.1, objective="test"), "objective"),
    (dict(lr=0.1, adapt_beta="yes"), "adapt_beta"),
])
def test_bad_arguments_raise_valueerror_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HypergradientOptimizer([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_protocol_errors_and_divergence():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    opt = HypergradientOptimizer([w], lr=0.1, rule="rtho", hyper_lr=1e-3, objective="train")
    with pytest.raises(ValueError, match="closure"):
        opt.step()

    def closure_without_graph():
        opt.zero_grad()
        loss = (w ** 4).sum()
        loss.backward()
        return loss

    opt.step(closure_without_graph)                 # t = 0: Z_0 = 0, no HVP needed
    with pytest.raises(RuntimeError, match="create_graph=True"):
        opt.step(closure_without_graph)
    val = HypergradientOptimizer([w], lr=0.1, rule="hd", hyper_lr=1e-3, objective="validation")
    for _ in range(2):
        val.zero_grad()
        (w ** 2).sum().backward()
    with pytest.raises(ValueError, match="objective_closure"):
        val.step()
        val.step()
    bad = HypergradientOptimizer([w], lr=0.1, rule="hd", hyper_lr=1e-3)
    bad.zero_grad()
    loss = (w * float("nan")).sum()
    loss.backward()
    with pytest.raises(DivergenceError, match="step 0"):
        bad.step(lambda: loss)
    assert math.isfinite(float(w.detach().sum()))           # weights untouched by the failed step
