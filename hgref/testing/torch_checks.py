"""Check a ``torch.optim`` hypergradient optimizer on the battery (torch imported on use).

The driver builds, for each case, the case's MLP as a list of float64 leaf tensors in hgref's
flat layout ``[W_1 (784×8), b_1, W_2 (8×10), b_2]`` (``a ↦ relu(a W + b)``, mean
cross-entropy), hands them to your factory, and for t = 0 … T−1:

1. writes η_t of the case's schedule into every ``group["lr"]`` (as a torch scheduler does);
2. calls ``step(optimizer, closure, objective_closure)``: ``closure()`` zeroes the gradients,
   computes L_t on minibatch t, calls ``loss.backward(create_graph=True)`` (so
   Hessian-vector products are available) and returns the loss; ``objective_closure()``
   returns E(w_t) as a graph-connected scalar (validation loss, or L itself on full-batch
   cases) — differentiate it for ∇E;
3. reads your estimate Δη_t of the step just taken, ``estimate(optimizer)``, and μ_t if
   ``mu`` is a callable;
4. measures the learning rate η_t the optimizer actually applied from its weights,
   η_t = (w_t − w_{t+1})·d_t / ‖d_t‖², with d_t the case's dynamics direction (hgref), and
   fails the case if w_{t+1} ≠ w_t − η_t d_t (your optimizer is not running the case's
   dynamics: configure it from ``case.config``).

The exact values are then computed by the oracle on the schedule actually used.

Adapter protocol (:class:`TorchAdapter`): ``make_optimizer(params, case)`` (raise
:class:`hgref.testing.Unsupported` to skip a case), ``estimate(optimizer) -> float`` (default
:func:`default_estimate`: the optimizer's ``hypergradient()`` method, or hgref.torch's
``lr_history(0, "hypergradient")[-1]``), ``mu`` (a number or ``mu(optimizer) -> μ_t``), and
``step`` (default :func:`default_step`: ``optimizer.step(closure)``, plus
``objective_closure=`` when ``step`` accepts it).
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from ..data import MissingDataError
from ..linearize import advance, evaluate
from .._threads import single_threaded
from .battery import BATTERY, Unsupported, compare_case
from .report import CaseResult, Report

__all__ = ["TorchAdapter", "check_torch_optimizer", "assert_torch_optimizer", "default_estimate",
           "default_step", "hgref_adapter"]

#: relative residual ‖w_{t+1} − (w_t − η_t d_t)‖ / ‖w_{t+1} − w_t‖ above which the optimizer
#: is not running the case's dynamics.
DYNAMICS_RTOL = 1e-7


class TorchAdapter(NamedTuple):
    """How the checker drives one torch optimizer (module docstring)."""

    make_optimizer: Callable                # (params, case) -> torch.optim.Optimizer
    estimate: Optional[Callable] = None     # (optimizer) -> Δη_t of the step just taken
    mu: Any = 0.0                           # discount, or (optimizer) -> μ_t of that step
    step: Optional[Callable] = None         # (optimizer, closure, objective_closure) -> None
    name: str = ""


def default_estimate(optimizer) -> float:
    """Δη_t of the last step: ``optimizer.hypergradient()`` if it exists, else hgref.torch's
    ``optimizer.lr_history(0, "hypergradient")[-1]``."""
    method = getattr(optimizer, "hypergradient", None)
    if callable(method):
        return float(method())
    if callable(getattr(optimizer, "lr_history", None)):
        return float(optimizer.lr_history(0, "hypergradient")[-1])
    raise TypeError(f"{type(optimizer).__name__} exposes no hypergradient: give it a method "
                    "hypergradient() returning the last step's estimate, or pass estimate=")


def default_step(optimizer, closure, objective_closure):
    """``optimizer.step(closure, objective_closure=...)`` if ``step`` accepts that keyword,
    else ``optimizer.step(closure)``."""
    try:
        accepts = "objective_closure" in inspect.signature(optimizer.step).parameters
    except (TypeError, ValueError):
        accepts = False
    if accepts:
        return optimizer.step(closure, objective_closure=objective_closure)
    return optimizer.step(closure)


def hgref_adapter(rule="rtho", *, mu=None, lop="sgd") -> TorchAdapter:
    """Adapter for :class:`hgref.torch.HypergradientOptimizer` with β = 0 (estimate only).

    ``rule``: ``"hd"`` (μ = 0), ``"rtho"`` (μ = 1) or ``"marthe"`` with a fixed ``mu`` or
    ``mu="adaptive"`` (μ_t read from ``lr_history(0, "mu")``).
    """
    if rule not in ("hd", "rtho", "marthe"):
        raise ValueError(f"unknown rule {rule!r}; accepted values: 'hd', 'rtho', 'marthe'")
    if rule == "marthe" and mu is None:
        raise ValueError("mu: pass MARTHE's discount, a number in [0, 1] or 'adaptive'")
    discount = {"hd": 0.0, "rtho": 1.0}.get(rule, mu)
    if discount == "adaptive":
        def discount(optimizer):
            return float(optimizer.lr_history(0, "mu")[-1])

    def make_optimizer(params, case):
        from ..torch import HypergradientOptimizer
        c = dict(case.config)
        c.pop("nesterov", None)
        extra = {"lop": lop} if rule == "hd" else {}
        if rule == "marthe":
            extra.update(mu=mu, adapt_beta=False)
        return HypergradientOptimizer(params, c.pop("lr"), c.pop("dynamics"), rule, hyper_lr=0.0,
                                      objective="validation", **c, **extra)

    name = f"hgref.torch {rule}" + (f" mu={mu}" if rule == "marthe" else "")
    return TorchAdapter(make_optimizer, default_estimate, discount, default_step, name)


def _params(torch, w0, widths):
    out, o = [], 0
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        for shape in ((n_in, n_out), (n_out,)):
            n = int(np.prod(shape))
            out.append(torch.tensor(w0[o:o + n].reshape(shape), dtype=torch.float64, requires_grad=True))
            o += n
    return out


def _cross_entropy(torch, params, X, y):
    a = X
    for k in range(0, len(params), 2):
        a = a @ params[k] + params[k + 1]
        if k + 2 < len(params):
            a = torch.relu(a)
    return torch.nn.functional.cross_entropy(a, y)


def _flat(params):
    return np.concatenate([p.detach().numpy().reshape(-1) for p in params])


def _run_case(torch, adapter, case, data_dir):
    """(estimates, schedule used, per-step μ or None, failure reason or "")."""
    problem, dyn = case.problem(data_dir), case.make_dynamics()
    batch, (XE, yE), widths = case.data(data_dir)
    params = _params(torch, np.asarray(problem.w0), widths)
    optimizer = adapter.make_optimizer(params, case)
    XE, yE = torch.as_tensor(XE, dtype=torch.float64), torch.as_tensor(yE, dtype=torch.int64)
    step_fn, estimate = adapter.step or default_step, adapter.estimate or default_estimate
    state = dyn.init(problem.w0)
    estimates, used, mus = [], [], []
    for t, written in enumerate(case.schedule):
        for group in optimizer.param_groups:
            group["lr"] = float(written)
        X, y = batch(t)
        X, y = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y, dtype=torch.int64)

        def closure(X=X, y=y):
            optimizer.zero_grad()
            loss = _cross_entropy(torch, params, X, y)
            loss.backward(create_graph=True)
            return loss

        def objective_closure():
            return _cross_entropy(torch, params, XE, yE)

        w = _flat(params)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*create_graph=True.*")
            step_fn(optimizer, closure, objective_closure)
        w_next = _flat(params)
        estimates.append(float(estimate(optimizer)))
        if callable(adapter.mu):
            mus.append(float(adapter.mu(optimizer)))
        state = state._replace(w=w)
        s = evaluate(problem, dyn, state, problem.batch(t, case.seed))
        d, dw = s.direction, w - w_next
        eta = float(dw @ s.direction / (d @ d)) if d @ d > 0 else float(written)
        resid = np.linalg.norm(dw - eta * d)
        if resid > DYNAMICS_RTOL * np.linalg.norm(dw):
            return estimates, used, mus, (
                f"step {t}: the weight update is not w - eta*d of the case's dynamics "
                f"({case.dynamics} {case.hyperparams}): relative residual "
                f"{resid / max(np.linalg.norm(dw), 1e-300):.1e}. Configure the optimizer from "
                f"case.config = {case.config}")
        used.append(float(written) if abs(eta - written) <= 1e-12 * abs(written) else eta)
        state = advance(state, s, used[-1])
    return estimates, used, mus, ""


def check_torch_optimizer(optimizer, *, cases=BATTERY, mu=None, estimate=None, step=None,
                          rtol=1e-10, atol=0.0, data_dir=None, name=None) -> Report:
    """Drive a torch optimizer over each case and compare its Δη_t with the oracle.

    Args:
      optimizer: a :class:`TorchAdapter`, or a factory ``(params, case) -> optimizer``
        (then ``mu`` is required; ``estimate``/``step`` default as in the module docstring).
      cases: the cases to run (default :data:`BATTERY`; see :func:`get_cases`).
      mu: the estimator's discount (0: HD, 1: RTHO) or ``mu(optimizer) -> μ_t``.
      rtol, atol: per-step tolerance ``|est − exact| ≤ atol + rtol·|exact|``.

    Returns:
      A :class:`Report` (``.table()``, ``.to_dict()``, ``.raise_if_failed()``).
    """
    import torch

    if not isinstance(optimizer, TorchAdapter):
        if mu is None:
            raise ValueError("mu: pass the discount of your estimator (0: HD, 1: RTHO, a MARTHE mu) "
                             "or a callable optimizer -> mu_t, or pass a TorchAdapter")
        optimizer = TorchAdapter(optimizer, estimate, mu, step,
                                 getattr(optimizer, "__qualname__", type(optimizer).__name__))
    elif mu is not None or estimate is not None or step is not None:
        optimizer = optimizer._replace(**{k: v for k, v in (("mu", mu), ("estimate", estimate),
                                                            ("step", step)) if v is not None})
    with single_threaded():       # the cases are tiny: extra threads only add overhead
        results = [_check_case(torch, optimizer, case, rtol, atol, data_dir) for case in cases]
    mu_shown = optimizer.mu if not callable(optimizer.mu) else "per-step"
    return Report(name or optimizer.name or "torch optimizer", tuple(results), mu_shown, rtol, atol)


def _check_case(torch, optimizer, case, rtol, atol, data_dir) -> CaseResult:
    try:
        est, used, mus, reason = _run_case(torch, optimizer, case, data_dir)
    except Unsupported as exc:
        return CaseResult(case.name, "unsupported", float("nan"), None, str(exc), None,
                          case.description)
    except MissingDataError:  # the battery's MNIST files are absent: no fault of the optimizer
        raise
    except Exception as exc:  # noqa: BLE001 - the report names what the optimizer raised
        return CaseResult(case.name, "error", float("nan"), None, f"{type(exc).__name__}: {exc}",
                          None, case.description)
    if reason:
        return CaseResult(case.name, "fail", float("nan"), len(used), reason, None, case.description)
    discount = np.array(mus) if callable(optimizer.mu) else optimizer.mu
    return compare_case(case, est, used, discount, rtol=rtol, atol=atol, data_dir=data_dir)


def assert_torch_optimizer(optimizer, **kwargs) -> Report:
    """:func:`check_torch_optimizer`, raising an ``AssertionError`` naming every broken case."""
    return check_torch_optimizer(optimizer, **kwargs).raise_if_failed()
