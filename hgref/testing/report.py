"""Per-case results of a battery run: :class:`CaseResult`, :class:`Report`.

A report prints as a table (one line per case: status, max relative error, first bad
step, what the case exercises), serialises to JSON (:meth:`Report.to_dict`) and turns
into an ``AssertionError`` that names every broken case (:meth:`Report.raise_if_failed`).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from .exact import Comparison, failure_message

__all__ = ["CaseResult", "Report", "STATUSES"]

#: ``pass``: every step within tolerance; ``fail``: a step outside it, or the run was not
#: a valid check (η did not follow a changing schedule, the weights did not follow the
#: case's dynamics); ``error``: the optimizer raised; ``unsupported``: the factory raised
#: :class:`hgref.testing.Unsupported` (e.g. an SGD-only optimizer on an Adam case).
STATUSES = ("pass", "fail", "error", "unsupported")


class CaseResult(NamedTuple):
    """The outcome of one battery case."""

    case: str                         # case name
    status: str                       # one of STATUSES
    max_rel_error: float              # over all steps (nan if not compared)
    first_bad_step: Optional[int]     # first step outside tolerance (None if none)
    message: str                      # readable details ("" when passed)
    comparison: Optional[Comparison]  # per-step estimates / exact values (None if not compared)
    description: str = ""             # what the case exercises

    def to_dict(self) -> dict:
        out = {"case": self.case, "status": self.status,
               "max_rel_error": _json_float(self.max_rel_error),
               "first_bad_step": self.first_bad_step, "message": self.message,
               "description": self.description}
        if self.comparison is not None:
            c = self.comparison
            out.update(schedule=c.schedule.tolist(), estimates=[_json_float(x) for x in c.estimates],
                       exact=c.exact.tolist(), rel_error=[_json_float(x) for x in c.rel_error])
        return out


def _json_float(x):
    x = float(x)
    return x if math.isfinite(x) else str(x)


class Report(NamedTuple):
    """The results of checking one estimator on a battery of cases."""

    name: str                       # what was checked (e.g. the dotted path)
    results: tuple                  # CaseResult per case, battery order
    mu: object                      # the discount the estimates were compared with
    rtol: float
    atol: float

    @property
    def passed(self) -> bool:
        """No case failed or errored, and at least one case was checked."""
        statuses = [r.status for r in self.results]
        return "pass" in statuses and not any(s in ("fail", "error") for s in statuses)

    @property
    def failed_cases(self) -> list:
        """Names of the cases that failed or raised."""
        return [r.case for r in self.results if r.status in ("fail", "error")]

    def result(self, case) -> CaseResult:
        """The :class:`CaseResult` of the case named ``case``."""
        for r in self.results:
            if r.case == case:
                return r
        raise KeyError(f"no case {case!r}; cases: {', '.join(r.case for r in self.results)}")

    def table(self) -> str:
        """One line per case: name, status, max rel. error, first bad step, description."""
        w = max([len(r.case) for r in self.results] + [4])
        lines = [f"hgref.testing: {self.name} (mu={_mu_text(self.mu)}, rtol={self.rtol:g}, atol={self.atol:g})",
                 f"{'case':<{w}}  {'status':<11}  {'max rel.err':>11}  {'first bad':>9}  exercises"]
        for r in self.results:
            err = "-" if r.comparison is None else f"{r.max_rel_error:.1e}"
            bad = "-" if r.first_bad_step is None else str(r.first_bad_step)
            lines.append(f"{r.case:<{w}}  {r.status:<11}  {err:>11}  {bad:>9}  {r.description}")
        n_pass = sum(r.status == "pass" for r in self.results)
        verdict = "PASSED" if self.passed else "FAILED: " + ", ".join(self.failed_cases or ["no case checked"])
        lines.append(f"{n_pass}/{len(self.results)} cases passed -- {verdict}")
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def to_dict(self) -> dict:
        mu = self.mu if isinstance(self.mu, (int, float, str)) or self.mu is None else _mu_text(self.mu)
        return {"name": self.name, "passed": self.passed, "mu": mu, "rtol": self.rtol,
                "atol": self.atol, "failed_cases": self.failed_cases,
                "cases": [r.to_dict() for r in self.results]}

    def details(self) -> str:
        """The table followed by the per-step report of every failed or errored case."""
        parts = [self.table()]
        for r in self.results:
            if r.status in ("fail", "error"):
                parts.append(f"--- case {r.case}: {r.status}\n{r.message}")
        return "\n\n".join(parts)

    def raise_if_failed(self):
        """Raise ``AssertionError(self.details())`` unless :attr:`passed`."""
        if not self.passed:
            raise AssertionError(self.details())
        return self


def _mu_text(mu):
    if callable(mu):
        return getattr(mu, "__name__", "per-step")
    if isinstance(mu, str) or np.ndim(mu) == 0:
        return str(mu)
    return "per-step"


def compared_result(case, cmp: Comparison, mu, extra_failure="") -> CaseResult:
    """A :class:`CaseResult` from a comparison (``extra_failure``: a reason the run is not
    a valid check although the values may agree)."""
    hint = case.description
    if cmp.passed and not extra_failure:
        return CaseResult(case.name, "pass", cmp.max_rel_error, None, "", cmp, hint)
    msg = failure_message(cmp, case.name, mu, hint) if not cmp.passed else ""
    if extra_failure:
        msg = f"{extra_failure}\n{msg}".strip()
    return CaseResult(case.name, "fail", cmp.max_rel_error, cmp.first_bad_step, msg, cmp, hint)
