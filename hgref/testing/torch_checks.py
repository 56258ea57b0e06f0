"""Check a ``torch.optim`` hypergradient optimizer on the battery (torch imported on use).

The driver runs each case through the call protocol of :mod:`hgref.testing.session` (write η
into every ``group["lr"]``, ``step(closure, objective_closure)``, read the estimate) and
compares the estimates with a reference, in one of two modes:

``mode="declared"`` (default)
  The optimizer claims to run the case's hgref dynamics (configure it from ``case.config``).
  After every step the driver fits the learning rate each group applied, η^k_t =
  (w_t − w_{t+1})·d_t / ‖d_t‖² on the group's weights (d_t: the case's dynamics in hgref), and
  fails the case — diagnosis ``wrong_dynamics`` with the measured residual and the variant of
  the dynamics that fits (float32 constants, ε placement, decoupled vs coupled decay, ...;
  :mod:`hgref.testing.diagnose`) — when w_{t+1} ≠ w_t − Σ_k η^k_t P_k d_t beyond
  :data:`DYNAMICS_RTOL` relative. The reference is exact: the oracle's J[t, i] on the schedule
  actually applied (rtol 1e-10).
``mode="own"``
  No declaration: the reference is computed through the optimizer itself, by central
  differences over copies of it (:mod:`hgref.testing.own`), on the smooth (tanh) model; rtol
  1e-6 for a reference good to 1e-7.

``objective`` declares what Δη_t differentiates (:mod:`hgref.testing.objectives`): ``"validation"``
(E, default), ``"loss"`` (L_t), ``"train"`` (L_t + λ/2‖w‖², coupled λ: what an estimator reading
``p.grad`` after torch's weight decay sees) or a callable ``f(w, batch)``.
"""
from __future__ import annotations

import numpy as np

from .._threads import single_threaded
from ..data import MissingDataError
from ..linearize import advance, evaluate
from .adapters import TorchAdapter
from .battery import DECLARED_REFERENCE, compare_case
from .cases import BATTERY, Unsupported
from .diagnose import dynamics_failure, fit_eta, tensor_slices
from .objectives import objective_name
from .report import Report, failed_result
from .session import ProtocolFailure, Session

__all__ = ["check_torch_optimizer", "assert_torch_optimizer", "DYNAMICS_RTOL", "MODES"]

#: relative residual ‖w_{t+1} − (w_t − η_t d_t)‖ / ‖w_{t+1} − w_t‖ above which the optimizer is
#: not running the case's dynamics (float64 torch vs NumPy agree to ~1e-15; a float32 momentum
#: constant leaves ~1e-8)
DYNAMICS_RTOL = 1e-12
MODES = ("declared", "own")
_RTOL = {"declared": 1e-10, "own": 1e-6}


def _run_declared(torch, adapter, case, data_dir, rtol, atol, objective):
    problem, dyn = case.problem(data_dir), case.make_dynamics()
    session = Session(torch, adapter, case, data_dir)
    masks, slices = case.group_masks(session.widths), tensor_slices(session.widths)
    K, T = case.n_groups, case.steps
    state = dyn.init(problem.w0)
    est, used, mus = np.zeros((K, T)), np.zeros((K, T)), np.zeros((K, T))
    for t in range(T):
        written = case.schedules[:, t]
        w = session.flat()
        est[:, t], mu_t, _ = session.step(t, written)
        if mu_t is not None:
            mus[:, t] = mu_t
        state = state._replace(w=w)
        s = evaluate(problem, dyn, state, problem.batch(t, case.seed))
        dw = w - session.flat()
        etas, resid = fit_eta(dw, s.direction, masks)
        if resid > DYNAMICS_RTOL:
            return dynamics_failure(case, t, dyn, state, s.grad, dw, masks, slices, written, resid,
                                    DYNAMICS_RTOL)
        used[:, t] = [wr if abs(e - wr) <= 1e-12 * abs(wr) else e for e, wr in zip(etas, written)]
        state = advance(state, s, used[:, t] @ masks)
    mu = mus if callable(adapter.mu) else adapter.mu
    return compare_case(case, est, used, mu, rtol=rtol, atol=atol, data_dir=data_dir, objective=objective)


