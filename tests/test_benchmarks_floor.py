"""benchmarks/torch_floor.py measures what it says: the replayed GEMMs are the fused pass's.

The floor rows of ``benchmarks/run_all.py`` (issue 19) compare the fused tangent step with
its GEMMs alone; these tests record every matrix product (shape m×k·k×n) that
:func:`hgref.torch.fused.tangent_pass` and :func:`hgref.torch.fused.grad` run and check that
:func:`torch_floor.gemm_replay` runs the same ones, and that :func:`torch_floor.flop_ratio` is
their flop ratio.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import _torch_helpers  # noqa: F401  (one torch thread)
from hgref.torch.fused import grad, tangent_pass

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from torch_floor import flop_ratio, gemm_replay  # noqa: E402

WIDTHS, B = (13, 7, 6, 5, 4), 9
_OPERANDS = {"mm": (0, 1), "matmul": (0, 1), "__matmul__": (0, 1), "addmm": (1, 2), "addmm_": (1, 2)}


class _Products(TorchFunctionMode):
    """Records (m, k, n) of every matrix product run inside the mode."""

    def __init__(self):
        super().__init__()
        self.shapes = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in _OPERANDS:
            i, j = _OPERANDS[name]
            (m, k), (_, n) = args[i].shape, args[j].shape
            self.shapes[(m, k, n)] += 1
        return func(*args, **(kwargs or {}))


def _recorded(fn):
    with _Products() as rec:
        fn()
    return rec.shapes


def _flops(shapes):
    return sum(2 * m * k * n * c for (m, k, n), c in shapes.items())


def _network():
    g = torch.Generator().manual_seed(0)
    params, vecs = [], []
    for i, o in zip(WIDTHS[:-1], WIDTHS[1:]):
        params += [torch.randn(i, o, generator=g, dtype=torch.float64), torch.randn(o, generator=g, dtype=torch.float64)]
        vecs += [torch.randn(i, o, generator=g, dtype=torch.float64), torch.randn(o, generator=g, dtype=torch.float64)]
    X = torch.randn(B, WIDTHS[0], generator=g, dtype=torch.float64)
    return params, vecs, X, torch.randint(0, WIDTHS[-1], (B,), generator=g)


def test_replay_runs_the_products_of_the_fused_pass_and_of_a_gradient():
    params, vecs, X, y = _network()
    fused_pass = _recorded(lambda: tangent_pass(params, X, y, vecs, lambda loss, dloss: (-0.1, 0.9)))
    gradient = _recorded(lambda: grad(params, X, y))
    fused, sgd = gemm_replay(WIDTHS, B, torch.float64)
    assert _recorded(fused) == fused_pass
    assert _recorded(sgd) == gradient


def test_flop_ratio_is_the_recorded_flop_ratio():
    params, vecs, X, y = _network()
    fused_pass = _recorded(lambda: tangent_pass(params, X, y, vecs, lambda loss, dloss: (-0.1, 0.9)))
    gradient = _recorded(lambda: grad(params, X, y))
    assert flop_ratio(WIDTHS) == pytest.approx(_flops(fused_pass) / _flops(gradient), rel=1e-14)
    assert flop_ratio((784, 500, 500, 500, 10)) == pytest.approx(6113 / 2299, rel=1e-14)
