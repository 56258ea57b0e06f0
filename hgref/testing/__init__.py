"""Check your own learning-rate hypergradient: the right verdict whatever its conventions.

Assertion helpers in the style of :mod:`numpy.testing`:

* :func:`assert_hypergradient_close` — per-step estimates Δη_t of any NumPy code against the
  exact discounted sums Σ_{i<t} μ^{t−1−i} ∂Obj_t(w_t)/∂η_i (:func:`exact_hypergradients`);
* :func:`check_rule` / :func:`assert_rule` — an :class:`hgref.rules.Rule` on the :data:`BATTERY`;
* :func:`check_torch_optimizer` / :func:`assert_torch_optimizer` — a ``torch.optim`` optimizer
  on the battery through a :class:`TorchAdapter` (torch is imported on first use:
  ``import hgref.testing`` works without torch), in ``mode="declared"`` (it runs an hgref
  dynamics: exact oracle, and a separate verdict when its update is not that dynamics) or
  ``mode="own"`` (no declaration: the reference is computed through the optimizer itself);
* ``objective=`` declares what Δη_t differentiates: E (default), the minibatch loss L_t, L_t plus
  coupled weight decay, or a callable (:mod:`hgref.testing.objectives`);
* ``hgref check module.factory`` — the same from the command line.

The battery (:mod:`hgref.testing.cases`) is a matrix, five dynamics × five columns, plus extras;
a report's verdict is PASSED, FAILED or INCOMPLETE with the coverage it reached
(:mod:`hgref.testing.report`), and each failure carries a diagnosis
(:mod:`hgref.testing.diagnose`).

>>> from hgref import problems, dynamics, rules, run
>>> from hgref.testing import assert_hypergradient_close
>>> p, dyn = problems.beale(), dynamics.sgd()
>>> tr = run(p, dyn, rules.rtho(0.0), 0.01, 6)
>>> assert_hypergradient_close(tr.diagnostics["hypergradient"], p, dyn, tr.etas, mu=1.0)
"""
from .adapters import TorchAdapter, attribute, from_lr_change, hgref_adapter, only, torch_kwargs
from .battery import assert_rule, case_prefix, check_rule, follow_schedule
from .cases import BATTERY, COLUMNS, DYNAMICS, EXTRAS, MATRIX, Case, Unsupported, get_cases
from .exact import (Comparison, assert_hypergradient_close, compare, discount_matrix,
                    exact_hypergradients, format_steps)
from .objectives import OBJECTIVES, Objective
from .reference import case_reference, group_prefix
from .report import DIAGNOSES, CaseResult, Report
from .session import default_estimate, default_step
from .torch_checks import MODES, assert_torch_optimizer, check_torch_optimizer

__all__ = ["exact_hypergradients", "assert_hypergradient_close", "compare", "Comparison",
           "discount_matrix", "format_steps", "BATTERY", "MATRIX", "EXTRAS", "COLUMNS", "DYNAMICS",
           "Case", "Unsupported", "get_cases", "follow_schedule", "check_rule", "assert_rule",
           "case_prefix", "case_reference", "group_prefix", "CaseResult", "Report", "DIAGNOSES",
           "Objective", "OBJECTIVES", "TorchAdapter", "check_torch_optimizer",
           "assert_torch_optimizer", "MODES", "default_estimate", "default_step", "hgref_adapter",
           "torch_kwargs", "only", "from_lr_change", "attribute"]
