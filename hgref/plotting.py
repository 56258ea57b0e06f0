"""Plot helpers: colour-blind-safe palette (Okabe–Ito), contour plots, saving figures."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["PALETTE", "color", "contour", "save"]

#: Okabe & Ito (2008) colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def color(i):
    return PALETTE[i % len(PALETTE)]


def contour(ax, f, xlim, ylim, n=200, levels=30, log=True):
    """Filled contours of f(w) on a grid (log-spaced levels by default)."""
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    X, Y = np.meshgrid(xs, ys)
    Z = np.array([[float(f(np.array([x, y]))) for x in xs] for y in ys])
    if log:
        Z = np.log10(Z - Z.min() + 1e-3)
    ax.contourf(X, Y, Z, levels=levels, cmap="Greys")
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)


def save(fig, path, formats=("png",)):
    """Save ``fig`` as ``path.<fmt>`` for each format; returns the paths written."""
    import matplotlib.pyplot as plt

    path = Path(path)
    written = []
    for fmt in formats:
        out = path.with_suffix("." + fmt)
        tmp = out.with_name("." + out.name + ".tmp")
        fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
        tmp.replace(out)
        written.append(out)
    plt.close(fig)
    return written
