"""The one training loop: every (problem, dynamics, rule) triple runs through :func:`run`.

At step t the loop shows the rule an :class:`Observation` of w_t (lazy and cached: the
gradient, ∇E, and the tangent products are computed once, only if asked for), the rule
returns η_t, and the loop applies ``w_{t+1} = Φ_t(w_t, η_t)`` from the cached step
quantities — so a rule that needs A_t Z_t gets the gradient from the same
forward-over-reverse pass (MARTHE Algorithm 1, one JVP per step).
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from ._checks import DivergenceError, check_choice, check_int, check_scalar
from ._threads import library_call
from .linearize import Step, Tangent, advance, evaluate, linearize

__all__ = ["Observation", "Trajectory", "run"]


class Observation:
    """What a rule may look at when choosing η_t (all lazy and cached).

    Attributes:
      t: the step index.
      state: the dynamics state x_t (``state.w`` are the weights w_t).
      batch: the minibatch of step t.
      prev_direction: d_{t−1} (so ``∂w_t/∂η_{t−1} = −d_{t−1}``), ``None`` at t = 0.
    """

    def __init__(self, t, state, batch, problem, dynamics, prev_direction):
        self.t, self.state, self.batch = t, state, batch
        self.problem, self.dynamics = problem, dynamics
        self.prev_direction = prev_direction
        self._step: Optional[Step] = None
        self._objective_grad = None

    @property
    def w(self) -> np.ndarray:
        return self.state.w

    def step(self) -> Step:
        """Loss, gradient ∇L_t(w_t), direction d_t and new buffers (computed once)."""
        if self._step is None:
            self._step = evaluate(self.problem, self.dynamics, self.state, self.batch)
        return self._step

    def grad(self) -> np.ndarray:
        """∇L_t(w_t), without weight decay."""
        return self.step().grad

    def objective_grad(self) -> np.ndarray:
        """∇E(w_t); the training gradient itself when E = L (toy problems)."""
        if self._objective_grad is None:
            if self.problem.objective_is_loss:
                self._objective_grad = self.grad()
            else:
                self._objective_grad = self.problem.objective_grad(self.state.w)
        return self._objective_grad

    def linearize(self, z, problem=None) -> tuple[Step, Tangent]:
        """Step quantities and the η-free part of A_t z (see :mod:`hgref.linearize`).

        ``problem``: a surrogate with the same loss and gradient whose Hessian-vector
        products differ (e.g. clipped, as in the released MARTHE code); default: the run's.
        """
        step, tangent = linearize(problem or self.problem, self.dynamics, self.state, self.batch, z)
        self._step = step
        return step, tangent


class Trajectory(NamedTuple):
    """Record of one run (arrays cover the steps actually taken)."""

    etas: np.ndarray          # shape=(T,) η_t used at step t
    losses: np.ndarray        # shape=(T,) L_t(w_t), the minibatch loss before step t
    objective: float          # E(w_T) (nan if the run diverged)
    eval_steps: np.ndarray    # shape=(k,) steps at which E was evaluated
    objectives: np.ndarray    # shape=(k,) E(w_t) at those steps
    state: Any                # final dynamics state x_T
    rule_state: Any           # final rule state
    diagnostics: dict         # name -> shape=(T,) per-step values reported by the rule
    diverged_at: Optional[int]  # step of divergence, None if finite throughout
    metrics: dict             # problem.metrics(w_T) ({} if diverged)


def _finite(x) -> bool:
    return bool(np.all(np.isfinite(x)))


@library_call
def run(problem, dynamics, rule, eta0, steps, seed=0, *, eval_every=None,
        on_divergence="raise", callback: Callable | None = None, progress=False,
        metrics=True):
    """Train ``problem`` with ``dynamics`` for ``steps`` steps, η chosen by ``rule``.

    Args:
      problem: a :class:`hgref.problems.Problem`.
      dynamics: a :class:`hgref.dynamics.Dynamics`.
      rule: a :class:`hgref.rules.Rule` (``init(eta0, state)``, ``update(rstate, obs)``).
      eta0: the initial learning rate η_0 (>= 0).
      steps: number of steps T.
      seed: fixes the minibatch sequence ``problem.batch(t, seed)``.
      eval_every: also record E(w_t) every this many steps (and at t = T).
      on_divergence: ``"raise"`` a :class:`DivergenceError` naming the step, or
        ``"return"`` the trajectory up to that step with ``diverged_at`` set.
      callback: ``callback(t, state, eta, info)`` after each step; return True to stop.
      progress: show a tqdm progress bar.
      metrics: evaluate ``problem.metrics(w_T)`` at the end (e.g. full-split accuracies).

    Returns:
      A :class:`Trajectory`.

    >>> from hgref import problems, dynamics, rules
    >>> tr = run(problems.beale(), dynamics.sgd(), rules.constant(), 0.01, 10)
    >>> tr.etas.shape, tr.diverged_at
    ((10,), None)
    """
    eta0 = check_scalar("eta0", eta0)
    steps = check_int("steps", steps, low=1)
    check_int("seed", seed, low=0)
    check_choice("on_divergence", on_divergence, ("raise", "return"))
    if eval_every is not None:
        check_int("eval_every", eval_every, low=1)

    state = dynamics.init(problem.w0)
    rstate = rule.init(eta0, state)
    etas, losses, infos = [], [], []
    eval_steps, objectives = [], []
    prev_direction, diverged_at = None, None
    iterator = range(steps)
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc=f"{problem.name}/{dynamics.name}/{rule.name}", leave=False)

    for t in iterator:
        if eval_every and t % eval_every == 0:
            eval_steps.append(t)
            with _quiet():
                objectives.append(float(problem.objective(state.w)))
        obs = Observation(t, state, problem.batch(t, seed), problem, dynamics, prev_direction)
        with _quiet():
            eta, new_rstate, info = rule.update(rstate, obs)
            step = obs.step()
        eta = float(eta)
        bad = None
        if not math.isfinite(step.loss):
            bad = "loss"
        elif not math.isfinite(eta) or eta < 0:
            bad = "eta"
        if bad is None:
            with _quiet():
                new_state = advance(state, step, eta)
            if not _finite(new_state.w):
                bad = "weights"
        if bad is not None:
            diverged_at = t
            if on_divergence == "raise":
                raise DivergenceError(t, bad, f"{problem.name}/{dynamics.name}/{rule.name}, eta={eta!r}")
            break
        etas.append(eta)
        losses.append(step.loss)
        infos.append(info)
        state, rstate, prev_direction = new_state, new_rstate, step.direction
        if callback is not None and callback(t, state, eta, info):
            break

    if diverged_at is None:
        with _quiet():
            objective = float(problem.objective(state.w))
        if not math.isfinite(objective):
            diverged_at = len(etas)
            if on_divergence == "raise":
                raise DivergenceError(diverged_at, "objective", problem.name)
        elif eval_every:
            eval_steps.append(len(etas))
            objectives.append(objective)
    if diverged_at is not None:
        objective = float("nan")
    keys = sorted({k for info in infos for k in info})
    diagnostics = {k: np.array([info.get(k, np.nan) for info in infos], dtype=float) for k in keys}
    return Trajectory(
        etas=np.array(etas, dtype=float), losses=np.array(losses, dtype=float),
        objective=objective, eval_steps=np.array(eval_steps, dtype=int),
        objectives=np.array(objectives, dtype=float), state=state, rule_state=rstate,
        diagnostics=diagnostics, diverged_at=diverged_at,
        metrics=_metrics(problem, state.w) if metrics and diverged_at is None else {},
    )


def _quiet():
    """Overflow and invalid values are not warnings here: every value computed under it is
    checked (loss, η, weights, objective) and a non-finite one is reported as divergence."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def _metrics(problem, w):
    with _quiet():
        return problem.metrics(w)
