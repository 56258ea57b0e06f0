"""The dynamics Φ of :mod:`hgref.dynamics` on torch tensors, with their tangent maps.

For one parameter tensor, ``direction`` is the η-free map ``(w, buffers, g) ↦ (d, new buffers)``
of :mod:`hgref.dynamics` (torch.optim conventions: ``g ← g + λ w``; heavy-ball ``v ← μ v + (1−τ) g``
(``v = g`` on the first step), ``d = v``; Nesterov ``d = g + μ v``; Adam ``d = (m/bc1)/(√v/√bc2 + ε)``
or ``(m/bc1)/(√(v/bc2 + ε_root) + ε)``; AdamW: the Adam direction of the raw g plus ``λ w``),
and ``direction_jvp`` its directional derivative

    (δd, δb) = ∂D/∂x z + ∂D/∂g δg,    δg = ∇²L z_w

written out by hand (elementwise; the Hessian-vector product δg comes from the caller), as
:func:`hgref.linearize.linearize` obtains from autograd. ``√`` has derivative 0 where
v = 0, as ``hgref.dynamics._sqrt0``. Everything is elementwise, so it runs per parameter
tensor on any device and dtype.
"""
from __future__ import annotations

import math

import torch

__all__ = ["BUFFERS", "direction", "direction_jvp", "sqrt0"]

BUFFERS = {"sgd": (), "heavy_ball": ("velocity",), "nesterov": ("velocity",), "adam": ("m", "v"),
           "adamw": ("m", "v")}


def _decays(name, hp):
    """(coupled λ added to g, decoupled λ added to d): AdamW's decay is decoupled."""
    return (0.0, hp["weight_decay"]) if name == "adamw" else (hp["weight_decay"], 0.0)


def _damping(hp, count):
    """Weight of g in the new velocity: 1 on the first step (torch's buf = g.clone()), then 1 − τ."""
    tau = hp.get("dampening", 0.0)
    return 1.0 if count == 0 or not tau else 1.0 - tau


class _Sqrt0(torch.autograd.Function):
    """√x whose derivative is 0 where x = 0 (``hgref.dynamics._sqrt0``): Adam's second moment
    is exactly 0 for weights whose gradient history is 0 (dead ReLU units)."""

    @staticmethod
    def forward(ctx, x):
        out = x.sqrt()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        safe = torch.where(out > 0, out, torch.ones_like(out))
        return torch.where(out > 0, grad * 0.5 / safe, torch.zeros_like(out))


def sqrt0(x):
    """√x with derivative 0 at 0; plain ``sqrt`` when autograd is off (the optimizer's path)."""
    return _Sqrt0.apply(x) if torch.is_grad_enabled() and x.requires_grad else x.sqrt()


def direction(name, hp, w, buffers, grad, count):
    """``(d, new_buffers)`` for one tensor; ``count`` = steps taken before this one.

    Out-of-place throughout, so the same code is differentiated by :mod:`hgref.torch.lrs_opt`.
    """
    wd, dwd = _decays(name, hp)
    g = grad.add(w, alpha=wd) if wd else grad
    if name == "sgd":
        return g, ()
    if name in ("heavy_ball", "nesterov"):
        mu, c = hp["momentum"], _damping(hp, count)
        gc = g if c == 1.0 else g.mul(c)
        v = torch.add(gc, buffers[0], alpha=mu) if mu else gc.clone()
        return (torch.add(g, v, alpha=mu) if name == "nesterov" else v), (v,)
    b1, b2 = hp["b1"], hp["b2"]
    m = buffers[0].mul(b1).add(g, alpha=1 - b1)
    v = buffers[1].mul(b2).addcmul(g, g, value=1 - b2)
    k = count + 1
    bc1, bc2 = 1 - b1 ** k, 1 - b2 ** k
    if hp["eps_root"]:
        denom = v.div(bc2).add(hp["eps_root"]).sqrt().add(hp["eps"])
    else:
        denom = sqrt0(v).div(math.sqrt(bc2)).add(hp["eps"])
    d = m.div(bc1).div(denom)
    return (d.add(w, alpha=dwd) if dwd else d), (m, v)


def direction_jvp(name, hp, w, buffers, grad, count, new_buffers, zw, zbuffers, hz):
    """``(δd, δb)``: the η-free part of A_t z for one tensor (see module docstring).

    ``grad`` is ∇L_t(w) without weight decay, ``new_buffers`` the buffers returned by
    :func:`direction`, ``zw`` / ``zbuffers`` the tangent of (w, buffers) and ``hz`` = ∇²L_t z_w.
    """
    wd, dwd = _decays(name, hp)
    dg = hz.add(zw, alpha=wd) if wd else hz
    if name == "sgd":
        return dg, ()
    if name in ("heavy_ball", "nesterov"):
        mu, c = hp["momentum"], _damping(hp, count)
        dv = torch.add(dg if c == 1.0 else dg.mul(c), zbuffers[0], alpha=mu)
        return (torch.add(dg, dv, alpha=mu) if name == "nesterov" else dv), (dv,)
    b1, b2, eps = hp["b1"], hp["b2"], hp["eps"]
    g = grad.add(w, alpha=wd) if wd else grad
    m, v = new_buffers
    dm = zbuffers[0].mul(b1).add_(dg, alpha=1 - b1)
    dv = zbuffers[1].mul(b2).addcmul_(g, dg, value=2 * (1 - b2))
    k = count + 1
    bc1, bc2 = 1 - b1 ** k, 1 - b2 ** k
    if hp["eps_root"]:
        root = v.div(bc2).add_(hp["eps_root"]).sqrt_()
        droot = dv.div(bc2).div_(root).mul_(0.5)
    else:
        sv = v.sqrt()
        root = sv.div(math.sqrt(bc2))
        safe = torch.where(sv > 0, sv, torch.ones_like(sv))
        droot = torch.where(sv > 0, dv.mul(0.5).div_(safe), torch.zeros_like(sv)).div_(math.sqrt(bc2))
    denom = root.add_(eps)
    # d = m / (bc1 denom):  δd = (δm − m δdenom / denom) / (bc1 denom)
    dd = dm.sub(m.mul(droot).div_(denom)).div_(denom).div_(bc1)
    return (dd.add_(zw, alpha=dwd) if dwd else dd), (dm, dv)
