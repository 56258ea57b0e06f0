"""β-decimation (MARTHE, end of §4): start from a high hyper-learning rate and divide it
by ``factor`` until the run does not diverge.

>>> from hgref import problems, dynamics
>>> from hgref.rules import marthe
>>> tr, beta, tried = decimate(lambda b: marthe(b), problems.bukin(), dynamics.sgd(),
...                            0.01, 50, beta_start=1e3)
>>> tr.diverged_at is None and beta == tried[-1][0]
True
"""
from __future__ import annotations

from .._checks import DivergenceError, check_int, check_scalar
from ..train import run

__all__ = ["decimate"]


def decimate(make_rule, problem, dynamics, eta0, steps, *, beta_start, factor=10.0,
             max_tries=12, seed=0, **run_kwargs):
    """Run ``make_rule(β)`` for β = beta_start, beta_start/factor, … until a run stays finite.

    Args:
      make_rule: ``beta -> Rule``.
      problem, dynamics, eta0, steps, seed, run_kwargs: passed to :func:`hgref.train.run`
        (``on_divergence`` is fixed to ``"return"``).
      beta_start: first β tried (> 0).
      factor: divisor between tries (> 1; the paper decimates: 10).
      max_tries: number of β values tried at most.

    Returns:
      ``(trajectory, beta_used, tried)`` with ``tried`` the list of ``(β, diverged_at)``
      in the order tried (the last entry is the β used, with ``None``).

    Raises:
      DivergenceError: every tried β diverged (its ``step`` is the last run's).
    """
    beta = check_scalar("beta_start", beta_start, strict=True)
    factor = check_scalar("factor", factor)
    if factor <= 1:
        raise ValueError(f"factor must be a finite number > 1, got {factor}")
    max_tries = check_int("max_tries", max_tries, low=1)
    if "on_divergence" in run_kwargs:
        raise TypeError("decimate sets on_divergence='return' itself; do not pass it")
    tried = []
    for _ in range(max_tries):
        tr = run(problem, dynamics, make_rule(beta), eta0, steps, seed=seed,
                 on_divergence="return", **run_kwargs)
        tried.append((beta, tr.diverged_at))
        if tr.diverged_at is None:
            return tr, beta, tried
        beta /= factor
    raise DivergenceError(tried[-1][1], "run for every beta tried",
                          "tried (beta, diverged_at): " + ", ".join(f"({b:g}, {s})" for b, s in tried))
