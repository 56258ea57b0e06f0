"""hgref — reference library for learning-rate hypergradients.

Modules: :mod:`hgref.problems` (L, E), :mod:`hgref.dynamics` (Φ), :mod:`hgref.rules`
(online rules), :mod:`hgref.train` (the one loop), :mod:`hgref.linearize` (A_t, B_t).
"""
from . import data, dynamics, linearize, problems, rules, train
from ._checks import DivergenceError
from ._threads import get_threads, set_threads
from .train import Trajectory, run

__version__ = "0.1.0"

__all__ = ["data", "dynamics", "linearize", "problems", "rules", "train", "run", "Trajectory",
           "DivergenceError", "set_threads", "get_threads", "__version__"]
