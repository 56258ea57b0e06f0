"""The torch bridge: hgref's dynamics and learning-rate rules as ``torch.optim`` optimizers.

A thin, faithful port of the NumPy reference (:mod:`hgref.dynamics`, :mod:`hgref.linearize`,
:mod:`hgref.rules`), proven equal to it in float64 by ``tests/test_torch_*.py``:

* :class:`HypergradientOptimizer` (and the named shortcuts :class:`SGDHD`, :class:`AdamHD`,
  :class:`RTHO`, :class:`MARTHE`): HD (lop SGD / SGDN / Adam), RTHO and MARTHE over SGD,
  heavy-ball, Nesterov and Adam dynamics with weight decay;
* :func:`make_scheduler`: the MARTHE §6 fixed schedules as ``torch.optim.lr_scheduler`` objects;
* :mod:`hgref.torch.models`: the §5 MNIST MLP (hgref's flat weight layout), VGG-11-BN, ResNet-18;
* :func:`schedule_hypergradient` / :func:`lrs_opt`: reverse-mode LRS-OPT (MARTHE §5) in torch
  (:class:`Workspace`: its stored sweep's memory, reused across calls);
* ``python -m hgref.torch.cifar``: the MARTHE §6 CIFAR experiments.

Importing this package requires torch; ``import hgref`` never imports torch.
"""
try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("hgref.torch needs PyTorch: pip install 'hgref[torch]'") from exc

from .lrs_opt import LRSResult, Workspace, lrs_opt, schedule_hypergradient
from .optim import (MARTHE, RTHO, SGDHD, AdamHD, HypergradientOptimizer)
from .schedules import make_scheduler

__all__ = ["HypergradientOptimizer", "SGDHD", "AdamHD", "RTHO", "MARTHE", "make_scheduler",
           "schedule_hypergradient", "lrs_opt", "LRSResult", "Workspace"]
