"""Small third-party-style hypergradient optimizers for tests/test_testing_*.py, written here
(no released code is copied) after the conventions of released implementations:

* :class:`TangentRTHO` — an RTHO/MARTHE-style optimizer with a hand-written forward tangent
  Z_{t+1} = μ(Z_t − η_t ∂d_t) − d_t over (w, buffers), SGD / heavy-ball (dampening) / Nesterov /
  Adam (torch's ε) with coupled weight decay; ``bug=`` plants one mistake of the gallery;
* :class:`SGDHD` — the original HD convention: one param group, flat gradient read from
  ``p.grad`` after torch's coupled weight decay, h = g_t·d_{t−1}, ``lr += β h`` inside ``step``;
* :class:`AdamHD` — the original Adam-HD convention: torch < 2.0 Adam step (denominator
  √v + ε, step size η√bc2/bc1), coupled decay, h from the previous step's moments; the released
  code updates ``lr`` inside the per-parameter loop (``lr_in_loop=True``), the fixed variant once;
* :class:`ConventionAdam` — Adam/AdamW with ε in another place (``"torch"``, ``"inside"``,
  ``"pre2"``, ``"v0_eps"``) and an HD estimate of its own previous direction;
* :class:`StackedSGD` — the "hyperoptimizer" style: η is a tensor with ``requires_grad``, the
  update is differentiated by autograd at the next step, and η has an optimizer of its own;
  ``bug="lr_tensor"`` writes that tensor into ``group["lr"]``.
"""
import math

import numpy as np
import torch


