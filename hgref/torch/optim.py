"""hgref's online learning-rate rules as one ``torch.optim.Optimizer``.

:class:`HypergradientOptimizer` runs a dynamics Φ of :mod:`hgref.dynamics` (``sgd``,
``heavy_ball``, ``nesterov``, ``adam``, ``adamw``, weight decay λ) whose scalar learning rate η of each
param group is chosen online by a rule of :mod:`hgref.rules`:

* ``"hd"`` — hypergradient descent, h_t = −∇Obj(w_t)·d_{t−1} (Baydin et al. 2018; lop
  ``sgd``/``sgdn``/``adam`` of the HD-momentum paper, Alg. 1–2);
* ``"rtho"`` / ``"marthe"`` — the tangent system Z_{t+1} = μ_t A_t Z_t + B_t over the whole
  optimizer state (MARTHE Eq. 9; μ = 1 is RTHO), Δη_t = Z_t[w]·∇E(w_t), Algorithm 1;
* ``"constant"`` — η fixed (η is then whatever ``group["lr"]`` says: torch schedulers work).

Call protocol (``step(closure=None, objective_closure=None)``):

* ``hd`` / ``constant``: torch's usual protocol — ``loss.backward()`` fills ``p.grad`` (or the
  closure does and returns the loss).
* ``rtho`` / ``marthe``: A_t Z_t needs the Hessian-vector product ∇²L_t Z_t[w], so ``closure``
  is required and must call ``loss.backward(create_graph=True)`` and return the loss; the
  optimizer differentiates ``p.grad`` once more (double backward) and detaches ``p.grad``
  afterwards (breaking the parameter↔gradient reference cycle torch warns about). For an
  :class:`hgref.torch.models.MLP`, ``closure=hgref.torch.fused.MLPClosure(model, X, y)``
  gives ∇L and ∇²L Z in one fused pass instead (one param group; equal in float64).
* ∇E of the validation objective (``objective="validation"``, the default of RTHO/MARTHE):
  pass ``objective_closure`` returning the validation loss at the current weights (no
  ``backward``; put BatchNorm models in ``eval()`` mode inside it), or call
  :meth:`~HypergradientOptimizer.set_objective_grad` before ``step``.
* DistributedDataParallel: gradients averaged by DDP serve HD as they are. For RTHO/MARTHE
  DDP's bucketed all-reduce returns gradients detached from the double-backward graph, so run
  the forward/backward inside ``model.no_sync()`` and pass ``process_group``: the optimizer
  then averages, in one all-reduce per step, the gradient, the Hessian-vector products and
  the ∇E it computes from ``objective_closure`` (each rank's validation shard). With HD and a
  per-rank validation shard pass ``process_group`` too (HD's DDP-averaged gradient is then
  left as it is). tests/test_torch_ddp.py checks both against a single-process run.

Learning rate as a tensor: η lives on the parameters' device as a 0-d tensor; ``step`` never
reads it back to the host except to keep ``group["lr"]`` a Python float (torch convention,
read by schedulers, loggers and checkpoints) and to raise :class:`hgref.DivergenceError` on a
non-finite η or loss. That is one device→host copy per step (a few µs on CUDA, free on
CPU). ``sync_lr=False`` removes it: ``group["lr"]`` and the divergence check are then
refreshed only by :meth:`sync`, :meth:`state_dict` and :meth:`lr_history`. A value written
into ``group["lr"]`` from outside (a scheduler, a warm-up) is adopted as η at the next step.
With an online rule, a chainable scheduler (ExponentialLR, StepLR, MultiplicativeLR, ...)
scales the learned η; one that recomputes lr from its initial value (LambdaLR, CyclicLR,
OneCycleLR, CosineAnnealingWarmRestarts) overwrites it every step, so the rule would never
adapt η: the first such write warns.

Several param groups: each has its own η and its own tangent Z^g over the *whole* state
(changing η_g moves every parameter through the Hessian), so RTHO/MARTHE cost one HVP per
group; with one group (the paper's setting) that is one HVP per step.
"""
from __future__ import annotations

