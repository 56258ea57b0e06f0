"""Argument validation shared by the public API.

Every check raises ``ValueError`` (or ``TypeError``) with a message that names the
argument, the value received and the accepted values, e.g.
``ValueError("eta0 must be a finite number >= 0, got -0.1")``.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "check_scalar",
    "check_unit_interval",
    "check_choice",
    "check_int",
    "check_vector",
    "check_schedule",
    "DivergenceError",
]


def check_scalar(name, value, *, low=0.0, strict=False, allow_inf=False):
    """Return ``float(value)`` if it is a real number >= ``low`` (> if ``strict``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if low is not None and (value < low or (strict and value == low)):
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {rel} {low}, got {value}")
    return value


def check_unit_interval(name, value):
    """Return ``float(value)`` if it lies in [0, 1]."""
    value = check_scalar(name, value)
    if value > 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``; otherwise list the accepted values."""
    if value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; accepted values: {accepted}")
    return value


def check_int(name, value, *, low=0):
    """Return ``int(value)`` if it is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    return int(value)


def check_vector(name, value, *, size=None):
    """Return ``value`` as a finite float64 vector, of length ``size`` if given."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a 1-d array of real numbers, got {type(value).__name__}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array, got shape {arr.shape}")
    if size is not None and arr.shape[0] != size:
        raise ValueError(f"{name} must have length {size}, got length {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite numbers")
    return arr


def check_schedule(value, *, size=None, name="schedule"):
    """Return a learning-rate schedule as a float64 vector: non-empty, finite, >= 0."""
    arr = check_vector(name, value, size=size)
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if np.any(arr < 0):
        first = int(np.argmax(arr < 0))
        raise ValueError(f"{name} must be >= 0 everywhere; entry {first} is {arr[first]}")
    return arr


class DivergenceError(FloatingPointError):
    """A run produced a non-finite loss, weight or learning rate.

    Attributes:
      step: the step t at which the non-finite value appeared.
      what: which quantity was non-finite (``"loss"``, ``"weights"``, ``"eta"``, ...).
    """

    def __init__(self, step, what, detail=""):
        self.step = int(step)
        self.what = what
        msg = f"run diverged at step {self.step}: non-finite {what}"
        super().__init__(msg + (f" ({detail})" if detail else ""))