class TangentRTHO(torch.optim.Optimizer):
    """RTHO with a discount μ (MARTHE with fixed μ): Δη_t = Z_t[w]·∇E(w_t), hyper-lr 0."""

    def __init__(self, params, lr, dynamics="sgd", momentum=0.0, dampening=0.0, betas=(0.9, 0.999),
                 eps=1e-8, weight_decay=0.0, mu=1.0, bug=None):
        super().__init__(params, dict(lr=lr))
        if bug == "float32_momentum":
            momentum = float(np.float32(momentum))
        self.dyn, self.mu, self.bug = dynamics, mu, bug
        self.momentum, self.tau, self.betas, self.eps, self.wd = momentum, dampening, betas, eps, weight_decay
        self.delta, self.lr0, self.last_lr, self.t = 0.0, lr, lr, 0

    def hypergradient(self):
        return self.delta

    def _estimate(self, params, objective_closure):
        grads_e = torch.autograd.grad(objective_closure(), params)
        return float(sum((self.state[p]["zw"] * g).sum() for p, g in zip(params, grads_e)))

    def step(self, closure, objective_closure):
        closure()
        params = self.param_groups[0]["params"]
        lr = self.lr0 if self.bug == "lr_frozen_update" else self.param_groups[0]["lr"]
        for p in params:
            if not self.state[p]:
                self.state[p].update(zw=torch.zeros_like(p), zm=torch.zeros_like(p), zv=torch.zeros_like(p),
                                     m=torch.zeros_like(p), v=torch.zeros_like(p))
        if self.bug != "late":
            self.delta = self._estimate(params, objective_closure)
        grads = [p.grad for p in params]
        hz = torch.autograd.grad(grads, params, grad_outputs=[self.state[p]["zw"] for p in params])
        lr_t = {"lr_frozen": self.lr0, "stale_lr": self.last_lr}.get(self.bug, lr)
        with torch.no_grad():
            for p, g, h in zip(params, grads, hz):
                self._update(p, g.detach(), h, lr, lr_t)
        if self.bug == "late":      # reported after the update: the value of step t+1
            self.delta = self._estimate(params, objective_closure)
        self.last_lr, self.t = lr, self.t + 1

    def _update(self, p, g, h, lr, lr_t):
        s, mu, wd = self.state[p], self.mu, self.wd
        g = g + wd * p
        dg = h + (0.0 if self.bug == "no_wd_tangent" else wd) * s["zw"]
        if self.dyn == "adam":
            d, dd, d_b = self._adam(s, g, dg)
        else:
            d, dd, d_b = self._momentum(s, g, dg)
        no_identity = self.bug == "adam_no_identity" and self.dyn == "adam"
        zw = torch.zeros_like(p) if no_identity else s["zw"]      # the bug drops I in A_t z_w
        s["zw"] = mu * (zw - lr_t * dd) - d_b
        p.sub_(lr * d)

    def _momentum(self, s, g, dg):
        mu, first = self.momentum, self.t == 0
        if self.dyn == "sgd":
            return g, dg, g
        c = 1.0 if first else 1.0 - self.tau
        v = mu * s["v"] + c * g
        dv = mu * s["zv"] + c * dg
        nesterov = self.dyn == "nesterov" and self.bug != "nesterov_ignored"
        d, dd = (g + mu * v, dg + mu * dv) if nesterov else (v, dv)
        d_b = d
        if self.bug == "first_momentum_step" and first and self.dyn == "heavy_ball":
            # B_0 from v_1 = μ v_0 + (1 − τ) g_0: damps the first buffer, torch's is g
            d_b = mu * s["v"] + (1.0 - self.tau) * g
        s["v"], s["zv"] = v, self.mu * dv
        return d, dd, d_b

    def _adam(self, s, g, dg):
        (b1, b2), eps, k = self.betas, self.eps, self.t + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        dm = b1 * s["zm"] + (1 - b1) * dg
        dv = b2 * s["zv"] + 2 * (1 - b2) * g * dg
        bc1, bc2 = 1 - b1 ** k, 1 - b2 ** k
        d = (m / bc1) / (v.sqrt() / math.sqrt(bc2) + eps)
        mj, vj = (s["m"], s["v"]) if self.bug == "stale_moments" else (m, v)   # where ∂d is taken
        if self.bug == "eps_inside":
            root = (vj / bc2 + eps).sqrt()
            denom = root
            droot = dv / bc2 / (2 * root)
        else:
            root = vj.sqrt() / math.sqrt(bc2)
            denom = root + eps
            safe = torch.where(vj > 0, vj.sqrt(), torch.ones_like(vj))
            droot = torch.where(vj > 0, dv / (2 * safe * math.sqrt(bc2)), torch.zeros_like(vj))
        dd = (dm / bc1) / denom - (mj / bc1) / denom ** 2 * droot
        s["m"], s["v"], s["zm"], s["zv"] = m, v, self.mu * dm, self.mu * dv
        return d, dd, d


