"""Online learning-rate rules and fixed schedules (see :mod:`hgref.rules.base`)."""
from .base import Rule
from .schedules import constant, exponential, schedule, sgdr, staircase

__all__ = ["Rule", "constant", "exponential", "schedule", "sgdr", "staircase"]
