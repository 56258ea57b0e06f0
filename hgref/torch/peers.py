"""The learning-rate-free optimizers of ``hgref compare`` ("peers"), each with the step size it applies.

Optional packages (``pip install 'hgref[peers]'``; hgref's core never imports them): ``prodigyopt``
1.1.2, ``dadaptation`` 3.2, ``schedulefree`` 1.4.1, ``dog-optimizer`` 1.0.3, ``mechanic-pytorch``
0.0.1. Defaults and usage as their authors give them (package sources and READMEs of those
versions); the one knob each README names as the thing to tune is gridded by ``hgref compare``.

Effective learning rate η_t (the step size the step t applies, recorded by :class:`Stepper`):

=====================  =====================  ===============================================
key                    η_t                    update of the weights w (what is evaluated)
=====================  =====================  ===============================================
prodigy                d_t·lr (·bias corr.)   Adam-type: w ← w − η_t m_t/(√v_t + d_t ε), d-weighted moments
dadapt_sgd             d_t·lr/‖g_0‖           momentum 0 (default): dual averaging w_{t+1} = w_0 − Σ η_i g_i,
                                              i.e. exactly SGD w_{t+1} = w_t − η_t g_t
dadapt_adam            d_t·lr (·bias corr.)   Adam-type, moments weighted by η_t
schedulefree_sgd       lr (·warm-up)          z ← z − η_t ∇L(y); gradient at y, model evaluated at the
                                              running average x (``optimizer.eval()``, authors' rule)
schedulefree_adamw     lr (·warm-up)          as above on the Adam-normalised gradient
dog                    r̄_t/√G_t               exactly SGD on the iterates; model evaluated at the
                                              polynomial-decay average (γ = 8, the package's averager)
mechanic_sgd/_adam     s_{t+1}·lr             w_{t+1} = w_0 + s_{t+1} Δ_{t+1}, Δ the summed base-optimizer
                                              updates: −g_t (SGD) or the Adam direction is scaled by
                                              s_{t+1}·lr and a change of s rescales the whole displacement
=====================  =====================  ===============================================

>>> PEERS["dog"].scalar_sgd, PEERS["prodigy"].base
(True, 'adam')
"""
from __future__ import annotations

import contextlib
import math
from typing import NamedTuple, Optional

import torch

__all__ = ["PeerSpec", "PEERS", "Stepper", "make_peer", "missing_packages", "group_lr"]


class PeerSpec(NamedTuple):
    """What ``hgref compare`` needs to know of one learning-rate-free optimizer."""

    key: str                  # method key (hgref.plotting.METHOD_STYLES)
    package: str              # PyPI distribution, pinned in setup.cfg [peers]
    module: str               # import name
    base: str                 # "sgd" or "adam": the direction η_t scales
    scalar_sgd: bool          # iterates follow w_{t+1} = w_t − η_t ∇L_t(w_t) exactly
    evaluated: str            # "iterate" or what is evaluated instead
    knob: Optional[str]       # the constructor argument gridded (None: no knob)
    default: Optional[float]  # the authors' default of the knob
    note: str                 # what of the oracle's view does not apply


_AVG = "not scalar-η SGD on the evaluated weights"
PEERS = {p.key: p for p in (
    PeerSpec("prodigy", "prodigyopt==1.1.2", "prodigyopt", "adam", False, "iterate", "d_coef", 1.0,
             "Adam-type direction: η_t is an Adam step size, not an SGD schedule"),
    PeerSpec("dadapt_sgd", "dadaptation==3.2", "dadaptation", "sgd", True, "iterate", "lr", 1.0, ""),
    PeerSpec("dadapt_adam", "dadaptation==3.2", "dadaptation", "adam", False, "iterate", "lr", 1.0,
             "Adam-type direction: η_t is an Adam step size, not an SGD schedule"),
    PeerSpec("schedulefree_sgd", "schedulefree==1.4.1", "schedulefree", "sgd", False,
             "average x (optimizer.eval())", "lr", 1.0,
             f"{_AVG}: gradients at y, evaluated at the average x; f_T is plain SGD run with its η_t"),
    PeerSpec("schedulefree_adamw", "schedulefree==1.4.1", "schedulefree", "adam", False,
             "average x (optimizer.eval())", "lr", 0.0025,
             "Adam-type direction and averaged iterate: no SGD schedule"),
    PeerSpec("dog", "dog-optimizer==1.0.3", "dog", "sgd", True, "polynomial-decay average (γ=8)",
             "reps_rel", 1e-6,
             "evaluated at the average: f_T is the last iterate's, the accuracies the average's"),
    PeerSpec("mechanic_sgd", "mechanic-pytorch==0.0.1", "mechanic_pytorch", "sgd", False, "iterate",
             None, None,
             "w_t = w_0 + s_t·Δ_t: a change of s_t rescales the whole displacement; f_T is plain SGD "
             "run with η_t = s_{t+1}·lr"),
    PeerSpec("mechanic_adam", "mechanic-pytorch==0.0.1", "mechanic_pytorch", "adam", False, "iterate",
             None, None, "Adam-type direction: η_t is an Adam step size, not an SGD schedule"),
)}


def missing_packages(keys):
    """The pip requirements of ``keys`` (peer keys; others ignored) that cannot be imported."""
    import importlib.util
    return sorted({PEERS[k].package for k in keys if k in PEERS
                   and importlib.util.find_spec(PEERS[k].module) is None})