class SGDHD(torch.optim.Optimizer):
    """SGD/SGDN with HD, the original convention (module docstring); one param group."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 hypergrad_lr=1e-3):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, hypergrad_lr=hypergrad_lr))
        if len(self.param_groups) != 1:
            raise ValueError("SGDHD supports one param group")

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        group = self.param_groups[0]
        params = group["params"]
        with torch.no_grad():
            grad = torch.cat([(p.grad + group["weight_decay"] * p).reshape(-1) for p in params])
            state = self.state[params[0]]                  # global state under the first parameter
            prev = state.setdefault("grad_prev", torch.zeros_like(grad))
            group["lr"] += group["hypergrad_lr"] * float(grad @ prev)
            if group["momentum"]:
                if "buf" not in state:
                    state["buf"] = grad.clone()
                else:
                    state["buf"] = group["momentum"] * state["buf"] + (1 - group["dampening"]) * grad
                grad = grad + group["momentum"] * state["buf"] if group["nesterov"] else state["buf"]
            state["grad_prev"] = grad
            o = 0
            for p in params:
                p.sub_(group["lr"] * grad[o:o + p.numel()].view_as(p))
                o += p.numel()
        return loss


class AdamHD(torch.optim.Optimizer):
    """Adam with HD in the original convention (torch < 2.0 step, coupled decay); h_t uses the
    previous step's moments, i.e. d_{t−1}. ``lr_in_loop=True`` is the released placement: lr
    moves by β h of each tensor just before that tensor is stepped."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 hypergrad_lr=1e-8, lr_in_loop=True):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      hypergrad_lr=hypergrad_lr))
        self.lr_in_loop = lr_in_loop

    def _h(self, group, p, g, st):
        (b1, b2), k = group["betas"], st["step"]
        if k == 0:
            return 0.0
        prev_d = st["m"] / (st["v"].sqrt() + group["eps"]) * math.sqrt(1 - b2 ** k) / (1 - b1 ** k)
        return float((g * prev_d).sum())

    def _apply(self, group, p, g, st):
        (b1, b2), k = group["betas"], st["step"] + 1
        st["m"].mul_(b1).add_(g, alpha=1 - b1)
        st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
        step_size = group["lr"] * math.sqrt(1 - b2 ** k) / (1 - b1 ** k)
        p.addcdiv_(st["m"], st["v"].sqrt() + group["eps"], value=-step_size)
        st["step"] = k

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        with torch.no_grad():
            for group in self.param_groups:
                todo = []
                for p in group["params"]:
                    st = self.state[p]
                    if not st:
                        st.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                    g = p.grad + group["weight_decay"] * p
                    if self.lr_in_loop:
                        group["lr"] += group["hypergrad_lr"] * self._h(group, p, g, st)
                        self._apply(group, p, g, st)
                    else:
                        todo.append((p, g, st))
                if todo:
                    group["lr"] += group["hypergrad_lr"] * sum(self._h(group, *x) for x in todo)
                    for x in todo:
                        self._apply(group, *x)
        return loss