import warnings

import torch
from torch.optim import Optimizer

from . import _rules
from ._dynamics import BUFFERS, direction, direction_jvp
from ._groups import (LOPS, OBJECTIVES, RULES, TANGENT_RULES, _axpy_, _check_choice, _check_group,
                      _dot, _hp)
from ._fast import sgd_tangent_step
from ._state import StateMixin
from .fused import MLPClosure

__all__ = ["HypergradientOptimizer", "SGDHD", "AdamHD", "RTHO", "MARTHE"]

class HypergradientOptimizer(StateMixin, Optimizer):
    r"""A dynamics of :mod:`hgref.dynamics` whose learning rate is learned online.

    Args:
      params: iterable of parameters or of param-group dicts (each group has one scalar η).
      lr: η_0, the initial learning rate (> = 0).
      dynamics: ``"sgd"``, ``"heavy_ball"``, ``"nesterov"``, ``"adam"`` or ``"adamw"``.
      rule: ``"hd"``, ``"rtho"``, ``"marthe"`` or ``"constant"``.
      momentum, dampening: μ and τ of heavy-ball / Nesterov (torch ``SGD(momentum=μ,
        dampening=τ)``; τ must be 0 for Nesterov, as in torch).
      betas, eps, eps_root: Adam's (β1, β2), ε outside and ε_root inside the square root.
      weight_decay: λ, added to the gradient (``g ← g + λ w``, torch convention); for
        ``"adamw"`` decoupled (``w ← w(1 − ηλ)``, torch ``AdamW``).
      hyper_lr: β, the hypergradient step size (HD, RTHO, MARTHE with fixed β); for MARTHE
        with ``adapt_beta`` it is the step size of the β update and β_0 = ``beta0``.
        Required for ``rule="hd"`` (``0`` keeps η fixed, e.g. to check the estimate);
        default 0 for the other rules.
      lop, lop_momentum, lop_betas, lop_eps: HD's learning-rate optimizer (``"sgd"``,
        ``"sgdn"`` — HD-momentum paper Alg. 1 —, ``"adam"`` — Alg. 2) and its constants.
      mu: MARTHE's discount μ, a number in [0, 1] or ``"adaptive"`` (Appendix A).
      adapt_beta, beta0: MARTHE's online β (§4) and its initial value.
      objective: ``"train"`` (∇L_t + λ w, HD's default) or ``"validation"`` (∇E, default of
        RTHO/MARTHE; see the module docstring for how to supply it).
      process_group: average gradient, HVPs and ∇E over this group (see module docstring).
      sync_lr: keep ``group["lr"]`` a current Python float after every step.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> opt = HypergradientOptimizer([w], lr=0.1, rule="hd", hyper_lr=0.01)
    >>> for _ in range(3):
    ...     opt.zero_grad(); (w ** 2).sum().backward(); _ = opt.step()
    >>> opt.param_groups[0]["lr"] > 0.1       # HD raised η on this bowl
    True
    """

    def __init__(self, params, lr, dynamics="sgd", rule="hd", *, momentum=0.9, betas=(0.9, 0.999),
                 eps=1e-8, eps_root=0.0, weight_decay=0.0, hyper_lr=None, lop="sgd",
                 lop_momentum=0.9, lop_betas=(0.9, 0.999), lop_eps=1e-8, mu="adaptive",
                 adapt_beta=True, beta0=0.0, objective=None, process_group=None, sync_lr=True,
                 dampening=0.0):
        self.dynamics = _check_choice("dynamics", dynamics, tuple(BUFFERS))
        self.rule = _check_choice("rule", rule, RULES)
        self.lop = _check_choice("lop", lop, LOPS)
        if objective is None:
            objective = "validation" if rule in TANGENT_RULES else "train"
        self.objective = _check_choice("objective", objective, OBJECTIVES)
        self.process_group = process_group
        self.sync_lr = bool(sync_lr)
        defaults = dict(lr=lr, momentum=momentum, betas=tuple(betas), eps=eps, eps_root=eps_root,
                        weight_decay=weight_decay, hyper_lr=0.0 if hyper_lr is None else hyper_lr,
                        lop_momentum=lop_momentum, lop_betas=tuple(lop_betas), lop_eps=lop_eps, mu=mu,
                        adapt_beta=adapt_beta, beta0=beta0, dampening=dampening)
        _check_group(defaults)
        if dynamics == "nesterov" and dampening != 0:
            raise ValueError("Invalid dampening: Nesterov momentum requires zero dampening")
        if hyper_lr is None and rule == "hd":   # HD with β = 0 would silently never adapt η
            raise ValueError("Invalid hyper_lr: None; rule 'hd' needs hyper_lr=β, the hypergradient "
                             "step size (> 0 adapts η; 0 keeps η fixed)")
        self._scheduler_checked = rule == "constant"
        self._gstate = []
        self._objective_grad = None
        super().__init__(params, defaults)

    # ------------------------------------------------------------------ groups and state
    def add_param_group(self, param_group):
        if self.rule in TANGENT_RULES and any(self.state[p] for g in self.param_groups
                                              for p in g["params"]):
            raise ValueError("param_group: cannot add a param group after the first step of a "
                             "tangent rule (rtho, marthe): the tangents span all groups")
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group["betas"], group["lop_betas"] = tuple(group["betas"]), tuple(group["lop_betas"])
        _check_group(group)
        like = group["params"][0]
        self._gstate.append(self._fresh_gstate(group, like))

    def set_objective_grad(self, grads):
        """Give ∇E(w_t) for the next :meth:`step`: one tensor (or None) per parameter, in the
        order of ``param_groups``; used as given (not averaged over ``process_group``)."""
        params = [p for g in self.param_groups for p in g["params"]]
        grads = list(grads)
        if len(grads) != len(params):
            raise ValueError(f"grads must hold one tensor per parameter ({len(params)}), got {len(grads)}")
        self._objective_grad = grads

    # ------------------------------------------------------------------ the step
    def _allreduce(self, tensors):
        """Average tensors (in place) over ``process_group`` with one all-reduce."""
        if self.process_group is None or not tensors:
            return
        import torch.distributed as dist
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat, group=self.process_group)
        flat /= dist.get_world_size(self.process_group)
        o = 0
        for t in tensors:
            t.copy_(flat[o:o + t.numel()].view_as(t))
            o += t.numel()

    def _objective_grads(self, params, grads, objective_closure, wds):
        if self.objective == "train":   # ∇(L_t + λ/2‖w‖²) = g + λ w, as hgref.rules.hd decides
            return [g.add(p, alpha=wd) if wd else g for p, g, wd in zip(params, grads, wds)]
        if objective_closure is not None:
            with torch.enable_grad():
                value = objective_closure()
            og = torch.autograd.grad(value, params, allow_unused=True)
            og = [torch.zeros_like(p) if g is None else g for p, g in zip(params, og)]
            self._allreduce(og)
            return og
        if self._objective_grad is not None:
            index = {id(p): i for i, p in enumerate(q for g in self.param_groups for q in g["params"])}
            return [self._objective_grad[index[id(p)]] for p in params]
        raise ValueError(f"objective='validation' needs ∇E: pass objective_closure to step() or call "
                         f"set_objective_grad() (rule {self.rule!r})")

    @torch.no_grad()
    def step(self, closure=None, objective_closure=None):
        """One step t: choose η_t by the rule, then w_{t+1} = Φ_t(w_t, η_t) (see module docstring).

        Returns the closure's loss (None without closure).
        """
        tangent = self.rule in TANGENT_RULES
        if tangent and closure is None:
            raise ValueError(f"closure: rule {self.rule!r} needs a closure that calls "
                             "loss.backward(create_graph=True) and returns the loss")
        loss, fused_hvps = None, None
        if tangent and isinstance(closure, MLPClosure) and len(self.param_groups) == 1:
            loss = sgd_tangent_step(self, closure, objective_closure)
            if loss is not NotImplemented:
                return loss
            loss = None
            # fused ∇L and ∇²L Z in one pass (hgref.torch.fused), no double backward
            loss, fused_hvps = closure.grad_and_hvp(
                lambda p: self.state[p]["z"][0, 0] if self.state[p] else torch.zeros_like(p))
        elif closure is not None:
            with torch.enable_grad(), warnings.catch_warnings():
                # the protocol's backward(create_graph=True) links each parameter to its
                # gradient; step() breaks that cycle (p.grad is detached below), so torch's
                # reference-cycle warning does not apply to closures stepped here.
                warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True",
                                        category=UserWarning)
                loss = closure()
        if torch.is_tensor(loss):
            loss = loss.detach()                 # the caller's float(loss) needs no graph
        groups = self.param_groups
        members = [[p for p in g["params"] if p.grad is not None] for g in groups]
        params = [p for m in members for p in m]
        if not params:
            return loss
        graph_grads = [p.grad for p in params]
        grads = [g.detach().clone() if tangent and fused_hvps is None else g for g in graph_grads]
        if tangent:          # local gradients (no_sync); HD's come averaged by DDP
            self._allreduce(grads)
        t = self._gstate[0]["count"]
        self._adopt_written_lr()

        needs_og = (self.rule == "hd" and t > 0) or (tangent and t > 0)
        wds = [0.0 if self.dynamics == "adamw" else g["weight_decay"]   # AdamW: L_t only
               for g, m in zip(groups, members) for _ in m]
        og = self._objective_grads(params, grads, objective_closure, wds) if needs_og else None
        self._objective_grad = None
        ogi = {id(p): g for p, g in zip(params, og)} if og is not None else {}

        # η_t of every group
        etas, records = [], []
        for gi, (group, st, mem) in enumerate(zip(groups, self._gstate, members)):
            like = st["eta"]
            if self.rule == "constant":
                eta = st["eta"]
                rec = {"lr": eta}
            elif self.rule == "hd":
                if t > 0:
                    h = -_dot([ogi[id(p)] for p in mem], [self.state[p].get("prev_d") for p in mem], like)
                    eta = _rules.hd_eta(st, group, self.lop, h)
                else:
                    h, eta = torch.zeros_like(like), st["eta"]
                rec = {"lr": eta, "hypergradient": h}
            else:
                if t > 0:
                    delta = _dot([self.state[p]["z"][gi, 0] for p in params], og, like)
                    g1 = (-_dot([ogi[id(p)] for p in mem], [self.state[p].get("prev_d") for p in mem], like)
                          if _rules.needs_g1(self.rule, group) else None)
                else:
                    delta = g1 = torch.zeros_like(like)
                eta = _rules.tangent_eta(st, group, self.rule, delta, g1, t)
                rec = {"lr": eta, "hypergradient": delta}
                if self.rule == "marthe":
                    rec.update(mu=st["mu"], beta=st["beta"])
            etas.append(eta)
            records.append(rec)
        if self.sync_lr:
            self._check_finite(etas, loss, t)

        # Hessian-vector products ∇²L_t Z^k[w], one per tangent k
        k_tangents = len(groups) if tangent else 0
        hvps = []
        if tangent and t > 0 and fused_hvps is not None:
            hvps = [[fused_hvps[p] for p in params]]
            self._allreduce(hvps[0])
        elif tangent and t > 0:
            if not any(g.requires_grad for g in graph_grads):
                raise RuntimeError(f"rule {self.rule!r} needs Hessian-vector products: the closure "
                                   "must call loss.backward(create_graph=True)")
            for k in range(k_tangents):
                outs = [(g, p) for g, p in zip(graph_grads, params) if g.requires_grad]
                hz = torch.autograd.grad([g for g, _ in outs], params,
                                         grad_outputs=[self.state[p]["z"][k, 0] for _, p in outs],
                                         retain_graph=k < k_tangents - 1, allow_unused=True)
                hvps.append([torch.zeros_like(p) if h is None else h for p, h in zip(params, hz)])
            self._allreduce([h for hk in hvps for h in hk])

        # directions, tangents, weights
        gi_of = {id(p): gi for gi, mem in enumerate(members) for p in mem}
        neg_eta = [-e for e in etas]
        mus = [st["mu"] for st in self._gstate] if tangent else []
        for i, (p, g) in enumerate(zip(params, grads)):
            gi = gi_of[id(p)]
            group, ps = groups[gi], self.state[p]
            hp = _hp(group)
            names = BUFFERS[self.dynamics]
            if not ps:
                for n in names:
                    ps[n] = torch.zeros_like(p)
                if tangent:
                    ps["z"] = torch.zeros((k_tangents, 1 + len(names)) + tuple(p.shape),
                                          dtype=p.dtype, device=p.device)
            bufs = tuple(ps[n] for n in names)
            d, new_bufs = direction(self.dynamics, hp, p, bufs, g, t)
            if tangent:
                z = ps["z"]
                for k in range(k_tangents):
                    if t > 0:
                        dd, dbufs = direction_jvp(self.dynamics, hp, p, bufs, g, t, new_bufs,
                                                  z[k, 0], tuple(z[k, 1:]), hvps[k][i])
                        _axpy_(z[k, 0], dd, neg_eta[gi]).mul_(mus[k])
                        for j, db in enumerate(dbufs):
                            z[k, 1 + j].copy_(db).mul_(mus[k])
                    if k == gi:
                        z[k, 0].sub_(d)
            _axpy_(p, d, neg_eta[gi])
            for n, b in zip(names, new_bufs):
                ps[n] = b
            if self.rule in ("hd", "marthe"):
                if d is g or d is p.grad:
                    # copy into the kept buffer: a fresh clone per step (0.9M floats) cost
                    # page faults, measured 1.16x -> see benchmarks/results/all.json
                    prev = ps.get("prev_d")
                    if prev is not None and prev.shape == d.shape and prev.dtype == d.dtype:
                        ps["prev_d"] = prev.copy_(d)
                    else:
                        ps["prev_d"] = d.clone()
                else:
                    ps["prev_d"] = d
            if tangent:
                p.grad = g       # detached: breaks the parameter <-> gradient cycle
        for st, rec in zip(self._gstate, records):
            st["count"] += 1
            self._record(st, rec)
        return loss