def _check_case(torch, adapter, case, mode, rtol, atol, data_dir, objective, fd_step):
    try:
        if mode == "declared":
            return _run_declared(torch, adapter, case, data_dir, rtol, atol, objective)
        from .own import run_own
        return run_own(torch, adapter, case, data_dir, rtol, atol, objective, fd_step)
    except Unsupported as exc:
        return failed_result(case, "unsupported", "unsupported", str(exc))
    except MissingDataError:  # the battery's MNIST files are absent: no fault of the optimizer
        raise
    except ProtocolFailure as exc:
        return failed_result(case, "fail", exc.diagnosis, str(exc), step=exc.step)
    except Exception as exc:  # noqa: BLE001 - the report names what the optimizer raised
        return failed_result(case, "error", "raised", f"{type(exc).__name__}: {exc}")


def check_torch_optimizer(optimizer, *, cases=BATTERY, mu=None, estimate=None, step=None,
                          objective=None, mode="declared", rtol=None, atol=0.0, data_dir=None,
                          name=None, fd_step=None) -> Report:
    """Drive a torch optimizer over each case and compare its Δη_t with the reference.

    Args:
      optimizer: a :class:`TorchAdapter`, or a factory ``(params, case) -> optimizer``
        (then ``mu`` is required; ``estimate``/``step`` default as in :mod:`hgref.testing.session`).
      cases: the cases to run (default :data:`BATTERY`; see :func:`get_cases`).
      mu: the estimator's discount (0: HD, 1: RTHO) or ``mu(optimizer) -> μ_t``.
      objective: what Δη_t differentiates (module docstring); default the adapter's, else E.
      mode: ``"declared"`` (the case's hgref dynamics, exact oracle) or ``"own"`` (the
        optimizer's own update, finite differences through it; module docstring).
      rtol, atol: per-step tolerance ``|est − exact| ≤ atol + rtol·|exact|``; default rtol
        1e-10 (declared) or 1e-6 (own).
      fd_step: own mode: relative finite-difference step (default
        :data:`hgref.testing.own.FD_STEP`).

    Returns:
      A :class:`Report` (verdict, coverage, ``.table()``, ``.to_dict()``, ``.raise_if_failed()``).
    """
    import torch

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; accepted values: 'declared', 'own'")
    if not isinstance(optimizer, TorchAdapter):
        if mu is None:
            raise ValueError("mu: pass the discount of your estimator (0: HD, 1: RTHO, a MARTHE mu) "
                             "or a callable optimizer -> mu_t, or pass a TorchAdapter")
        optimizer = TorchAdapter(optimizer, estimate, mu, step,
                                 getattr(optimizer, "__qualname__", type(optimizer).__name__))
    else:
        optimizer = optimizer._replace(**{k: v for k, v in (("mu", mu), ("estimate", estimate),
                                                            ("step", step)) if v is not None})
    objective = optimizer.objective if objective is None else objective
    rtol = _RTOL[mode] if rtol is None else rtol
    with single_threaded():       # the cases are tiny: extra threads only add overhead
        results = [_check_case(torch, optimizer, case, mode, rtol, atol, data_dir, objective, fd_step)
                   for case in cases]
    if mode == "own":
        from .own import own_reference_text
        reference = own_reference_text(fd_step)
    else:
        reference = DECLARED_REFERENCE
    mu_shown = optimizer.mu if not callable(optimizer.mu) else "per-step"
    return Report(name or optimizer.name or "torch optimizer", tuple(results), mu_shown, rtol, atol,
                  mode, objective_name(objective), reference)


def assert_torch_optimizer(optimizer, *, complete=True, **kwargs) -> Report:
    """:func:`check_torch_optimizer`, raising an ``AssertionError`` naming every broken case
    (and, with ``complete``, when the verdict is INCOMPLETE)."""
    return check_torch_optimizer(optimizer, **kwargs).raise_if_failed(complete=complete)
