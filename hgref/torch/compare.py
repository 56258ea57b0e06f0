"""One torch training loop for ``hgref compare``: hgref's online rules and the learning-rate-free peers.

:func:`train` drives any :class:`~hgref.torch.peers.Stepper` on a :class:`~hgref.torch.mnist.TorchMNIST`
problem over the minibatches ``problem.batch(t, seed)`` — the same initial weights and minibatch
order as :func:`hgref.train.run` on the NumPy twin — and records per step the effective learning
rate η_t (the step size the method applied), the minibatch loss, and every ``eval_every`` steps the
validation loss of the model the method's authors evaluate. :func:`make_method` builds the
stepper of a method key: ``constant``, ``hd``, ``rtho``, ``marthe`` (hgref's torch bridge,
:class:`~hgref.torch.HypergradientOptimizer`) or a peer of :mod:`hgref.torch.peers`.

Divergence (:func:`divergence`, the rule of every hgref experiment): a step with a non-finite
loss, η_t or weights, or |η_t| > 1e3, ends the run there (``diverged_at`` = t, ``reason``);
a finished run whose minibatch loss stays above its start (:func:`stalled`: the mean of the
last tenth of the losses > L_0) is flagged: the rule of
:func:`hgref.experiments.flags.divergence_flag`.

>>> from hgref.problems import mnist_mlp
>>> from hgref.torch.mnist import mnist_torch
>>> tp = mnist_torch(mnist_mlp((8,), sizes=(200, 50, 50)))
>>> out = train(tp, make_method("constant", tp.model(), tp, value=0.1), 3, eval_every=2)
>>> out["etas"], out["eval_steps"], out["diverged_at"]
([0.1, 0.1, 0.1], [0, 2, 3], None)
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from .._checks import DivergenceError
from ..experiments.flags import ETA_BOUND, divergence_flag
from .optim import HypergradientOptimizer
from .peers import PEERS, Stepper, group_lr, make_peer

__all__ = ["HGREF_METHODS", "MAX_ETA", "make_method", "train", "divergence", "stalled",
           "sgd_step_seconds"]

HGREF_METHODS = ("constant", "hd", "rtho", "marthe")
MAX_ETA = ETA_BOUND


def divergence(eta, loss, weights_finite):
    """Why step t ends the run (``"loss"``, ``"eta"``, ``"weights"``, ``"eta>1e3"``), or None: the
    per-step half of :func:`hgref.experiments.flags.divergence_flag` (rules 1–2), checked while
    training so a runaway run stops at once."""
    if not math.isfinite(loss):
        return "loss"
    if not math.isfinite(eta):
        return "eta"
    if not weights_finite:
        return "weights"
    if abs(eta) > MAX_ETA:
        return "eta>1e3"
    return None


def stalled(losses):
    """True when the minibatch loss stays above its start: rule 3 of
    :func:`hgref.experiments.flags.divergence_flag` (mean of the last tenth > L_0)."""
    if len(losses) < 2:
        return False
    flag = divergence_flag(np.zeros(len(losses)), losses)
    return flag is not None


def make_method(key, model, tp, *, dynamics="sgd", value=None, eta0=0.01, hd_objective="validation"):
    """The :class:`Stepper` of method ``key`` on ``model``.

    Args:
      key: one of :data:`HGREF_METHODS` or of :data:`hgref.torch.peers.PEERS`.
      model: the module to train (its parameters, in hgref's flat order for the MLP).
      tp: the :class:`~hgref.torch.mnist.TorchMNIST` problem (∇E for the validation objective).
      dynamics: ``"sgd"`` or ``"adam"``, the dynamics of hgref's methods.
      value: the method's knob: η of ``constant``; β (``hyper_lr``) of ``hd``/``rtho``; the step of
        MARTHE's β update (adaptive μ and β, β_0 = 0); a peer's knob (None: its default).
      eta0: η_0 of ``hd``, ``rtho``, ``marthe``.
      hd_objective: ``"validation"`` (MARTHE §5) or ``"train"`` (the HD papers) for ``hd``.
    """
    if key in PEERS:
        return make_peer(key, model, value)
    if key not in HGREF_METHODS:
        raise ValueError(f"unknown method {key!r}; accepted values: {', '.join(HGREF_METHODS + tuple(PEERS))}")
    params = list(model.parameters())
    if key == "constant":
        opt = HypergradientOptimizer(params, float(value), dynamics, "constant")
    elif key == "hd":
        opt = HypergradientOptimizer(params, eta0, dynamics, "hd", hyper_lr=float(value), objective=hd_objective)
    elif key == "rtho":
        opt = HypergradientOptimizer(params, eta0, dynamics, "rtho", hyper_lr=float(value))
    else:
        opt = HypergradientOptimizer(params, eta0, dynamics, "marthe", hyper_lr=float(value), mu="adaptive",
                                     adapt_beta=True, beta0=0.0)

    def run_step(o, closure):
        oc = (lambda: tp.objective(model)) if o.objective == "validation" else None
        return o.step(closure, objective_closure=oc)

    return Stepper(opt, model, after=lambda o, _: group_lr(o), run_step=run_step,
                   create_graph=key in ("rtho", "marthe"))


def _finite(params):
    with torch.no_grad():
        return bool(torch.isfinite(torch.stack([p.sum() for p in params]).sum()))


def _loss_fn(stepper, tp, X, y):
    def loss_fn(create_graph):
        stepper.optimizer.zero_grad(set_to_none=True)
        loss = tp.loss(stepper.model, X, y)
        if create_graph:    # p.grad with its graph, without backward()'s parameter <-> grad cycle
            params = [p for p in stepper.model.parameters() if p.requires_grad]
            for p, g in zip(params, torch.autograd.grad(loss, params, create_graph=True)):
                p.grad = g
        else:
            loss.backward()
        return loss
    return loss_fn


def _flat(model):
    return np.asarray(model.flat().detach().to("cpu", torch.float64).numpy(), dtype=np.float64)


def _val_loss(tp, stepper):
    with torch.no_grad(), stepper.evaluating() as m:
        return float(tp.objective(m))


def train(tp, stepper, steps, seed=0, *, eval_every=None, metrics=True):
    """Train ``stepper`` for ``steps`` steps on ``tp``'s minibatch order ``seed``.

    Returns a dict: ``etas`` (η_t, shape (T,)), ``train_losses`` (L_t(w_t)), ``eval_steps`` and
    ``val_losses`` (E of the evaluated model at those steps and at the end), ``diverged_at``
    (step or None), ``reason``, ``stalled``, ``step_seconds`` (mean wall time of a step, loss and
    backward included), ``metrics`` (train/val/test loss and accuracy of the evaluated model,
    from the NumPy problem; ``{}`` if diverged) and ``last_iterate_val_loss`` (E of the trained
    weights themselves, which differs for averaging methods).
    """
    params = list(stepper.model.parameters())
    etas, losses, eval_steps, val_losses = [], [], [], []
    seconds, diverged_at, reason = 0.0, None, None
    for t in range(steps):
        if eval_every and t % eval_every == 0:
            eval_steps.append(t)
            val_losses.append(_val_loss(tp, stepper))
        X, y = tp.batch(t, seed)
        start = time.perf_counter()
        try:
            loss = float(stepper.step(_loss_fn(stepper, tp, X, y)).detach())
        except DivergenceError as exc:      # the bridge's own check (non-finite η or loss)
            diverged_at, reason = t, exc.what
            break
        seconds += time.perf_counter() - start
        reason = divergence(stepper.eta, loss, _finite(params))
        if reason is not None:
            diverged_at = t
            break
        etas.append(stepper.eta)
        losses.append(loss)
    out = {"etas": etas, "train_losses": losses, "diverged_at": diverged_at, "reason": reason,
           "stalled": diverged_at is None and stalled(losses),
           "step_seconds": seconds / max(1, len(etas)), "metrics": {}, "last_iterate_val_loss": None}
    if diverged_at is None:
        final = _val_loss(tp, stepper)
        if not math.isfinite(final):
            out.update(diverged_at=steps, reason="objective")
        else:
            eval_steps.append(steps)
            val_losses.append(final)
            if metrics:
                with torch.no_grad(), stepper.evaluating() as m:
                    out["metrics"] = tp.problem.metrics(_flat(m))
                out["last_iterate_val_loss"] = float(tp.problem.objective(_flat(stepper.model)))
    out.update(eval_steps=eval_steps, val_losses=val_losses)
    return out


def sgd_step_seconds(tp, steps, seed=0, lr=0.01):
    """Mean wall time of a plain ``torch.optim.SGD`` step (loss and backward included) on ``tp``."""
    model = tp.model()
    stepper = Stepper(torch.optim.SGD(model.parameters(), lr=lr), model)
    seconds = 0.0
    for t in range(steps):
        X, y = tp.batch(t, seed)
        start = time.perf_counter()
        float(stepper.step(_loss_fn(stepper, tp, X, y)).detach())
        seconds += time.perf_counter() - start
    return seconds / max(1, steps)
