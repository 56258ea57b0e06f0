"""The MARTHE §6 fixed schedules as built-in ``torch.optim.lr_scheduler`` objects.

Each hgref schedule (:mod:`hgref.rules.schedules`, η_t = η_0·factor(t), t = optimizer steps)
is a torch scheduler that is the same function of t when ``scheduler.step()`` is called once
after every ``optimizer.step()``:

====================================  ===================================================
hgref                                 torch
====================================  ===================================================
``exponential(gamma, every=1)``       ``ExponentialLR(gamma)``
``exponential(gamma, every=k)``       ``StepLR(step_size=k, gamma)``
``staircase(every, factor)``          ``StepLR(step_size=every, gamma=factor)``
``sgdr(T0, Tmult, eta_min)``          ``CosineAnnealingWarmRestarts(T0, Tmult, eta_min·η_0)``
``constant()``                        ``ConstantLR(factor=1)``
====================================  ===================================================

(torch's ``eta_min`` is absolute, hgref's a fraction of η_0; ExponentialLR and StepLR
multiply recursively, so they agree with γ^k to rounding: tests/test_torch_schedules.py.)
"""
from __future__ import annotations

from torch.optim import lr_scheduler

from ..rules import schedules as _schedules

__all__ = ["make_scheduler", "SCHEDULES"]

SCHEDULES = ("constant", "exponential", "staircase", "sgdr")


def make_scheduler(optimizer, schedule, **hyperparams):
    """A torch scheduler equal to an hgref fixed schedule, stepped once per optimizer step.

    Args:
      optimizer: any ``torch.optim.Optimizer``; η_0 is each group's current ``lr``.
      schedule: a rule from :mod:`hgref.rules.schedules` (``exponential(0.99, every=391)``),
        or its name with the factory's keyword arguments in ``hyperparams``.

    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> type(make_scheduler(opt, "staircase", every=60)).__name__
    'StepLR'
    """
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(f"Invalid schedule: {schedule!r}; accepted values: "
                             f"{', '.join(map(repr, SCHEDULES))}")
        schedule = getattr(_schedules, schedule)(**hyperparams)
    elif hyperparams:
        raise ValueError("hyperparams: give them to the hgref schedule factory, not with a Rule")
    name, hp = getattr(schedule, "name", None), getattr(schedule, "hyperparams", {})
    if name == "constant":
        return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if name == "exponential":
        if hp["every"] == 1:
            return lr_scheduler.ExponentialLR(optimizer, gamma=hp["gamma"])
        return lr_scheduler.StepLR(optimizer, step_size=hp["every"], gamma=hp["gamma"])
    if name == "staircase":
        return lr_scheduler.StepLR(optimizer, step_size=hp["every"], gamma=hp["decay"])
    if name == "sgdr":
        eta0 = [g["lr"] for g in optimizer.param_groups]
        if len(set(eta0)) > 1 and hp["eta_min"]:
            raise ValueError("schedule: sgdr with eta_min > 0 needs one lr for all param groups "
                             "(torch's eta_min is absolute)")
        return lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=hp["T0"], T_mult=hp["Tmult"],
                                                        eta_min=hp["eta_min"] * eta0[0])
    raise ValueError(f"Invalid schedule: {schedule!r}; accepted: an hgref.rules.schedules rule "
                     f"or one of {', '.join(map(repr, SCHEDULES))}")
