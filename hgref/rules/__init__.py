"""Online learning-rate rules and fixed schedules (see :mod:`hgref.rules.base`)."""
from .base import Rule
from .decimation import decimate
from .hd import HDState, hd
from .marthe import MartheState, marthe, rtho
from .schedules import constant, exponential, schedule, sgdr, staircase

__all__ = ["Rule", "constant", "exponential", "schedule", "sgdr", "staircase",
           "hd", "HDState", "rtho", "marthe", "MartheState", "decimate"]