def SGDHD(params, lr, hyper_lr, *, momentum=0.0, nesterov=False, weight_decay=0.0, **kwargs):
    """SGD-HD / SGDN-HD (Baydin et al. 2018): plain, heavy-ball or Nesterov SGD with HD."""
    dyn = "nesterov" if nesterov else ("heavy_ball" if momentum else "sgd")
    return HypergradientOptimizer(params, lr, dyn, "hd", momentum=momentum, hyper_lr=hyper_lr,
                                  weight_decay=weight_decay, **kwargs)


def AdamHD(params, lr, hyper_lr, *, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **kwargs):
    """Adam-HD (Baydin et al. 2018): Adam whose η follows HD."""
    return HypergradientOptimizer(params, lr, "adam", "hd", betas=betas, eps=eps,
                                  hyper_lr=hyper_lr, weight_decay=weight_decay, **kwargs)


def RTHO(params, lr, hyper_lr, dynamics="sgd", **kwargs):
    """RTHO (Franceschi et al. 2017; MARTHE Eq. 6 with μ = 1)."""
    return HypergradientOptimizer(params, lr, dynamics, "rtho", hyper_lr=hyper_lr, **kwargs)


def MARTHE(params, lr, hyper_lr, dynamics="sgd", mu="adaptive", adapt_beta=True, beta0=0.0, **kwargs):
    """MARTHE (Algorithm 1): adaptive μ (Appendix A) and β (§4) by default."""
    return HypergradientOptimizer(params, lr, dynamics, "marthe", hyper_lr=hyper_lr, mu=mu,
                                  adapt_beta=adapt_beta, beta0=beta0, **kwargs)
