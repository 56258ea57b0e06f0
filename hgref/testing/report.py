"""Per-case results of a battery run (:class:`CaseResult`) and the verdict (:class:`Report`).

Each case gets a status (:data:`STATUSES`) and a diagnosis (:data:`DIAGNOSES`) that separates
"your update is not the declared dynamics" from "your hypergradient is wrong", and names a
shifted estimate, a learning rate not applied as written, or ``group["lr"]`` turned into a
tensor. The verdict states coverage over the 25-case matrix (:data:`hgref.testing.MATRIX`):

* ``FAILED`` — a case failed or the optimizer raised;
* ``PASSED`` — no failure, and for every dynamics the optimizer ran, all five of its matrix cases
  were checked;
* ``INCOMPLETE`` — no failure, but fewer than the matrix cases of the optimizer's own dynamics
  were checked (unsupported or not selected): never printed as a bare PASSED.

A report prints as a table, serialises to JSON (:meth:`Report.to_dict`) and turns into an
``AssertionError`` naming every broken case (:meth:`Report.raise_if_failed`).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from .cases import DYNAMICS, MATRIX
from .exact import Comparison, failure_message

__all__ = ["CaseResult", "Report", "STATUSES", "DIAGNOSES", "compared_result", "failed_result"]

#: ``pass``: every step within tolerance; ``fail``: a step outside it, or the run was not a valid
#: check (diagnosis says why); ``error``: the optimizer raised; ``unsupported``: the factory raised
#: :class:`hgref.testing.Unsupported`.
STATUSES = ("pass", "fail", "error", "unsupported")

DIAGNOSES = {
    "exact": "the estimates equal the reference",
    "wrong_hypergradient": "your hypergradient is wrong",
    "shifted_late": "your estimate is one step late: at step t it equals the exact value of step "
                    "t+1 (computed after the update, at w_{t+1}); report the value at w_t, before "
                    "the step",
    "shifted_early": "your estimate is one step early/stale: at step t it equals the exact value "
                     "of step t-1",
    "wrong_dynamics": "your update is not the declared dynamics",
    "eta_not_applied": "the learning rate applied is neither the one written into group['lr'] "
                       "nor the one group['lr'] holds after the step",
    "per_tensor_eta": "the parameter tensors of one group were stepped with different learning "
                      "rates in one step (is the learning rate updated inside the per-parameter "
                      "loop?)",
    "lr_tensor": "group['lr'] became a torch.Tensor: keep it a Python float (torch convention: "
                 "schedulers, checkpoints and loggers read it; a tensor may also hold a graph)",
    "lr_ignored": "the learning rate did not follow the schedule written into group['lr']: the "
                  "optimizer ignored it, so the case checks nothing",
    "estimate_shape": "the estimate does not have one value per param group",
    "raised": "the optimizer raised",
    "unsupported": "the factory raised Unsupported",
}


class CaseResult(NamedTuple):
    """The outcome of one battery case."""

    case: str                         # case name
    status: str                       # one of STATUSES
    max_rel_error: float              # over all steps (nan if not compared)
    first_bad_step: Optional[int]     # first step outside tolerance (None if none)
    message: str                      # readable details ("" when passed)
    comparison: Optional[Comparison]  # per-step estimates / exact values (worst group; None if not compared)
    description: str = ""             # what the case exercises
    diagnosis: str = ""               # key of DIAGNOSES
    dynamics: str = ""                # the case's dynamics
    matrix: bool = False              # a case of the 25-case matrix

    def to_dict(self) -> dict:
        out = {"case": self.case, "status": self.status, "diagnosis": self.diagnosis,
               "max_rel_error": _json_float(self.max_rel_error), "first_bad_step": self.first_bad_step,
               "message": self.message, "description": self.description, "dynamics": self.dynamics,
               "matrix": self.matrix}
        if self.comparison is not None:
            c = self.comparison
            out.update(schedule=c.schedule.tolist(), estimates=[_json_float(x) for x in c.estimates],
                       exact=c.exact.tolist(), rel_error=[_json_float(x) for x in c.rel_error])
        return out


def _json_float(x):
    x = float(x)
    return x if math.isfinite(x) else str(x)


def _meta(case):
    return dict(description=case.description, dynamics=case.dynamics, matrix=case.matrix)


def failed_result(case, status, diagnosis, message, step=None) -> CaseResult:
    """A result that was not (or not validly) compared: ``fail``/``error``/``unsupported``."""
    head = DIAGNOSES[diagnosis]
    text = message if diagnosis == "unsupported" or message.startswith(head) else f"{head}: {message}"
    return CaseResult(case.name, status, float("nan"), step, text, None, diagnosis=diagnosis, **_meta(case))


def compared_result(case, cmp: Comparison, mu, diagnosis=None, extra="") -> CaseResult:
    """A :class:`CaseResult` from a comparison; ``diagnosis`` overrides the default
    (``exact`` / ``wrong_hypergradient``), ``extra`` is prepended to the message."""
    if diagnosis is None:
        diagnosis = "exact" if cmp.passed else "wrong_hypergradient"
    if diagnosis == "exact":
        return CaseResult(case.name, "pass", cmp.max_rel_error, None, "", cmp, diagnosis=diagnosis, **_meta(case))
    msg = failure_message(cmp, case.name, mu, case.description) if not cmp.passed else ""
    msg = "\n".join(x for x in (f"{DIAGNOSES[diagnosis]}.", extra, msg) if x)
    return CaseResult(case.name, "fail", cmp.max_rel_error, cmp.first_bad_step, msg, cmp,
                      diagnosis=diagnosis, **_meta(case))


class Report(NamedTuple):
    """The results of checking one estimator on a battery of cases."""

    name: str                       # what was checked (e.g. the dotted path)
    results: tuple                  # CaseResult per case, battery order
    mu: object                      # the discount the estimates were compared with
    rtol: float
    atol: float
    mode: str = "declared"          # "declared" (hgref dynamics, exact oracle) or "own"
    objective: str = "validation"   # the declared objective
    reference: str = ""             # how the reference was computed (and its accuracy)

    @property
    def failed(self) -> bool:
        return any(r.status in ("fail", "error") for r in self.results)

    @property
    def failed_cases(self) -> list:
        """Names of the cases that failed or raised."""
        return [r.case for r in self.results if r.status in ("fail", "error")]

    @property
    def coverage(self) -> dict:
        """Per dynamics the optimizer ran (any case not unsupported): ``{dyn: (checked,
        of, missing)}`` over the matrix cases of that dynamics."""
        ran = {r.case: r for r in self.results if r.status != "unsupported"}
        own = [d for d in DYNAMICS if any(r.dynamics == d for r in ran.values())]
        out = {}
        for dyn in own:
            names = [c.name for c in MATRIX if c.dynamics == dyn]
            missing = [n for n in names if n not in ran]
            out[dyn] = (len(names) - len(missing), len(names), missing)
        return out

    @property
    def complete(self) -> bool:
        cov = self.coverage
        return bool(cov) and all(not missing for _, _, missing in cov.values())

    @property
    def verdict(self) -> str:
        """``"FAILED"``, ``"PASSED"`` or ``"INCOMPLETE"`` (module docstring)."""
        if self.failed:
            return "FAILED"
        if self.complete and any(r.status == "pass" for r in self.results):
            return "PASSED"
        return "INCOMPLETE"

    @property
    def passed(self) -> bool:
        """The verdict is PASSED: nothing failed and the matrix of every dynamics run was checked."""
        return self.verdict == "PASSED"

    def result(self, case) -> CaseResult:
        """The :class:`CaseResult` of the case named ``case``."""
        for r in self.results:
            if r.case == case:
                return r
        raise KeyError(f"no case {case!r}; cases: {', '.join(r.case for r in self.results)}")

    def coverage_text(self) -> str:
        n_matrix = sum(r.matrix and r.status != "unsupported" for r in self.results)
        parts = [f"{d} {k}/{n}" for d, (k, n, _) in self.coverage.items()]
        extras = [r for r in self.results if not r.matrix]
        text = f"{n_matrix} of {len(MATRIX)} matrix cases applicable ({', '.join(parts) or 'none'})"
        if extras:
            text += f"; extras {sum(r.status != 'unsupported' for r in extras)} of {len(extras)}"
        return text

    def verdict_text(self) -> str:
        v = self.verdict
        n_pass = sum(r.status == "pass" for r in self.results)
        if v == "FAILED":
            return f"{n_pass}/{len(self.results)} cases passed -- FAILED: {', '.join(self.failed_cases)}"
        if v == "PASSED":
            return f"{n_pass}/{len(self.results)} cases passed -- PASSED ({self.coverage_text()})"
        missing = [f"{d}: {', '.join(m)}" for d, (_, _, m) in self.coverage.items() if m]
        why = ("not checked -- " + "; ".join(missing)) if missing else "no case was checked"
        return f"{n_pass}/{len(self.results)} cases passed -- INCOMPLETE, not a pass: {why}"

    def table(self) -> str:
        """One line per case: name, status, diagnosis, max rel. error, first bad step, description."""
        w = max([len(r.case) for r in self.results] + [4])
        lines = [f"hgref.testing: {self.name} (mode={self.mode}, objective={self.objective}, "
                 f"mu={_mu_text(self.mu)}, rtol={self.rtol:g}, atol={self.atol:g})"]
        if self.reference:
            lines.append(f"reference: {self.reference}")
        lines.append(f"{'case':<{w}}  {'status':<11}  {'diagnosis':<19}  {'max rel.err':>11}  "
                     f"{'first bad':>9}  exercises")
        for r in self.results:
            err = "-" if r.comparison is None else f"{r.max_rel_error:.1e}"
            bad = "-" if r.first_bad_step is None else str(r.first_bad_step)
            lines.append(f"{r.case:<{w}}  {r.status:<11}  {r.diagnosis:<19}  {err:>11}  {bad:>9}  "
                         f"{r.description}")
        lines.append(f"coverage: {self.coverage_text()}")
        lines.append(self.verdict_text())
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def to_dict(self) -> dict:
        mu = self.mu if isinstance(self.mu, (int, float, str)) or self.mu is None else _mu_text(self.mu)
        return {"name": self.name, "verdict": self.verdict, "passed": self.passed,
                "complete": self.complete, "mode": self.mode, "objective": self.objective,
                "reference": self.reference, "mu": mu, "rtol": self.rtol, "atol": self.atol,
                "coverage": {d: {"checked": k, "of": n, "missing": m} for d, (k, n, m) in self.coverage.items()},
                "coverage_text": self.coverage_text(), "failed_cases": self.failed_cases,
                "cases": [r.to_dict() for r in self.results]}

    def details(self) -> str:
        """The table followed by the per-step report of every failed or errored case."""
        parts = [self.table()]
        for r in self.results:
            if r.status in ("fail", "error") or (r.status == "pass" and r.message):
                parts.append(f"--- case {r.case}: {r.status} ({r.diagnosis})\n{r.message}")
        return "\n\n".join(parts)

    def raise_if_failed(self, complete=True):
        """Raise ``AssertionError(self.details())`` if the verdict is FAILED, or INCOMPLETE
        when ``complete`` (the default); return the report otherwise."""
        if self.failed or (complete and not self.passed):
            raise AssertionError(self.details())
        return self


def _mu_text(mu):
    if callable(mu):
        return getattr(mu, "__name__", "per-step")
    if isinstance(mu, str) or np.ndim(mu) == 0:
        return str(mu)
    return "per-step"
