"""Figure helpers shared by the experiments (headless Matplotlib, spread bands)."""
from __future__ import annotations

import numpy as np

__all__ = ["pyplot", "mean_sd"]


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def mean_sd(values):
    """(mean, sample standard deviation) of the finite values; (nan, nan) if none."""
    arr = np.array([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0
