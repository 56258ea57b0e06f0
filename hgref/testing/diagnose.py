"""Diagnoses: what is wrong, not just which numbers differ.

* :func:`judge` — the verdict of one case from its estimates and the reference, per param group:
  exact, wrong hypergradient, an estimate shifted by one step (equal to the exact value of the
  next or the previous step), or a schedule the optimizer ignored;
* :func:`fit_eta` — the learning rate(s) an update applied along a direction, per group and per
  tensor, with the relative residual;
* :func:`dynamics_hint` — when an update is not the declared dynamics, which known variant it
  *is* (float32 constants, ε inside/outside the √, ε added before Adam's bias correction as in
  torch < 2.0, v started at ε, coupled vs decoupled decay, decay missing, Nesterov flag
  ignored), found by re-computing the step with each variant and keeping those that fit to
  ~1e-10.
"""
from __future__ import annotations

import numpy as np

from .. import dynamics as _dynamics
from .exact import compare, exact_hypergradients
from .report import DIAGNOSES, compared_result, failed_result

__all__ = ["judge", "shift_diagnosis", "fit_eta", "dynamics_hint", "dynamics_failure", "tensor_slices",
           "per_tensor_text", "DIAGNOSES"]

#: a variant of the declared dynamics "fits" an update when its relative residual is below this
HINT_RTOL = 1e-10
#: per-tensor learning rates: each tensor must fit w − η_k d to this, and the η_k differ by more
#: than 100× this (a float32 constant leaves ~1e-9 per tensor, not a per-tensor η)
PER_TENSOR_RTOL = 1e-11


def shift_diagnosis(estimates, exact, rtol, atol):
    """``"shifted_late"`` if estimate[t] = exact[t+1] for every t < T−1, ``"shifted_early"`` if
    estimate[t] = exact[t−1] for t ≥ 1 (at the same tolerance), else None."""
    est, ex = np.asarray(estimates, dtype=float), np.asarray(exact, dtype=float)
    if est.size < 3 or not np.any(ex[1:]):
        return None
    if compare(est[:-1], ex[1:], ex[1:], rtol=rtol, atol=atol).passed:
        return "shifted_late"
    if compare(est[1:], ex[:-1], ex[:-1], rtol=rtol, atol=atol).passed:
        return "shifted_early"
    return None


def judge(case, estimates, prefix, used, mu, *, rtol, atol, extra=""):
    """:class:`CaseResult` of per-group estimates (K, T) against J (K, T+1, T) on the used
    schedules (K, T); ``mu`` a number or per-step discounts (T,) / (K, T)."""
    estimates, used = np.atleast_2d(estimates), np.atleast_2d(used)
    mus = np.broadcast_to(np.asarray(mu, dtype=float), (used.shape[0],) + np.shape(mu)[-1:]) \
        if np.ndim(mu) else [mu] * used.shape[0]
    results = []
    for k in range(used.shape[0]):
        exact = exact_hypergradients(None, None, used[k], mu=mus[k], prefix=prefix[k])
        cmp = compare(estimates[k], exact, used[k], rtol=rtol, atol=atol)
        diagnosis = None if cmp.passed else shift_diagnosis(estimates[k], exact, rtol, atol)
        results.append((cmp, diagnosis, k))
    cmp, diagnosis, k = max(results, key=lambda r: (not r[0].passed, r[0].max_rel_error))
    label = f"group {k}: " if used.shape[0] > 1 else ""
    for g, (planned, u) in enumerate(zip(case.schedules, used)):
        if np.ptp(planned) > 0 and np.ptp(u) <= 1e-12 * np.max(np.abs(u)):
            where = f"group {g}: " if used.shape[0] > 1 else ""
            return compared_result(case, cmp, mu, "lr_ignored", extra=(where + extra).strip())
    if cmp.passed:
        return compared_result(case, cmp, mu)
    return compared_result(case, cmp, mu, diagnosis, extra=(label + extra).strip())


def tensor_slices(widths):
    """Slices of the flat weights for the tensors W_1, b_1, W_2, b_2, ... (hgref's layout)."""
    out, o = [], 0
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        for n in (n_in * n_out, n_out):
            out.append(slice(o, o + n))
            o += n
    return out


def fit_eta(dw, d, masks):
    """Least-squares η per group of ``dw = η d`` (dw = w_t − w_{t+1}); returns (etas, residual
    relative to ‖dw‖) — residual 0 when dw = 0."""
    etas = []
    fit = np.zeros_like(dw)
    for m in masks:
        dd = d[m] @ d[m]
        eta = float(dw[m] @ d[m] / dd) if dd > 0 else 0.0
        etas.append(eta)
        fit[m] = eta * d[m]
    norm = np.linalg.norm(dw)
    return etas, (float(np.linalg.norm(dw - fit) / norm) if norm > 0 else 0.0)


def per_tensor_text(dw, d, slices, etas_written):
    """A hint if each tensor follows w − η_k d with its own η_k (η updated inside the loop)."""
    etas = [fit_eta(dw[s], d[s], [np.ones(s.stop - s.start, bool)]) for s in slices]
    if max(r for _, r in etas) > PER_TENSOR_RTOL:
        return ""
    values = [e[0][0] for e in etas]
    spread = np.ptp(values) / max(abs(np.mean(values)), 1e-300)
    if spread <= 100 * PER_TENSOR_RTOL:
        return ""
    return (f"each tensor follows w - eta*d, but with its own eta: {', '.join(f'{v:.10g}' for v in values)} "
            f"(written: {', '.join(f'{v:.10g}' for v in etas_written)})")


