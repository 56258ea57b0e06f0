"""The fixed battery of reference cases and the NumPy rule checker.

Every case is a float64 ReLU MLP 784-8-10 on a small real-MNIST subset (hgref.problems.mnist_mlp,
glorot init, seed 0), 25 steps, with a learning-rate *schedule* that the checker writes before
each step (as a torch scheduler writes ``group["lr"]``; :func:`follow_schedule` for NumPy rules).
Each case isolates one thing that implementations get wrong, so the case that breaks names the
bug:

==================  ==============================================================================
``sgd``             baseline: SGD, constant η, full batch (E = L)
``sgd_lr_changes``  η changes every step: A_t must use the current η_t, not a stale one
``sgd_weight_decay``  weight decay λ = 0.01 (g ← g + λw): A_t carries λ·z_w
``heavy_ball``      momentum 0.9 (torch SGD): the velocity's tangent, v_1 = g_0 on the first step
``nesterov``        Nesterov 0.9: d = g + μv and the velocity's tangent
``adam``            Adam, ε = 1e-8 outside the square root (torch): tangents of m, v, √v̂ + ε
``adam_eps_root``   Adam, ε_root = 1e-8 inside the square root (optax), ε = 1e-8 outside
``validation``      minibatches of 64, E = validation loss ≠ L_t: ∇E(w_t), and HVPs of batch t
``nesterov_all``    Nesterov + weight decay + changing η + minibatches/validation E
``adam_all``        Adam (ε_root) + weight decay + changing η + minibatches/validation E
==================  ==============================================================================

Full-batch cases train on 128 images with E = L (the same 128 images); minibatch cases draw
640 training and 256 validation images. MNIST comes from ``$HGREF_DATA`` (see
:func:`hgref.data.load_mnist`); it is loaded on first use, not on import.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from .. import dynamics as _dynamics
from .._checks import check_int
from .._threads import single_threaded
from ..data import MissingDataError
from .exact import compare, exact_hypergradients
from .report import CaseResult, Report, compared_result

__all__ = ["Case", "BATTERY", "Unsupported", "get_cases", "follow_schedule", "check_rule",
           "assert_rule", "case_prefix"]

STEPS = 25
HIDDEN = 8
FULL_BATCH = 128
MINIBATCH = (640, 256, 64)     # train images, validation images, batch size


class Unsupported(Exception):
    """Raise from an optimizer/rule factory when it cannot run a case (e.g. SGD-only code
    on an Adam case): the case is reported as ``unsupported`` instead of failing."""


def _wobble(base, steps=STEPS):
    """η_t = base·(1 + ½ cos 2t): changes by up to ±50% from one step to the next."""
    return tuple(float(x) for x in base * (1.0 + 0.5 * np.cos(2.0 * np.arange(steps))))


class Case(NamedTuple):
    """One reference case: a dynamics, a schedule and a problem (module docstring)."""

    name: str
    description: str          # what it exercises
    dynamics: str             # "sgd", "heavy_ball", "nesterov" or "adam"
    hyperparams: dict         # keyword arguments of that hgref.dynamics factory
    schedule: tuple           # η_t written before step t; len = number of steps
    minibatch: bool           # False: full batch, E = L; True: minibatches, E = validation loss
    seed: int = 0             # minibatch sequence

    def __repr__(self):
        return f"Case({self.name!r}: {self.description})"

    @property
    def steps(self) -> int:
        return len(self.schedule)

    @property
    def config(self) -> dict:
        """torch-style optimizer settings for your factory: ``dynamics``, ``lr`` (η_0),
        ``weight_decay``, and ``momentum``/``nesterov`` or ``betas``/``eps``/``eps_root``."""
        hp = dict(self.hyperparams)
        out = {"dynamics": self.dynamics, "lr": self.schedule[0],
               "weight_decay": hp.pop("weight_decay", 0.0)}
        if self.dynamics == "adam":
            out.update(betas=(hp.get("b1", 0.9), hp.get("b2", 0.999)), eps=hp.get("eps", 1e-8),
                       eps_root=hp.get("eps_root", 0.0))
        else:
            out.update(momentum=hp.get("momentum", 0.0), nesterov=self.dynamics == "nesterov")
        return out

    def make_dynamics(self):
        """The :mod:`hgref.dynamics` object of this case."""
        return _dynamics.get_dynamics(self.dynamics, **self.hyperparams)

    def problem(self, data_dir=None):
        """The NumPy :class:`hgref.problems.Problem` (built once per data directory)."""
        return _problem(self.minibatch, data_dir)[0]

    def data(self, data_dir=None):
        """``(batch(t) -> (X, y), (X_E, y_E), widths)``: minibatch t, the data E is the mean
        cross-entropy of, and the layer widths (784, 8, 10) — for drivers in other frameworks."""
        problem, objective_data = _problem(self.minibatch, data_dir)
        return (lambda t: problem.batch(t, self.seed)), objective_data, tuple(problem.info["layers"])


def _case(name, description, dynamics, schedule, minibatch=False, **hyperparams):
    return Case(name, description, dynamics, hyperparams, tuple(schedule), minibatch)


BATTERY = (
    _case("sgd", "baseline: SGD, constant lr, full batch (E = L)", "sgd", [0.3] * STEPS),
    _case("sgd_lr_changes", "lr changes every step (stale lr in the tangent)", "sgd", _wobble(0.3)),
    _case("sgd_weight_decay", "weight decay 0.01 (lambda*z_w in the tangent)", "sgd", [0.3] * STEPS,
          weight_decay=0.01),
    _case("heavy_ball", "heavy-ball momentum 0.9 (velocity tangent, first steps)", "heavy_ball",
          [0.05] * STEPS, momentum=0.9),
    _case("nesterov", "Nesterov momentum 0.9 (d = g + mu*v, velocity tangent)", "nesterov",
          [0.05] * STEPS, momentum=0.9),
    _case("adam", "Adam, eps outside the sqrt (torch)", "adam", [0.003] * STEPS, eps=1e-8),
    _case("adam_eps_root", "Adam, eps_root inside the sqrt (optax)", "adam", [0.003] * STEPS,
          eps=1e-8, eps_root=1e-8),
    _case("validation", "minibatches, E = validation loss != L_t", "sgd", [0.3] * STEPS, True),
    _case("nesterov_all", "Nesterov + weight decay + changing lr + validation E", "nesterov",
          _wobble(0.05), True, momentum=0.9, weight_decay=0.01),
    _case("adam_all", "Adam (eps_root) + weight decay + changing lr + validation E", "adam",
          _wobble(0.003), True, eps=1e-8, eps_root=1e-8, weight_decay=0.01),
)


def get_cases(names=None, cases=BATTERY):
    """The cases named in ``names`` (a list or a comma-separated string; None: all)."""
    if names is None:
        return tuple(cases)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    known = {c.name: c for c in cases}
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown case {bad[0]!r}; accepted values: {', '.join(known)}")
    return tuple(known[n] for n in names)


@functools.lru_cache(maxsize=4)
def _problem(minibatch, data_dir):
    from ..data import load_mnist, split_indices
    from ..problems import mnist_mlp

    if not minibatch:
        p = mnist_mlp(hidden=(HIDDEN,), batch_size=FULL_BATCH, sizes=(FULL_BATCH, 1, 1), data_dir=data_dir)
        full = p.batch(0, 0)
        p = p._replace(name=f"mnist_mlp{HIDDEN}_fullbatch", batch=lambda t, seed: full,
                       objective=lambda w: p.loss(w, full),
                       objective_grad=lambda w: p.value_and_grad(w, full)[1], objective_is_loss=True)
        return p, full
    n_train, n_val, batch_size = MINIBATCH
    p = mnist_mlp(hidden=(HIDDEN,), batch_size=batch_size, sizes=(n_train, n_val, 1), data_dir=data_dir)
    images, labels = load_mnist(p.info["split"], data_dir)
    val = split_indices(images.shape[0], tuple(p.info["sizes"]), p.info["split_seed"])[1]
    return p, (images[val], labels[val])


_PREFIX_CACHE: dict = {}


def case_prefix(case, schedule, data_dir=None) -> np.ndarray:
    """The oracle's J[t, i] = ∂E(w_t)/∂η_i of ``case`` under ``schedule`` (memoised)."""
    from ..oracle import prefix_hypergradients

    schedule = np.asarray(schedule, dtype=float)
    key = (case.name, case.dynamics, tuple(sorted(case.hyperparams.items())), case.minibatch,
           case.seed, data_dir, schedule.tobytes())
    if key not in _PREFIX_CACHE:
        if len(_PREFIX_CACHE) >= 64:
            _PREFIX_CACHE.pop(next(iter(_PREFIX_CACHE)))
        _PREFIX_CACHE[key] = prefix_hypergradients(case.problem(data_dir), case.make_dynamics(),
                                                   schedule, seed=case.seed)
    return _PREFIX_CACHE[key]