class ConventionAdam(torch.optim.Optimizer):
    """Adam (coupled decay) or AdamW (``decoupled=True``) with ε placed by ``convention`` and
    the HD estimate Δη_t = −g_t·d_{t−1} of its own previous direction (g_t = p.grad + coupled λw)."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, convention="torch",
                 decoupled=False):
        super().__init__(params, dict(lr=lr))
        self.betas, self.eps, self.wd, self.conv, self.decoupled = betas, eps, weight_decay, convention, decoupled
        self.h, self.t = 0.0, 0

    def _direction(self, p, st, k):
        (b1, b2), eps = self.betas, self.eps
        bc1, bc2 = 1 - b1 ** k, 1 - b2 ** k
        if self.conv == "inside":
            d = (st["m"] / bc1) / (st["v"] / bc2 + eps).sqrt()
        elif self.conv == "pre2":
            d = st["m"] / (st["v"].sqrt() + eps) * (math.sqrt(bc2) / bc1)
        else:                           # "torch" and "v0_eps" (v started at ε)
            d = (st["m"] / bc1) / (st["v"].sqrt() / math.sqrt(bc2) + eps)
        return d + self.wd * p if self.decoupled else d

    def step(self, closure):
        closure()
        (b1, b2), k = self.betas, self.t + 1
        lr = self.param_groups[0]["lr"]
        with torch.no_grad():
            h = 0.0
            for p in self.param_groups[0]["params"]:
                st = self.state[p]
                if not st:
                    st.update(m=torch.zeros_like(p), v=torch.full_like(p, self.eps if self.conv == "v0_eps" else 0.0),
                              prev_d=torch.zeros_like(p))
                g = p.grad if self.decoupled else p.grad + self.wd * p
                h -= float((g * st["prev_d"]).sum())
                st["m"].mul_(b1).add_(g, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                d = self._direction(p, st, k)
                p.sub_(lr * d)
                st["prev_d"] = d
            self.h, self.t = h, self.t + 1


class StackedSGD(torch.optim.Optimizer):
    """SGD whose η is a tensor trained by its own optimizer ("hyperoptimizer" style): the update
    w_{t+1} = w_t − η d_t is kept as a graph and differentiated at step t+1 (HD on L_t)."""

    def __init__(self, params, lr, weight_decay=0.0, hyper_lr=0.0, bug=None):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))
        self.eta = torch.tensor(float(lr), dtype=torch.float64, requires_grad=True)
        self.hyper = torch.optim.SGD([self.eta], lr=hyper_lr)
        self.bug, self.hg, self.prev_d = bug, 0.0, None

    def hypergradient(self):
        return self.hg

    def step(self, closure):
        closure()
        group = self.param_groups[0]
        params = group["params"]
        if not torch.is_tensor(group["lr"]) and group["lr"] != float(self.eta.detach()):
            with torch.no_grad():
                self.eta.fill_(group["lr"])          # adopt the η written from outside
        self.hg = 0.0
        if self.prev_d is not None:                  # ∂L_t(w_t)/∂η_{t−1}, autograd through −η d_{t−1}
            grads = [p.grad.detach() for p in params]
            (hg,) = torch.autograd.grad([-self.eta * d for d in self.prev_d], [self.eta], grad_outputs=grads)
            self.hg = float(hg)
            self.hyper.zero_grad()
            self.eta.grad = hg
            self.hyper.step()
        self.prev_d = [(p.grad + group["weight_decay"] * p).detach() for p in params]
        with torch.no_grad():
            for p, d in zip(params, self.prev_d):
                p.sub_(self.eta * d)
        group["lr"] = self.eta if self.bug == "lr_tensor" else float(self.eta.detach())


# ----------------------------------------------------------------------------- adapters
# The adapters a third party writes for hgref.testing (line counts in the README).
from hgref.testing import TorchAdapter, Unsupported, attribute, from_lr_change, only, torch_kwargs  # noqa: E402


def sgdhd_adapter(beta=1e-3):
    def make(params, case):
        only(case, "sgd", "heavy_ball", "nesterov", groups=1)
        return SGDHD(params, hypergrad_lr=beta, **torch_kwargs(case, SGDHD))
    return TorchAdapter(make, estimate=from_lr_change(beta), mu=0.0, objective="train", name="SGDHD")


def adamhd_adapter(beta=1e-6, lr_in_loop=False):
    def make(params, case):
        only(case, "adam")
        return AdamHD(params, hypergrad_lr=beta, lr_in_loop=lr_in_loop, **torch_kwargs(case, AdamHD))
    return TorchAdapter(make, estimate=from_lr_change(beta), mu=0.0, objective="train", name="AdamHD")


def tangent_adapter(bug=None, mu=1.0):
    def make(params, case):
        only(case, "sgd", "heavy_ball", "nesterov", "adam", groups=1)
        kw = torch_kwargs(case)
        if kw.pop("eps_root", 0.0):
            raise Unsupported("TangentRTHO puts eps outside the square root only")
        kw.pop("nesterov", None)
        return TangentRTHO(params, dynamics=case.dynamics, mu=mu, bug=bug, **kw)
    return TorchAdapter(make, mu=mu, name=f"TangentRTHO(bug={bug})")


def convention_adapter(convention="torch"):
    def make(params, case):
        only(case, "adam", "adamw", groups=1)
        kw = torch_kwargs(case, ConventionAdam)
        return ConventionAdam(params, convention=convention, decoupled=case.dynamics == "adamw", **kw)
    return TorchAdapter(make, estimate=attribute("h"), mu=0.0, objective="train",
                        name=f"ConventionAdam({convention})")


def stacked_adapter(bug=None):
    def make(params, case):
        only(case, "sgd", groups=1)
        return StackedSGD(params, bug=bug, **torch_kwargs(case, StackedSGD))
    return TorchAdapter(make, mu=0.0, objective="loss", name=f"StackedSGD(bug={bug})")
