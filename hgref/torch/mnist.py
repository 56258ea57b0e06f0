"""The MARTHE §5 MNIST problem in torch, identical to :func:`hgref.problems.mnist_mlp`.

:func:`mnist_torch` turns a NumPy MNIST :class:`~hgref.problems.Problem` into torch pieces
with the same data subsets, minibatch sequence and initial weights, so a torch run and
:func:`hgref.train.run` see exactly the same numbers.

>>> from hgref.problems import mnist_mlp
>>> tp = mnist_torch(mnist_mlp(hidden=(16,)))
>>> model = tp.model(); X, y = tp.batch(0, seed=0)
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from ..data import load_mnist, split_indices
from .models import MLP

__all__ = ["TorchMNIST", "mnist_torch"]


class TorchMNIST(NamedTuple):
    """Torch view of an MNIST problem (all tensors in ``dtype`` on ``device``)."""

    problem: object                 # the NumPy Problem it mirrors
    model: Callable                 # () -> MLP holding w0
    batch: Callable                 # (t, seed) -> (X (B, 784), y (B,)) of step t
    X_val: torch.Tensor             # shape=(n_val, 784)
    y_val: torch.Tensor             # shape=(n_val,)
    l2: float                       # L2 term (l2/2)‖w‖² of the training loss

    def loss(self, model, X, y):
        """L_t: mean cross-entropy (+ (l2/2)‖w‖² as in the NumPy problem)."""
        value = F.cross_entropy(model(X), y)
        if self.l2:
            value = value + 0.5 * self.l2 * sum((p * p).sum() for p in model.parameters())
        return value

    def objective(self, model):
        """E: mean cross-entropy on the whole validation subset."""
        return F.cross_entropy(model(self.X_val), self.y_val)


def mnist_torch(problem, dtype=torch.float64, device="cpu", data_dir=None):
    """Torch pieces of a :func:`hgref.problems.mnist_mlp` / ``mnist_logreg`` problem."""
    info = problem.info
    if "layers" not in info:
        raise ValueError(f"problem must come from hgref.problems.mnist_mlp, got {problem.name!r}")
    images, labels = load_mnist(info["split"], data_dir)
    idx = split_indices(images.shape[0], tuple(info["sizes"]), info["split_seed"])
    X_val = torch.as_tensor(images[idx[1]], dtype=dtype, device=device)
    y_val = torch.as_tensor(labels[idx[1]], dtype=torch.int64, device=device)
    w0 = np.array(problem.w0)            # writable copy for torch.as_tensor

    def model():
        return MLP(info["layers"], init="zeros", dtype=dtype, device=device).load_flat(
            torch.as_tensor(w0, dtype=dtype, device=device))

    def batch(t, seed):
        X, y = problem.batch(t, seed)
        return (torch.as_tensor(X, dtype=dtype, device=device),
                torch.as_tensor(y, dtype=torch.int64, device=device))

    return TorchMNIST(problem, model, batch, X_val, y_val, float(info["l2"]))