def compare_case(case, estimates, schedule, mu, *, rtol, atol, data_dir=None, extra_failure=""):
    """Compare per-step estimates of ``case`` run under ``schedule`` with the exact values."""
    schedule = np.asarray(schedule, dtype=float)
    exact = exact_hypergradients(None, None, schedule, mu=mu,
                                 prefix=case_prefix(case, schedule, data_dir))
    cmp = compare(estimates, exact, schedule, rtol=rtol, atol=atol)
    if not extra_failure and _vacuous(case, schedule):
        extra_failure = ("the learning rate did not change between steps although the case's "
                         "schedule does: the optimizer ignored the learning rate written before "
                         "each step, so this case checks nothing")
    return compared_result(case, cmp, mu, extra_failure)


def _vacuous(case, schedule):
    planned = np.asarray(case.schedule)
    return np.ptp(planned) > 0 and np.ptp(schedule) <= 1e-12 * np.max(np.abs(schedule))


class _Following(NamedTuple):
    t: int          # next step
    inner: Any      # the wrapped rule's state


def follow_schedule(rule, schedule):
    """The rule with η_{t−1} in its state overwritten by ``schedule[t]`` before each step.

    The NumPy counterpart of a torch scheduler writing ``group["lr"]``: a rule whose state
    is a NamedTuple with an ``eta`` field (all hgref rules) then computes
    η_t = η_sched − β·Δη_t, i.e. exactly the schedule when β = 0, and its tangent uses the
    η_t it returns.
    """
    from ..rules import Rule

    schedule = np.asarray(schedule, dtype=float)

    def init(eta0, state):
        inner = rule.init(float(schedule[0]), state)
        if "eta" not in getattr(inner, "_fields", ()):
            raise TypeError(f"rule {rule.name!r}: follow_schedule needs a rule state NamedTuple with "
                            f"an 'eta' field (eta_(t-1)), got {type(inner).__name__}")
        return _Following(0, inner)

    def update(ws, obs):
        inner = ws.inner._replace(eta=float(schedule[ws.t]))
        eta, inner, info = rule.update(inner, obs)
        return eta, _Following(ws.t + 1, inner), info

    return Rule(rule.name, init, update, dict(rule.hyperparams))


