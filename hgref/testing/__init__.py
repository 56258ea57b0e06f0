"""Check your own learning-rate hypergradient against hgref's exact oracle.

Assertion helpers in the style of :mod:`numpy.testing`:

* :func:`assert_hypergradient_close` — per-step estimates Δη_t of any NumPy code against the
  exact discounted sums Σ_{i<t} μ^{t−1−i} ∂E(w_t)/∂η_i (:func:`exact_hypergradients`);
* :func:`check_rule` / :func:`assert_rule` — an :class:`hgref.rules.Rule` on the :data:`BATTERY`;
* :func:`check_torch_optimizer` / :func:`assert_torch_optimizer` — a ``torch.optim`` optimizer
  on the battery through the :class:`TorchAdapter` protocol (torch is imported on first use:
  ``import hgref.testing`` works without torch);
* ``hgref check module.factory`` — the same from the command line.

>>> from hgref import problems, dynamics, rules, run
>>> from hgref.testing import assert_hypergradient_close
>>> p, dyn = problems.beale(), dynamics.sgd()
>>> tr = run(p, dyn, rules.rtho(0.0), 0.01, 6)
>>> assert_hypergradient_close(tr.diagnostics["hypergradient"], p, dyn, tr.etas, mu=1.0)
"""
from .battery import (BATTERY, Case, Unsupported, assert_rule, case_prefix, check_rule,
                      follow_schedule, get_cases)
from .exact import (Comparison, assert_hypergradient_close, compare, discount_matrix,
                    exact_hypergradients, format_steps)
from .report import CaseResult, Report
from .torch_checks import (TorchAdapter, assert_torch_optimizer, check_torch_optimizer,
                           default_estimate, default_step, hgref_adapter)

__all__ = ["exact_hypergradients", "assert_hypergradient_close", "compare", "Comparison",
           "discount_matrix", "format_steps", "BATTERY", "Case", "Unsupported", "get_cases",
           "follow_schedule", "check_rule", "assert_rule", "case_prefix", "CaseResult", "Report",
           "TorchAdapter", "check_torch_optimizer", "assert_torch_optimizer", "default_estimate",
           "default_step", "hgref_adapter"]
