"""One torch optimizer driven through a case: the call protocol of :mod:`hgref.testing.torch_checks`.

A :class:`Session` holds the case's MLP as float64 leaf tensors in hgref's flat layout
``[W_1 (784×8), b_1, W_2 (8×10), b_2]`` (``a ↦ act(a W + b)``, mean cross-entropy; act = ReLU or
tanh), the optimizer your factory built on them, and the case's data. :meth:`Session.step` is
one step of the protocol (what the driver calls, in order):

1. ``group["lr"] = η^k_t`` for every ``optimizer.param_groups[k]`` (as a torch scheduler);
2. ``step(optimizer, closure, objective_closure)`` — default ``optimizer.step(closure)``, with
   ``objective_closure=`` if ``step`` accepts it. ``closure()`` sets every ``p.grad`` to None,
   computes L_t on minibatch t, calls ``loss.backward(create_graph=True)`` (so Hessian-vector
   products are available) and returns the loss; ``objective_closure()`` returns E(w_t) as a
   graph-connected scalar (validation loss; L itself on full-batch cases);
3. checks that every ``group["lr"]`` is still a Python number (not a tensor);
4. reads ``estimate(optimizer)`` (or ``estimate(optimizer, written)``, ``written`` the η's of
   step 1) — a float, or one value per param group — and μ_t if ``mu`` is callable;
5. sets every ``p.grad`` to None (breaks the parameter↔gradient cycle of ``create_graph``).

Nothing else of the optimizer is used (no ``zero_grad``). Own-dynamics mode also deep-copies
``(optimizer, params)`` before each step (:meth:`snapshot`): keep tensors in the optimizer state
detached.
"""
from __future__ import annotations

import copy
import inspect
import warnings

import numpy as np

__all__ = ["Session", "ProtocolFailure"]


class ProtocolFailure(Exception):
    """A step that is not a valid check: ``diagnosis`` (a key of DIAGNOSES), message, step."""

    def __init__(self, diagnosis, message, step):
        super().__init__(message)
        self.diagnosis, self.step = diagnosis, step


def _positional(fn):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def default_estimate(optimizer):
    """Δη_t of the last step: ``optimizer.hypergradient()`` if it exists, else hgref.torch's
    ``optimizer.lr_history(k, "hypergradient")[-1]`` of every group k."""
    method = getattr(optimizer, "hypergradient", None)
    if callable(method):
        return method()
    if callable(getattr(optimizer, "lr_history", None)):
        return [float(optimizer.lr_history(k, "hypergradient")[-1]) for k in range(len(optimizer.param_groups))]
    raise TypeError(f"{type(optimizer).__name__} exposes no hypergradient: give it a method "
                    "hypergradient() returning the last step's estimate, or pass estimate=")


def default_step(optimizer, closure, objective_closure):
    """``optimizer.step(closure, objective_closure=...)`` if ``step`` accepts that keyword,
    else ``optimizer.step(closure)``."""
    try:
        accepts = "objective_closure" in inspect.signature(optimizer.step).parameters
    except (TypeError, ValueError):
        accepts = False
    if accepts:
        return optimizer.step(closure, objective_closure=objective_closure)
    return optimizer.step(closure)


