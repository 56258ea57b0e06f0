"""Per-group state, histories and checkpoints of :class:`hgref.torch.HypergradientOptimizer`.

A mixin: the optimizer keeps, per param group, a dict of 0-d tensors on the parameters'
device (η, the rule's state, step count) and histories of η_t, Δη_t, μ_t, β_t that grow
by doubling (no host sync per step). ``state_dict`` adds them under ``"hypergradient"``.
"""
from __future__ import annotations

import gc
import math
import warnings

import torch

from .._checks import DivergenceError
from . import _rules
from ._groups import _HISTORY_KEYS, _check_real


class StateMixin:
    """``lr_history``, ``sync``, ``state_dict`` / ``load_state_dict`` over ``self._gstate``, and
    the hand-over between ``group["lr"]`` and η (adoption of outside writes, divergence check)."""

    def _fresh_gstate(self, group, like):
        st = _rules.init_state(self.rule, group, like)
        st.update(count=0, lr_written=float(group["lr"]), n=0,
                  history={k: torch.zeros(64, dtype=like.dtype, device=like.device)
                           for k in _HISTORY_KEYS[self.rule]})
        return st

    def _record(self, st, values):
        n = st["n"]
        for k, v in values.items():
            buf = st["history"][k]
            if n == buf.shape[0]:
                buf = st["history"][k] = torch.cat([buf, torch.zeros_like(buf)])
            buf[n] = v
        st["n"] = n + 1

    def lr_history(self, group=0, key="lr"):
        """η_t (or ``"hypergradient"`` Δη_t, ``"mu"``, ``"beta"``) used at each step, a CPU tensor.

        ``lr_history("hypergradient")`` is ``lr_history(0, "hypergradient")`` (group 0).
        """
        if isinstance(group, str):
            if key != "lr":
                raise TypeError(f"lr_history: give the key once, got {group!r} and key={key!r}")
            group, key = 0, group
        if isinstance(group, bool) or not isinstance(group, int) or not 0 <= group < len(self._gstate):
            raise ValueError(f"Invalid group: {group!r}; accepted values: 0 .. {len(self._gstate) - 1}")
        st = self._gstate[group]
        if key not in st["history"]:
            raise ValueError(f"Invalid key: {key!r}; accepted values: {', '.join(map(repr, st['history']))}")
        self.sync()
        return st["history"][key][:st["n"]].detach().cpu().clone()

    def sync(self):
        """Copy every η to ``group["lr"]`` (one host sync) and check it is finite."""
        if not self._gstate:
            return
        vals = torch.stack([st["eta"].detach().to(torch.float64).cpu() for st in self._gstate]).tolist()
        for group, st, v in zip(self.param_groups, self._gstate, vals):
            if not math.isfinite(v):
                raise DivergenceError(st["count"] - 1, "eta", f"rule {self.rule}, eta={v!r}")
            group["lr"] = st["lr_written"] = v

    def state_dict(self):
        """torch's state dict (per-parameter buffers, tangent ``z``, previous direction) plus
        ``"hypergradient"``: per group η, rule state (μ, β, c, HD buffers) and histories.
        As in torch, per-parameter tensors are references: ``copy.deepcopy`` or ``torch.save``
        it before training on."""
        self.sync()
        out = super().state_dict()
        hyper = []
        for st in self._gstate:
            entry = {k: v.clone() if torch.is_tensor(v) else v for k, v in st.items() if k != "history"}
            entry["history"] = {k: v[:st["n"]].clone() for k, v in st["history"].items()}
            hyper.append(entry)
        out["hypergradient"] = {"rule": self.rule, "dynamics": self.dynamics, "groups": hyper}
        return out

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        hyper = state_dict.pop("hypergradient", None)
        if hyper is None:
            raise ValueError("state_dict has no 'hypergradient' entry: not saved by HypergradientOptimizer")
        if (hyper["rule"], hyper["dynamics"]) != (self.rule, self.dynamics):
            raise ValueError(f"state_dict was saved with rule={hyper['rule']!r}, dynamics="
                             f"{hyper['dynamics']!r}; this optimizer has rule={self.rule!r}, "
                             f"dynamics={self.dynamics!r}")
        super().load_state_dict(state_dict)
        for group, st, saved in zip(self.param_groups, self._gstate, hyper["groups"]):
            like = group["params"][0]
            for k, v in saved.items():
                if k == "history":
                    st[k] = {h: torch.cat([b.to(like.device, like.dtype), torch.zeros(64, dtype=like.dtype,
                                           device=like.device)]) for h, b in v.items()}
                elif torch.is_tensor(v):
                    st[k] = v.to(like.device, like.dtype)
                else:
                    st[k] = v

    # ------------------------------------------------------------------ group["lr"] <-> η
    def _adopt_written_lr(self):
        """Adopt as η a value written into ``group["lr"]`` from outside (scheduler, warm-up)."""
        for group, st in zip(self.param_groups, self._gstate):
            if group["lr"] != st["lr_written"]:
                _check_real("lr", group["lr"], label="learning rate")
                self._check_scheduler()
                st["eta"] = torch.full_like(st["eta"], float(group["lr"]))
                st["lr_written"] = group["lr"]

    def _check_scheduler(self):
        """Warn once if a torch scheduler that recomputes lr from its initial value drives this
        optimizer: it overwrites the learned η at every step, so the rule never adapts it."""
        if self._scheduler_checked:
            return
        self._scheduler_checked = True
        from torch.optim import lr_scheduler as ls
        resetting = (ls.LambdaLR, ls.CyclicLR, ls.OneCycleLR, ls.CosineAnnealingWarmRestarts)
        found = [r for r in gc.get_referrers(self) if isinstance(r, resetting) and r.optimizer is self]
        found += [o for d in gc.get_referrers(self) if isinstance(d, dict) for o in gc.get_referrers(d)
                  if isinstance(o, resetting) and getattr(o, "__dict__", None) is d]
        if found:
            warnings.warn(f"{type(found[0]).__name__} sets group['lr'] from the initial lr at every step, "
                          f"overwriting the learning rate rule {self.rule!r} learns, so it never adapts. "
                          "Use a chainable scheduler, which scales the current lr (MultiplicativeLR with "
                          "lr_lambda(k)/lr_lambda(k-1), ExponentialLR, StepLR, ...), or none.",
                          UserWarning, stacklevel=4)

    def _check_finite(self, etas, loss, t):
        vals = torch.stack([e.detach().to(torch.float64) for e in etas]
                           + ([loss.detach().to(torch.float64).reshape(())]
                              if torch.is_tensor(loss) else [])).cpu().tolist()
        if torch.is_tensor(loss) and not math.isfinite(vals[-1]):
            raise DivergenceError(t, "loss", f"rule {self.rule}")
        for group, st, v in zip(self.param_groups, self._gstate, vals):
            if not math.isfinite(v):
                raise DivergenceError(t, "eta", f"rule {self.rule}, eta={v!r}")
            group["lr"] = st["lr_written"] = v