def _float32(x):
    return float(np.float32(x))


def _variants(dyn):
    """(text, dynamics or direction function) alternatives of the declared dynamics."""
    name, hp = dyn.name, dict(dyn.hyperparams)
    out = []
    f32 = {k: _float32(v) for k, v in hp.items() if isinstance(v, float) and _float32(v) != v}
    if f32:
        out.append((f"float32 constants ({', '.join(f'{k}={v:.10g}' for k, v in f32.items())}): "
                    "build the optimizer's constants in float64", _dynamics.get_dynamics(name, **{**hp, **f32})))
    if hp.get("weight_decay"):
        out.append(("weight decay missing from the update",
                    _dynamics.get_dynamics(name, **{**hp, "weight_decay": 0.0})))
    if name in ("adam", "adamw"):
        other = "adamw" if name == "adam" else "adam"
        if hp.get("weight_decay"):
            out.append((("decoupled weight decay (AdamW: w <- w(1 - eta*lambda), lambda not in g) "
                         "where the case declares coupled L2 decay (g <- g + lambda*w)") if name == "adam" else
                        ("coupled L2 weight decay (g <- g + lambda*w, torch Adam) where the case "
                         "declares AdamW's decoupled decay"), _dynamics.get_dynamics(other, **hp)))
        eps, root = hp["eps"], hp["eps_root"]
        if eps and not root:
            out.append(("eps inside the square root (sqrt(v_hat + eps), optax's eps_root) instead of "
                        "outside (torch)", _dynamics.get_dynamics(name, **{**hp, "eps": 0.0, "eps_root": eps})))
        if root:
            out.append(("eps_root ignored (eps outside the square root only)",
                        _dynamics.get_dynamics(name, **{**hp, "eps_root": 0.0})))
        out.append(("eps added to sqrt(v) before the bias correction (torch < 2.0 Adam, original "
                    "AdamHD: step_size = eta*sqrt(bc2)/bc1, denom = sqrt(v) + eps)", _pre2(dyn)))
        out.append(("the second moment v started at eps instead of 0", _v_at_eps(dyn)))
    if name == "nesterov":
        out.append(("the Nesterov flag is ignored: the update is heavy-ball (d = v, not g + mu*v)",
                    _dynamics.heavy_ball(hp["momentum"], hp["weight_decay"])))
    if name == "heavy_ball":
        out.append(("Nesterov momentum (d = g + mu*v) where the case declares heavy-ball",
                    _dynamics.nesterov(hp["momentum"], hp["weight_decay"])))
    return out


def _pre2(dyn):
    hp = dyn.hyperparams

    def direction(w, buffers, grad, count):
        bc2 = 1 - hp["b2"] ** (count + 1)
        eps_t = hp["eps"] / np.sqrt(bc2)
        inner = _dynamics.get_dynamics(dyn.name, **{**hp, "eps": eps_t})
        return inner.direction(w, buffers, grad, count)
    return direction


def _v_at_eps(dyn):
    def direction(w, buffers, grad, count):
        if count == 0:
            buffers = (buffers[0], buffers[1] + dyn.hyperparams["eps"])
        return dyn.direction(w, buffers, grad, count)
    return direction


def dynamics_hint(dyn, state, grad, dw, masks, slices, etas_written):
    """Text naming the variants of ``dyn`` that reproduce the update ``dw = w_t − w_{t+1}``."""
    hints = []
    for text, variant in _variants(dyn):
        fn = variant.direction if hasattr(variant, "direction") else variant
        d = fn(state.w, state[1:-1], grad, state.count)[0]
        etas, resid = fit_eta(dw, d, masks)
        if resid <= HINT_RTOL:
            hints.append(f"{text} (relative residual {resid:.1e})")
    if hints:
        return "your update matches: " + "; ".join(hints), "wrong_dynamics"
    d_declared = dyn.direction(state.w, state[1:-1], grad, state.count)[0]
    per_tensor = per_tensor_text(dw, d_declared, slices, etas_written)
    if per_tensor:
        return per_tensor, "per_tensor_eta"
    return ("no known variant fits (checked: float32 constants, eps placement, torch<2.0 Adam, v "
            "started at eps, coupled/decoupled/missing decay, Nesterov flag, per-tensor lr)"), "wrong_dynamics"


def dynamics_failure(case, t, dyn, state, grad, dw, masks, slices, etas_written, resid, tol):
    """The ``fail`` result of a step whose update is not the declared dynamics."""
    hint, diagnosis = dynamics_hint(dyn, state, grad, dw, masks, slices, etas_written)
    msg = (f"step {t}: the weight update is not w - eta*d of the case's dynamics ({case.dynamics} "
           f"{case.hyperparams}): relative residual {resid:.1e} > {tol:g}. {hint}. Configure the "
           f"optimizer from case.config = {case.config}, or check it in own-dynamics mode "
           f"(mode='own'), which needs no declaration")
    return failed_result(case, "fail", diagnosis, msg, step=t)

