"""Own-dynamics mode: the exact target computed through the optimizer under test itself.

No declaration is needed: whatever update the optimizer runs (ε anywhere, v started at ε, torch
< 2.0 Adam, AdamW, float32 constants...), J^k[t, i] = ∂Obj_t(w_t)/∂η^k_i is measured on *its*
trajectory, and its estimates are judged against that.

Method (per case; the model is the battery MLP 784-8-10 with **tanh** instead of ReLU — finite
differences across ReLU kinks are not smooth — in float64):

1. the main run records, before each step t, a deep copy of ``(optimizer, params)``, the η^k_t
   written, the η applied (``group["lr"]`` after the step if the optimizer's own rule changed it,
   e.g. HD with β ≠ 0; else the written one) and the estimate;
2. for each group k and step i, four reruns from the copy at step i with η^k_i + s·h
   (s = ±1, ±2; h = :data:`FD_STEP`·η^k_i) and every later η as in the main run give
   Obj_t(w_t) for t > i; Richardson's extrapolation of the two central differences,
   (4 D(h) − D(2h)) / 3, has error O(h⁴) + O(ε_mach |Obj| / h);
3. an optimizer whose rule moves η inside ``step`` would feed the perturbation back into later
   learning rates: after every rerun step whose applied η (read from ``group["lr"]``) differs from
   the main run's, the weights are moved to the main run's η along the step's own direction
   (the update is affine in η: w_{t+1} = w_t − η d_t, buffers do not depend on η_t);
4. the same reruns give d_i = −∂w_{i+1}/∂η_i exactly (affine), so the driver checks that the
   main run applied the η it says: w_i − w_{i+1} = η_i d_i per group and tensor (else diagnosis
   ``eta_not_applied`` or ``per_tensor_eta``; the reference would be meaningless).

Accuracy: ≤ 1e-7 relative to the exact oracle on an hgref dynamics (tests/test_testing_own.py
runs hgref's own torch bridge in this mode and compares J with
:func:`hgref.oracle.prefix_hypergradients` on the tanh problem); estimates pass at rtol 1e-6.
Cost: 4 Σ_i (T − 1 − i) ≈ 2T² optimizer steps per group (1200 for T = 25).
"""
from __future__ import annotations

import numpy as np

from typing import NamedTuple, Optional

from ..linearize import advance, evaluate
from .diagnose import dynamics_hint, fit_eta, judge, per_tensor_text, tensor_slices
from .objectives import resolve_objective
from .report import failed_result
from .session import Session

__all__ = ["run_own", "own_reference", "OwnRun", "FD_STEP", "ETA_RTOL", "own_reference_text"]

#: relative finite-difference step h = FD_STEP·η_i (Richardson with h and 2h)
FD_STEP = 1e-3
#: w_t − w_{t+1} must equal η_t d_t (d_t from the reruns) to this relative residual
ETA_RTOL = 1e-8
#: a main-run update counts as "the case's dynamics" in the informational note below this
NOTE_RTOL = 1e-12


def own_reference_text(fd_step=None):
    h = FD_STEP if fd_step is None else fd_step
    return (f"central differences through your optimizer (Richardson, h = {h:g}*eta_i and 2h; "
            f"float64), smooth model MLP 784-8-10 tanh; good to 1e-7 relative (tests/test_testing_own.py)")


def _main_run(session, case):
    K, T = case.n_groups, case.steps
    snaps, est, mus, applied = [], np.zeros((K, T)), np.zeros((K, T)), np.zeros((K, T))
    ws = [session.flat()]
    for t in range(T):
        snaps.append(session.snapshot())
        written = case.schedules[:, t]
        est[:, t], mu_t, lr_after = session.step(t, written)
        if mu_t is not None:
            mus[:, t] = mu_t
        applied[:, t] = np.where(lr_after != written, lr_after, written)
        ws.append(session.flat())
    return snaps, est, mus, applied, ws


def _rerun(session, case, i, k, delta, applied, masks, objective, stop):
    """Steps i … stop−1 from the copy at step i with η^k_i + delta; returns (w_{i+1}, [Obj_t(w_t)])."""
    values, first = [], None
    for j in range(i, stop):
        written = case.schedules[:, j].copy()
        target = applied[:, j].copy()
        if j == i:
            written[k] += delta
            target[k] += delta
        w_before = session.flat()
        _, _, lr_after = session.step(j, written, read=False)
        now = np.where(lr_after != written, lr_after, written)
        if np.any(now != target):          # the optimizer's own rule moved η: put it back
            w = session.flat()
            for g in np.flatnonzero(now != target):
                if now[g] == 0:
                    raise RuntimeError(f"step {j}: group {g} applied eta = 0, so its step direction "
                                       "is unknown and the eta of the main run cannot be restored")
                m = masks[g]
                w[m] += (now[g] - target[g]) * (w_before[m] - w[m]) / now[g]
            session.set_flat(w)
        w = session.flat()
        if j == i:
            first = w
        if j + 1 < case.steps:
            values.append(objective.value(j + 1, w))
    return first, np.array(values)


