"""One divergence rule for every run of an experiment (online rules, LRS-OPT, torch runs).

A run is flagged at the first step where any of these holds (issue 20; the step and the
reason are recorded, summaries count flagged seeds per point):

1. a non-finite loss, learning rate or weight (the loop stopped there: ``diverged_at``);
2. a runaway learning rate, |η_t| > ``ETA_BOUND`` = 1e3. Evidence (MARTHE §5, 784-50-50-10):
   good schedules stay below 1 (LRS-OPT and the online methods at their best β run at
   0.05–0.4), while RTHO at β = 1e-2 reaches η ≈ 5e58 with a *finite* loss and 10 %
   accuracy, and LRS-OPT with a plain step of 1.0 throws η to 1e9 on its first step; any
   bound between 1e1 and 1e9 separates them, 1e3 leaves room for other problems;
3. the loss stays above its start: the mean of the last ``window`` losses (default a
   tenth of the run, at least 1) exceeds the first loss L_0 — the run ended worse than it
   began (for LRS-OPT's outer loop: f_T above f_T(η⁰)). Flagged at the start of that window.

Plain sequences in, a JSON-able dict out, so torch runs use it unchanged.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["ETA_BOUND", "divergence_flag"]

ETA_BOUND = 1e3


def divergence_flag(etas, losses, *, diverged_at=None, what=None, eta_bound=ETA_BOUND, window=None):
    """``{"step": t, "reason": text}`` of the first violation of the rule, or None.

    Args:
      etas: η_t per step (shape (T,); for a per-parameter-group run, the largest |η|).
      losses: the loss per step (minibatch loss L_t(w_t); LRS-OPT's outer loop: f_T(η_k)).
      diverged_at, what: the step and quantity of a non-finite value (the loop stopped there).
      eta_bound: the runaway bound on |η_t|.
      window: number of final losses averaged for rule 3.

    >>> divergence_flag([0.1, 0.2, 5e3], [2.3, 1.9, 1.5])
    {'step': 2, 'reason': '|eta| = 5e+03 > 1e+03'}
    >>> divergence_flag([0.1] * 4, [2.3, 2.0, 2.5, 2.6], window=2)
    {'step': 2, 'reason': 'loss above its start: mean of the last 2 = 2.55 > 2.3'}
    >>> divergence_flag([0.1] * 3, [2.3, 1.0, 0.5]) is None
    True
    """
    etas = np.asarray(etas, dtype=float)
    losses = np.asarray(losses, dtype=float)
    found = []
    if diverged_at is not None:
        found.append((int(diverged_at), f"non-finite {what or 'value'}"))
    bad = np.flatnonzero(~np.isfinite(etas) | (np.abs(np.nan_to_num(etas, nan=np.inf)) > eta_bound))
    if bad.size:
        t = int(bad[0])
        found.append((t, f"|eta| = {abs(etas[t]):.0e} > {eta_bound:.0e}" if math.isfinite(etas[t])
                      else "non-finite eta"))
    nonfinite = np.flatnonzero(~np.isfinite(losses))
    if nonfinite.size:
        found.append((int(nonfinite[0]), "non-finite loss"))
    elif losses.size:
        w = window or max(1, losses.size // 10)
        w = min(int(w), losses.size)
        tail = float(losses[-w:].mean())
        if tail > losses[0]:
            found.append((losses.size - w, f"loss above its start: mean of the last {w} = {tail:.3g} "
                                           f"> {losses[0]:.3g}"))
    if not found:
        return None
    step, reason = min(found, key=lambda f: f[0])
    return {"step": step, "reason": reason}
