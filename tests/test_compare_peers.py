"""hgref.torch.peers: every learning-rate-free optimizer runs on the tiny task, and the step size
it records is the one it applies (identities on the weights, not stored numbers)."""
from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def tp():
    import torch
    torch.set_num_threads(1)
    from hgref.problems import mnist_mlp
    from hgref.torch.mnist import mnist_torch
    return mnist_torch(mnist_mlp((8,), sizes=(300, 100, 100), seed=0))


def _flat(model):
    import torch
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def _grad(model):
    import torch
    return torch.cat([p.grad.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def _steps(tp, stepper, n, seed=0):
    """(w_t, g_t, η_t) of n steps, t = 0 … n−1, and w_n."""
    from hgref.torch.compare import _loss_fn
    out = []
    for t in range(n):
        w = _flat(stepper.model)
        X, y = tp.batch(t, seed)
        stepper.step(_loss_fn(stepper, tp, X, y))
        out.append((w, _grad(stepper.model), stepper.eta))
    return out, _flat(stepper.model)


@pytest.mark.parametrize("key", ["prodigy", "dadapt_sgd", "dadapt_adam", "schedulefree_sgd",
                                 "schedulefree_adamw", "dog", "mechanic_sgd", "mechanic_adam"])
def test_every_peer_runs_a_few_steps(tp, key):
    from hgref.torch.compare import train
    from hgref.torch.peers import PEERS, make_peer
    out = train(tp, make_peer(key, tp.model(), PEERS[key].default), 6, eval_every=3)
    assert out["diverged_at"] is None and len(out["etas"]) == 6
    assert all(math.isfinite(e) and e > 0 for e in out["etas"])
    assert out["eval_steps"] == [0, 3, 6] and 0 <= out["metrics"]["test_acc"] <= 1


@pytest.mark.parametrize("key", ["dadapt_sgd", "dog"])
def test_scalar_sgd_peers_apply_the_recorded_eta(tp, key):
    """D-Adapt SGD (momentum 0) and DoG: w_{t+1} − w_t = −η_t g_t with the recorded η_t."""
    from hgref.torch.peers import PEERS, make_peer
    assert PEERS[key].scalar_sgd
    stepper = make_peer(key, tp.model())
    steps, w_end = _steps(tp, stepper, 8)
    ws = [w for w, _, _ in steps] + [w_end]
    for (w, g, eta), w_next in zip(steps, ws[1:]):
        np.testing.assert_allclose(w_next - w, -eta * g, rtol=1e-12, atol=1e-15 * np.abs(w).max())
    etas = [e for _, _, e in steps]
    assert len(set(etas)) > 1          # adapted, not constant


@pytest.mark.parametrize("key", ["prodigy", "dadapt_adam"])
def test_adam_type_peers_first_step_is_adam_with_the_recorded_eta(tp, key):
    """Step 0 of Prodigy / D-Adapt Adam (no bias correction, moments weighted by d or η):
    Δw_0 = −η_0 (1−β1) g_0 / (√(1−β2)|g_0| + ε), η_0 the recorded d_0·lr."""
    from hgref.torch.peers import make_peer
    stepper = make_peer(key, tp.model())
    (w0, g0, eta0), = _steps(tp, stepper, 1)[0]
    w1 = _flat(stepper.model)
    b1, b2 = stepper.optimizer.param_groups[0]["betas"]
    eps = stepper.optimizer.param_groups[0]["eps"]
    expected = -eta0 * (1 - b1) * g0 / (math.sqrt(1 - b2) * np.abs(g0) + eps)
    np.testing.assert_allclose(w1 - w0, expected, rtol=1e-10, atol=1e-18)
    assert eta0 == pytest.approx(1e-6)     # d_0 = 1e-6, lr = 1 (the authors' defaults)


def test_schedulefree_evaluates_the_average_and_returns_to_training(tp):
    import torch
    from hgref.torch.peers import make_peer
    stepper = make_peer("schedulefree_sgd", tp.model())
    _steps(tp, stepper, 4)
    y = _flat(stepper.model)
    with stepper.evaluating() as m:
        x = _flat(m)
        assert not stepper.optimizer.param_groups[0]["train_mode"]
    assert stepper.optimizer.param_groups[0]["train_mode"]
    z = torch.cat([stepper.optimizer.state[p]["z"].reshape(-1) for p in stepper.model.parameters()]).numpy()
    beta = stepper.optimizer.param_groups[0]["momentum"]
    np.testing.assert_allclose(y, (1 - beta) * z + beta * x, rtol=1e-10, atol=1e-14)   # y = (1−β)z + βx
    np.testing.assert_allclose(_flat(stepper.model), y, rtol=1e-12, atol=1e-15)


def test_dog_evaluates_its_polynomial_average(tp):
    from hgref.torch.peers import make_peer
    stepper = make_peer("dog", tp.model())
    _steps(tp, stepper, 3)
    with stepper.evaluating() as m:
        assert m is not stepper.model and not np.array_equal(_flat(m), _flat(stepper.model))


def test_make_peer_rejects_an_unknown_key_naming_the_accepted_ones():
    from hgref.torch.models import MLP
    from hgref.torch.peers import make_peer, missing_packages
    with pytest.raises(ValueError, match="unknown peer 'adamw'.*prodigy"):
        make_peer("adamw", MLP((4, 3)))
    assert missing_packages(["prodigy", "dog", "constant"]) == []