class OwnRun(NamedTuple):
    """The main run and the finite-difference reference of one case."""

    estimates: np.ndarray    # shape=(K, T) Δη^k_t read after step t
    mus: np.ndarray          # shape=(K, T) μ_t (zeros unless mu is callable)
    applied: np.ndarray      # shape=(K, T) η^k_t applied at step t
    J: np.ndarray            # shape=(K, T+1, T) ∂Obj_t(w_t)/∂η^k_i (rows 1 … T−1 filled)
    weights: list            # w_0 … w_T of the main run, each shape=(d,)
    failure: Optional[object]  # a CaseResult when η was not applied as said, else None


def own_reference(session, case, objective, fd_step=FD_STEP) -> OwnRun:
    """The :class:`OwnRun` of the optimizer in ``session`` on ``case`` (module docstring)."""
    snaps, est, mus, applied, ws = _main_run(session, case)
    K, T = case.n_groups, case.steps
    masks, slices = case.group_masks(session.widths), tensor_slices(session.widths)
    J = np.zeros((K, T + 1, T))
    for k in range(K):
        scale = float(np.max(np.abs(applied[k]))) or 1.0
        for i in range(T):
            h = fd_step * (abs(applied[k, i]) or scale)
            stop = max(i + 1, T - 1)
            runs = {s: _rerun(session.restored(snaps[i]), case, i, k, s * h, applied, masks, objective, stop)
                    for s in (1, -1, 2, -2)}
            d = (runs[-1][0] - runs[1][0]) / (2 * h)               # d_i = −∂w_{i+1}/∂η^k_i
            m = masks[k]
            dw = ws[i][m] - ws[i + 1][m]
            resid = np.linalg.norm(dw - applied[k, i] * d[m]) / max(np.linalg.norm(dw), 1e-300)
            if resid > ETA_RTOL and np.linalg.norm(dw) > 0:
                sl = [s for s in slices if m[s.start]]
                text = per_tensor_text(ws[i] - ws[i + 1], d, sl, case.schedules[:, i])
                diag = "per_tensor_eta" if text else "eta_not_applied"
                eta_fit = fit_eta(dw, d[m], [np.ones(dw.size, bool)])[0][0]
                msg = (f"step {i}, group {k}: w_t - w_(t+1) = eta*d_t holds for eta = {eta_fit:.10g}, "
                       f"not for eta = {applied[k, i]:.10g} (written {case.schedules[k, i]:.10g}, "
                       f"group['lr'] after the step), relative residual {resid:.1e}. {text}").strip()
                return OwnRun(est, mus, applied, J, ws, failed_result(case, "fail", diag, msg, step=i))
            if i + 1 < T:
                D1 = (runs[1][1] - runs[-1][1]) / (2 * h)
                D2 = (runs[2][1] - runs[-2][1]) / (4 * h)
                J[k, i + 1:T, i] = (4 * D1 - D2) / 3
    return OwnRun(est, mus, applied, J, ws, None)


def _dynamics_note(case, problem, ws, applied, masks, slices):
    """Informational: where the optimizer's update first differs from the case's hgref dynamics."""
    dyn = case.make_dynamics()
    state = dyn.init(problem.w0)
    for t in range(case.steps):
        state = state._replace(w=ws[t])
        s = evaluate(problem, dyn, state, problem.batch(t, case.seed))
        dw = ws[t] - ws[t + 1]
        _, resid = fit_eta(dw, s.direction, masks)
        if resid > NOTE_RTOL:
            hint, _ = dynamics_hint(dyn, state, s.grad, dw, masks, slices, case.schedules[:, t])
            return (f"note: your update differs from the case's {case.dynamics} from step {t} "
                    f"(relative residual {resid:.1e}; {hint}); judged on its own update")
        state = advance(state, s, applied[:, t] @ masks)
    return ""


def run_own(torch, adapter, case, data_dir, rtol, atol, objective_spec, fd_step=None):
    """The :class:`CaseResult` of ``case`` in own-dynamics mode (module docstring)."""
    session = Session(torch, adapter, case, data_dir, activation="tanh")
    problem = case.problem(data_dir, "tanh")
    objective = resolve_objective(objective_spec, problem, case.make_dynamics(), case.seed)
    run = own_reference(session, case, objective, FD_STEP if fd_step is None else fd_step)
    if run.failure is not None:
        return run.failure
    mu = run.mus if callable(adapter.mu) else adapter.mu
    result = judge(case, run.estimates, run.J, run.applied, mu, rtol=rtol, atol=atol)
    note = _dynamics_note(case, problem, run.weights, run.applied, case.group_masks(session.widths),
                          tensor_slices(session.widths))
    return result._replace(message="\n".join(x for x in (result.message, note) if x))