class Session:
    """The case's model, data and the optimizer under test (module docstring)."""

    def __init__(self, torch, adapter, case, data_dir=None, activation="relu", _state=None):
        self.torch, self.adapter, self.case, self.activation = torch, adapter, case, activation
        batch, (XE, yE), self.widths = case.data(data_dir)
        self._batch = batch
        self._XE = torch.as_tensor(XE, dtype=torch.float64)
        self._yE = torch.as_tensor(yE, dtype=torch.int64)
        self._cache = {}
        if _state is not None:
            self.optimizer, self.params = _state
            return
        w0 = np.asarray(case.problem(data_dir).w0)
        self.params, o = [], 0
        for n_in, n_out in zip(self.widths[:-1], self.widths[1:]):
            for shape in ((n_in, n_out), (n_out,)):
                n = int(np.prod(shape))
                self.params.append(torch.tensor(w0[o:o + n].reshape(shape), dtype=torch.float64,
                                                requires_grad=True))
                o += n
        arg = self.params if case.n_groups == 1 else [{"params": self.params[2 * k:2 * k + 2]}
                                                      for k in range(case.n_groups)]
        self.optimizer = adapter.make_optimizer(arg, case)
        groups = getattr(self.optimizer, "param_groups", None)
        if groups is None or len(groups) != case.n_groups:
            raise TypeError(f"the optimizer must have optimizer.param_groups with {case.n_groups} "
                            f"group(s) (the driver writes each group's 'lr'), got "
                            f"{'none' if groups is None else len(groups)}")

    # ------------------------------------------------------------------ model
    def _loss(self, params, X, y):
        torch = self.torch
        a = X
        for k in range(0, len(params), 2):
            a = a @ params[k] + params[k + 1]
            if k + 2 < len(params):
                a = torch.relu(a) if self.activation == "relu" else torch.tanh(a)
        return torch.nn.functional.cross_entropy(a, y)

    def _data(self, t):
        if t not in self._cache:
            X, y = self._batch(t)
            self._cache[t] = (self.torch.as_tensor(X, dtype=self.torch.float64),
                              self.torch.as_tensor(y, dtype=self.torch.int64))
        return self._cache[t]

    def flat(self) -> np.ndarray:
        return np.concatenate([p.detach().numpy().reshape(-1) for p in self.params])

    def set_flat(self, w):
        o = 0
        with self.torch.no_grad():
            for p in self.params:
                n = p.numel()
                p.copy_(self.torch.as_tensor(w[o:o + n]).view_as(p))
                o += n

    # ------------------------------------------------------------------ protocol
    def step(self, t, written, read=True):
        """One protocol step at step index t writing η's ``written`` (one per group); returns
        ``(estimate (K,) or None, μ_t or None, lr after the step (K,))``."""
        torch, params, opt = self.torch, self.params, self.optimizer
        for group, eta in zip(opt.param_groups, written):
            group["lr"] = float(eta)
        X, y = self._data(t)

        def closure():
            for p in params:
                p.grad = None
            loss = self._loss(params, X, y)
            loss.backward(create_graph=True)
            return loss

        def objective_closure():
            return self._loss(params, self._XE, self._yE)

        step = self.adapter.step or default_step
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*create_graph=True.*", category=UserWarning)
            step(opt, closure, objective_closure)
        for p in params:
            p.grad = None
        lr_after = []
        for k, group in enumerate(opt.param_groups):
            if torch.is_tensor(group["lr"]):
                raise ProtocolFailure("lr_tensor", f"step {t}: param_groups[{k}]['lr'] is a "
                                      f"{type(group['lr']).__name__} ({group['lr']!r}) after the step", t)
            lr_after.append(float(group["lr"]))
        if not read:
            return None, None, np.array(lr_after)
        fn = self.adapter.estimate or default_estimate
        value = fn(opt, list(map(float, written))) if _positional(fn) >= 2 else fn(opt)
        est = np.array([float(v) for v in np.atleast_1d(
            value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value, dtype=object))],
            dtype=float)
        if est.shape != (self.case.n_groups,):
            raise ProtocolFailure("estimate_shape", f"step {t}: the estimate has {est.size} value(s); "
                                  f"the case has {self.case.n_groups} param group(s): return one "
                                  "estimate per group", t)
        mu_t = None
        if callable(self.adapter.mu):
            mu_t = np.broadcast_to(np.asarray(self.adapter.mu(opt), dtype=float), (self.case.n_groups,))
        return est, mu_t, np.array(lr_after)

    # ------------------------------------------------------------------ snapshots (own mode)
    def snapshot(self):
        """A deep copy of ``(optimizer, params)``: every attribute of the optimizer (not only what
        ``torch.optim.Optimizer.__getstate__`` keeps: defaults, state and param_groups)."""
        try:
            return _copy_pair(self.optimizer, self.params)
        except Exception as exc:  # noqa: BLE001 - named in the message
            raise TypeError(f"own-dynamics mode deep-copies the optimizer before every step and "
                            f"copy.deepcopy failed ({type(exc).__name__}: {exc}): keep the tensors "
                            "of its state detached (no autograd graph)") from exc

    def restored(self, snap):
        """A new session running a copy of snapshot ``snap`` on the same data."""
        new = object.__new__(Session)
        new.__dict__.update(self.__dict__)
        new.optimizer, new.params = _copy_pair(*snap)
        return new


def _copy_pair(optimizer, params):
    memo = {}
    params = copy.deepcopy(params, memo)
    new = object.__new__(type(optimizer))
    memo[id(optimizer)] = new
    new.__dict__.update(copy.deepcopy(optimizer.__dict__, memo))
    return new, params