def check_rule(make_rule, *, cases=BATTERY, mu=0.0, key="hypergradient", rtol=1e-10, atol=0.0,
               data_dir=None, name=None) -> Report:
    """Run a NumPy rule (:class:`hgref.rules.Rule`) on each case and compare its estimates.

    Args:
      make_rule: ``make_rule(case) -> Rule``; raise :class:`Unsupported` to skip a case. The
        rule runs through :func:`hgref.train.run` under :func:`follow_schedule`, and reports
        its Δη_t as ``info[key]``.
      mu: the rule's discount (0: HD, 1: RTHO), or the name of the info entry holding the
        per-step μ_t (e.g. ``"mu"`` for adaptive MARTHE).
      rtol, atol: per-step tolerance (:func:`hgref.testing.compare`).

    Returns:
      A :class:`Report`; ``report.raise_if_failed()`` or :func:`assert_rule` to assert.

    >>> from hgref import rules
    >>> report = check_rule(lambda case: rules.rtho(0.0), mu=1.0)   # doctest: +SKIP
    """
    with single_threaded():       # the cases are tiny: extra threads only add overhead
        results = [_check_rule_case(make_rule, case, mu, key, rtol, atol, data_dir) for case in cases]
    return Report(name or getattr(make_rule, "__name__", "rule"), tuple(results), mu, rtol, atol)


def _check_rule_case(make_rule, case, mu, key, rtol, atol, data_dir) -> CaseResult:
    from ..train import run

    try:
        rule = make_rule(case)
        tr = run(case.problem(data_dir), case.make_dynamics(), follow_schedule(rule, case.schedule),
                 case.schedule[0], check_int("steps", case.steps, low=1), seed=case.seed,
                 metrics=False)
        if key not in tr.diagnostics:
            raise KeyError(f"rule {rule.name!r} reports no info[{key!r}]; it reports "
                           f"{sorted(tr.diagnostics)}")
        mu_case = tr.diagnostics[mu] if isinstance(mu, str) else mu
        return compare_case(case, tr.diagnostics[key], tr.etas, mu_case, rtol=rtol, atol=atol,
                            data_dir=data_dir)
    except Unsupported as exc:
        return CaseResult(case.name, "unsupported", float("nan"), None, str(exc), None,
                          case.description)
    except MissingDataError:  # the battery's MNIST files are absent: no fault of the rule
        raise
    except Exception as exc:  # noqa: BLE001 - the report names what the rule raised
        return CaseResult(case.name, "error", float("nan"), None, f"{type(exc).__name__}: {exc}",
                          None, case.description)


def assert_rule(make_rule, **kwargs) -> Report:
    """:func:`check_rule`, raising an ``AssertionError`` naming every broken case."""
    return check_rule(make_rule, **kwargs).raise_if_failed()
