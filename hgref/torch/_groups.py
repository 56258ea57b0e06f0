"""Argument checks and small tensor helpers of :class:`hgref.torch.HypergradientOptimizer`.

Messages follow torch.optim's ("Invalid learning rate: -1.0") and name the accepted values.
"""
from __future__ import annotations

import math

import torch

RULES = ("constant", "hd", "rtho", "marthe")
TANGENT_RULES = ("rtho", "marthe")
LOPS = ("sgd", "sgdn", "adam")
OBJECTIVES = ("train", "validation")
_HISTORY_KEYS = {"constant": ("lr",), "hd": ("lr", "hypergradient"),
                 "rtho": ("lr", "hypergradient"), "marthe": ("lr", "hypergradient", "mu", "beta")}


def _check_real(name, value, low=0.0, high=None, high_open=False, label=None):
    label = label or name
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Invalid {label}: {value!r}")
    if value < low or (high is not None and (value >= high if high_open else value > high)):
        raise ValueError(f"Invalid {label}: {value}")
    return float(value)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"Invalid {name}: {value!r}; accepted values: {', '.join(map(repr, choices))}")
    return value


def _check_group(g):
    _check_real("lr", g["lr"], label="learning rate")
    _check_real("momentum", g["momentum"], high=1.0, label="momentum value")
    for i, b in enumerate(g["betas"]):
        _check_real("betas", b, high=1.0, high_open=True, label=f"beta parameter at index {i}")
    _check_real("eps", g["eps"], label="epsilon value")
    _check_real("eps_root", g["eps_root"], label="eps_root value")
    _check_real("weight_decay", g["weight_decay"], label="weight_decay value")
    _check_real("dampening", g["dampening"], high=1.0, label="dampening value")
    _check_real("hyper_lr", g["hyper_lr"], label="hyper_lr (hypergradient step size beta)")
    _check_real("lop_momentum", g["lop_momentum"], high=1.0, label="lop_momentum value")
    for i, b in enumerate(g["lop_betas"]):
        _check_real("lop_betas", b, high=1.0, high_open=True, label=f"lop_betas parameter at index {i}")
    _check_real("lop_eps", g["lop_eps"], label="lop_eps value")
    if g["mu"] != "adaptive":
        _check_real("mu", g["mu"], high=1.0, label="mu value (a number in [0, 1] or 'adaptive')")
    _check_real("beta0", g["beta0"], label="beta0 value")
    if not isinstance(g["adapt_beta"], bool):
        raise ValueError(f"Invalid adapt_beta: {g['adapt_beta']!r}; accepted values: True, False")


def _hp(group):
    b1, b2 = group["betas"]
    return {"momentum": group["momentum"], "b1": b1, "b2": b2, "eps": group["eps"],
            "eps_root": group["eps_root"], "weight_decay": group["weight_decay"],
            "dampening": group["dampening"]}


def _axpy_(x, d, neg_eta):
    """x += (−η) d in place. On CPU, reading the 0-d η is free (no device) and ``add_(alpha=)``
    is ~2× faster than broadcasting a 0-d tensor; elsewhere the tensor path avoids a host sync."""
    if x.device.type == "cpu":
        return x.add_(d, alpha=float(neg_eta))
    return x.addcmul_(d, neg_eta)


def _dot(xs, ys, like):
    out = torch.zeros((), dtype=like.dtype, device=like.device)
    for x, y in zip(xs, ys):
        if x is not None and y is not None:
            out = out + torch.dot(x.reshape(-1), y.reshape(-1))
    return out