class Stepper:
    """An optimizer ready for :func:`hgref.torch.compare.train`, with the η_t it applies.

    ``step(loss_fn)`` runs one step (``loss_fn(create_graph)`` zeroes the gradients, computes
    the minibatch loss, back-propagates and returns it); ``eta`` is then the step size that
    step applied; ``evaluating()`` is a context giving the model to evaluate (Schedule-Free:
    the average x, in ``optimizer.eval()`` mode; DoG: the averaged model).

    Args:
      optimizer: the torch optimizer.
      model: the trained module.
      before: ``before(optimizer) -> token``, read after ``backward`` and before ``step``
        (default: ``group["lr"]``, the η a torch scheduler set for this step).
      after: ``after(optimizer, token) -> η_t``, read after ``step`` (default: the token).
      create_graph: the step needs ``loss.backward(create_graph=True)`` (RTHO/MARTHE).
      run_step: ``run_step(optimizer, closure) -> loss`` replacing ``optimizer.step()``.
      post: called after every step (e.g. an averager).
      evaluate: a context manager factory ``() -> model to evaluate``.
    """

    def __init__(self, optimizer, model, *, before=None, after=None, create_graph=False,
                 run_step=None, post=None, evaluate=None):
        self.optimizer, self.model = optimizer, model
        self._before = before or group_lr
        self._after = after or (lambda opt, token: token)
        self._run_step = run_step
        self._post = post
        self._evaluate = evaluate
        self.create_graph = create_graph
        self.eta = float("nan")

    def step(self, loss_fn):
        if self._run_step is not None:
            loss = self._run_step(self.optimizer, lambda: loss_fn(self.create_graph))
            token = None
        else:
            loss = loss_fn(self.create_graph)
            token = self._before(self.optimizer)
            self.optimizer.step()
        self.eta = float(self._after(self.optimizer, token))
        if self._post is not None:
            self._post()
        return loss

    def evaluating(self):
        if self._evaluate is None:
            return contextlib.nullcontext(self.model)
        return self._evaluate()


def group_lr(opt):
    """η of the first param group as torch keeps it (``group["lr"]``)."""
    return float(opt.param_groups[0]["lr"])


def _bias(g):
    k, (b1, b2) = g["k"], g["betas"]
    return math.sqrt(1 - b2 ** (k + 1)) / (1 - b1 ** (k + 1)) if g["use_bias_correction"] else 1.0


def _dadapt_sgd_eta(opt):
    g = opt.param_groups[0]
    g0 = g.get("g0_norm")
    if g0 is None:        # step 0: the norm the step itself is about to compute
        g0 = math.sqrt(sum(float((p.grad * p.grad).sum()) for q in opt.param_groups
                           for p in q["params"] if p.grad is not None))
    return g["d"] * g["lr"] / g0


def _schedulefree(opt, model):
    opt.train()

    @contextlib.contextmanager
    def evaluate():
        opt.eval()            # weights ← x, the sequence the authors evaluate
        try:
            yield model
        finally:
            opt.train()
    return evaluate


def make_peer(key, model, value=None) -> Stepper:
    """The peer ``key`` on ``model``'s parameters, knob = ``value`` (None: the default).

    >>> from hgref.torch.models import MLP
    >>> s = make_peer("dadapt_sgd", MLP((4, 3)))
    >>> type(s.optimizer).__name__
    'DAdaptSGD'
    """
    if key not in PEERS:
        raise ValueError(f"unknown peer {key!r}; accepted values: {', '.join(PEERS)}")
    spec = PEERS[key]
    missing = missing_packages([key])
    if missing:
        raise ImportError(f"peer {key!r} needs {' '.join(missing)}: pip install 'hgref[peers]'")
    kw = {} if spec.knob is None or value is None else {spec.knob: float(value)}
    params = list(model.parameters())
    if key == "prodigy":
        from prodigyopt import Prodigy
        return Stepper(Prodigy(params, **kw), model, before=lambda o: o.param_groups[0]["d"] * group_lr(o)
                       * _bias(o.param_groups[0]))
    if key == "dadapt_sgd":
        from dadaptation import DAdaptSGD
        return Stepper(DAdaptSGD(params, **kw), model, before=_dadapt_sgd_eta)
    if key == "dadapt_adam":
        from dadaptation import DAdaptAdam
        return Stepper(DAdaptAdam(params, **kw), model, before=lambda o: o.param_groups[0]["d"] * group_lr(o)
                       * _bias(o.param_groups[0]))
    if key in ("schedulefree_sgd", "schedulefree_adamw"):
        import schedulefree
        cls = schedulefree.SGDScheduleFree if key == "schedulefree_sgd" else schedulefree.AdamWScheduleFree
        opt = cls(params, **kw)
        return Stepper(opt, model, after=lambda o, _: o.param_groups[0]["scheduled_lr"],
                       evaluate=_schedulefree(opt, model))
    if key == "dog":
        from dog import DoG, PolynomialDecayAverager
        averager = PolynomialDecayAverager(model)
        return Stepper(DoG(params, **kw), model, after=lambda o, _: o.param_groups[0]["eta"][0],
                       post=averager.step, evaluate=lambda: contextlib.nullcontext(averager.averaged_model))
    from mechanic_pytorch import mechanize     # mechanic_sgd / mechanic_adam
    base, lr = (torch.optim.SGD, 1.0) if key == "mechanic_sgd" else (torch.optim.Adam, 1e-3)
    opt = mechanize(base)(params, lr=lr)       # README: SGD lr=1.0; Adam: torch's default lr
    return Stepper(opt, model, after=lambda o, _: float(o.state["_mechanic"]["s"].sum().clamp(min=0)) * group_lr(o))
