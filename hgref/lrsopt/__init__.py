"""LRS-OPT (MARTHE §5): minimise f_T(η) = E(w_T(η)) over schedules η ≥ 0 with the exact
hypergradient of :mod:`hgref.oracle`.

* :func:`lrs_opt` — a fixed minibatch sequence (Beale, Bukin): L-BFGS-B, optionally from the
  best constant of a short grid (``schedule0="best-constant"``) (:mod:`.lbfgs`).
* :func:`lrs_opt_stochastic` — the §5 protocol (fresh minibatches every outer iteration,
  w_0 fixed) with any outer optimizer of :mod:`.outer`; :func:`lrs_opt_pgd` is its projected
  gradient descent (the paper's). :func:`optimize_schedule` is the same loop over any
  ``value_and_grad(schedule, seed)`` callable (the torch bridge uses it) (:mod:`.stochastic`).
* :func:`stationarity` — ‖P∇f_T‖∞, reported by every result (:mod:`.stationarity`).

Results are :class:`scipy.optimize.OptimizeResult` objects (x, fun, jac, nit, status,
success, message, history, grad_norm, stationary).
"""
from .lbfgs import best_constant, lrs_opt
from .outer import OUTERS, Outer, adam, log_adam, make_outer, pgd
from .stationarity import projected_gradient, stationarity
from .stochastic import lrs_opt_pgd, lrs_opt_stochastic, optimize_schedule, outer_seed

__all__ = ["lrs_opt", "best_constant", "lrs_opt_stochastic", "lrs_opt_pgd", "optimize_schedule",
           "outer_seed", "Outer", "OUTERS", "pgd", "adam", "log_adam", "make_outer",
           "projected_gradient", "stationarity"]
