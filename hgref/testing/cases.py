"""The battery: a matrix of reference cases, each dynamics × each thing implementations get wrong.

Every case is a float64 MLP 784-8-10 on a small real-MNIST subset (glorot init, seed 0) with a
learning-rate *schedule* that the checker writes before each step (as a torch scheduler writes
``group["lr"]``). The **matrix** (:data:`MATRIX`, 25 cases) crosses the five dynamics ``sgd``,
``heavy_ball``, ``nesterov``, ``adam``, ``adamw`` with five columns, so that the case that breaks
names the bug:

=================  ===========================================================================
``<dyn>``          baseline: constant η, full batch (E = L); AdamW with its default λ = 0.01
``<dyn>_lr_changes``  η changes every step (±50%): A_t must use the current η_t, not a stale one
``<dyn>_weight_decay``  coupled weight decay λ = 0.01 (g ← g + λw; AdamW: decoupled λ = 0.1)
``<dyn>_validation``  minibatches of 64, E = validation loss ≠ L_t: ∇E(w_t), HVPs of batch t
``<dyn>_first_steps``  8 steps of warm-up (η_t = η·(t+1)/4 up to η) with the first-step
                   conventions made visible: heavy-ball dampening 0.5 (torch's first buffer is g,
                   undamped), Nesterov μ = 0.99, Adam/AdamW β = (0.5, 0.9) (bias corrections
                   1 − β^k with k = count + 1)
=================  ===========================================================================

:data:`EXTRAS` add combinations and conventions outside the matrix: ``adam_eps_root`` (ε_root
inside the √, optax), ``nesterov_all``/``adam_all``/``adamw_all`` (decay + changing η +
validation E) and ``sgd_groups``/``adam_groups`` (two param groups, layer 1 and layer 2, with
different η: every group's η and estimate are checked). :data:`BATTERY` = matrix + extras.

Full-batch cases train on 128 images with E = L (the same images); minibatch cases draw 640
training and 256 validation images. MNIST comes from ``$HGREF_DATA``
(:func:`hgref.data.load_mnist`), loaded on first use. Two models share the weights w0: the ReLU
MLP of :func:`hgref.problems.mnist_mlp` (declared mode, exact oracle) and the same MLP with tanh
(own-dynamics mode, whose finite-difference reference needs a smooth loss):
:func:`case_problem` ``(case, activation)``.
"""
from __future__ import annotations

import fnmatch
import functools
from typing import NamedTuple

import autograd.numpy as anp
import numpy as np

from .. import dynamics as _dynamics

__all__ = ["Case", "MATRIX", "EXTRAS", "BATTERY", "COLUMNS", "DYNAMICS", "Unsupported", "get_cases",
           "case_problem", "ACTIVATIONS"]

STEPS, FIRST_STEPS = 25, 8
HIDDEN = 8
FULL_BATCH = 128
MINIBATCH = (640, 256, 64)     # train images, validation images, batch size
ACTIVATIONS = ("relu", "tanh")
DYNAMICS = ("sgd", "heavy_ball", "nesterov", "adam", "adamw")
COLUMNS = ("base", "lr_changes", "weight_decay", "validation", "first_steps")
_ETA = {"sgd": 0.3, "heavy_ball": 0.05, "nesterov": 0.05, "adam": 0.003, "adamw": 0.003}


class Unsupported(Exception):
    """Raise from an optimizer/rule factory when it cannot run a case (e.g. SGD-only code
    on an Adam case): the case is reported as ``unsupported`` instead of failing."""


class Case(NamedTuple):
    """One reference case: a dynamics, a schedule, a problem and param groups."""

    name: str
    description: str          # what it exercises
    dynamics: str             # "sgd", "heavy_ball", "nesterov", "adam" or "adamw"
    hyperparams: dict         # keyword arguments of that hgref.dynamics factory
    schedule: tuple           # η_t written before step t (group 0); len = number of steps
    minibatch: bool           # False: full batch, E = L; True: minibatches, E = validation loss
    seed: int = 0             # minibatch sequence
    group_scales: tuple = (1.0,)   # η of param group k is group_scales[k]·schedule[t]
    column: str = "extra"     # matrix column (COLUMNS), or "extra"

    def __repr__(self):
        return f"Case({self.name!r}: {self.description})"

    @property
    def steps(self) -> int:
        return len(self.schedule)

    @property
    def n_groups(self) -> int:
        return len(self.group_scales)

    @property
    def matrix(self) -> bool:
        return self.column in COLUMNS

    @property
    def schedules(self) -> np.ndarray:
        """η^k_t written into group k before step t; shape (n_groups, steps)."""
        return np.outer(self.group_scales, self.schedule)

    @property
    def config(self) -> dict:
        """torch-style settings for your factory: ``dynamics``, ``lr`` (η_0 of group 0),
        ``weight_decay`` (decoupled for ``adamw``), ``groups`` (number of param groups), and
        ``momentum``/``dampening``/``nesterov`` or ``betas``/``eps``/``eps_root``."""
        hp = dict(self.hyperparams)
        out = {"dynamics": self.dynamics, "lr": self.schedule[0], "groups": self.n_groups,
               "weight_decay": hp.pop("weight_decay", 1e-2 if self.dynamics == "adamw" else 0.0)}
        if self.dynamics in ("adam", "adamw"):
            out.update(betas=(hp.get("b1", 0.9), hp.get("b2", 0.999)), eps=hp.get("eps", 1e-8),
                       eps_root=hp.get("eps_root", 0.0))
        else:
            out.update(momentum=hp.get("momentum", 0.0), dampening=hp.get("dampening", 0.0),
                       nesterov=self.dynamics == "nesterov")
        return out

    def make_dynamics(self):
        """The :mod:`hgref.dynamics` object of this case."""
        return _dynamics.get_dynamics(self.dynamics, **self.hyperparams)

    def problem(self, data_dir=None, activation="relu"):
        """The NumPy :class:`hgref.problems.Problem` (built once per data directory)."""
        return case_problem(self, activation, data_dir)

    def data(self, data_dir=None):
        """``(batch(t) -> (X, y), (X_E, y_E), widths)``: minibatch t, the data E is the mean
        cross-entropy of, and the layer widths (784, 8, 10) — for drivers in other frameworks."""
        problem, objective_data = _problem(self.minibatch, "relu", data_dir)
        return (lambda t: problem.batch(t, self.seed)), objective_data, tuple(problem.info["layers"])

    def group_masks(self, widths=(784, HIDDEN, 10)) -> np.ndarray:
        """Boolean masks (n_groups, d) of the flat weights in each param group: one group holds
        everything; two groups are layer 1 (W_1, b_1) and layer 2 (W_2, b_2)."""
        d = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
        if self.n_groups == 1:
            return np.ones((1, d), dtype=bool)
        n1 = widths[0] * widths[1] + widths[1]
        masks = np.zeros((2, d), dtype=bool)
        masks[0, :n1], masks[1, n1:] = True, True
        return masks


def _wobble(base, steps=STEPS):
    """η_t = base·(1 + ½ cos 2t): changes by up to ±50% from one step to the next."""
    return tuple(float(x) for x in base * (1.0 + 0.5 * np.cos(2.0 * np.arange(steps))))


def _warmup(base, steps=FIRST_STEPS):
    return tuple(float(base * min(1.0, (t + 1) / 4)) for t in range(steps))


def _matrix_row(dyn):
    eta = _ETA[dyn]
    hp = {"heavy_ball": {"momentum": 0.9}, "nesterov": {"momentum": 0.9},
          "adamw": {"weight_decay": 0.01}}.get(dyn, {})
    first = {"heavy_ball": {"momentum": 0.9, "dampening": 0.5}, "nesterov": {"momentum": 0.99},
             "adam": {"b1": 0.5, "b2": 0.9}, "adamw": {"b1": 0.5, "b2": 0.9, "weight_decay": 0.01}}
    first_text = {"sgd": "warm-up over the first steps", "heavy_ball": "dampening 0.5: torch's "
                  "first buffer is g, undamped", "nesterov": "momentum 0.99 from the first step",
                  "adam": "betas (0.5, 0.9): bias corrections of the first steps",
                  "adamw": "betas (0.5, 0.9): bias corrections of the first steps"}[dyn]
    wd = {"weight_decay": 0.1} if dyn == "adamw" else {"weight_decay": 0.01}
    wd_text = "decoupled weight decay 0.1 (lambda*z_w, not in g)" if dyn == "adamw" else \
        "weight decay 0.01 (lambda*z_w in the tangent)"
    label = {"sgd": "SGD", "heavy_ball": "heavy-ball 0.9", "nesterov": "Nesterov 0.9",
             "adam": "Adam (torch)", "adamw": "AdamW (torch), lambda 0.01"}[dyn]
    rows = [
        (dyn, f"baseline: {label}, constant lr, full batch (E = L)", [eta] * STEPS, False, hp, "base"),
        (f"{dyn}_lr_changes", "lr changes every step (stale lr in the tangent)", _wobble(eta), False,
         hp, "lr_changes"),
        (f"{dyn}_weight_decay", wd_text, [eta] * STEPS, False, {**hp, **wd}, "weight_decay"),
        (f"{dyn}_validation", "minibatches, E = validation loss != L_t", [eta] * STEPS, True, hp,
         "validation"),
        (f"{dyn}_first_steps", f"8 warm-up steps; {first_text}", _warmup(eta), False,
         first.get(dyn, hp), "first_steps"),
    ]
    return tuple(Case(n, text, dyn, dict(h), tuple(s), mb, column=col) for n, text, s, mb, h, col in rows)


MATRIX = tuple(c for dyn in DYNAMICS for c in _matrix_row(dyn))

EXTRAS = (
    Case("adam_eps_root", "Adam, eps_root 1e-8 inside the sqrt (optax)", "adam",
         {"eps": 1e-8, "eps_root": 1e-8}, tuple([0.003] * STEPS), False),
    Case("nesterov_all", "Nesterov + weight decay + changing lr + validation E", "nesterov",
         {"momentum": 0.9, "weight_decay": 0.01}, _wobble(0.05), True),
    Case("adam_all", "Adam (eps_root) + weight decay + changing lr + validation E", "adam",
         {"eps": 1e-8, "eps_root": 1e-8, "weight_decay": 0.01}, _wobble(0.003), True),
    Case("adamw_all", "AdamW 0.1 + changing lr + validation E", "adamw", {"weight_decay": 0.1},
         _wobble(0.003), True),
    Case("sgd_groups", "two param groups (layer 1: lr, layer 2: lr/2), lr changes: every "
         "group's lr and estimate", "sgd", {}, _wobble(0.3), False, group_scales=(1.0, 0.5)),
    Case("adam_groups", "two param groups (layer 1: lr, layer 2: 2 lr), validation E", "adam", {},
         tuple([0.003] * STEPS), True, group_scales=(1.0, 2.0)),
)

BATTERY = MATRIX + EXTRAS


def get_cases(names=None, cases=BATTERY):
    """The cases named in ``names`` (a list or a comma-separated string of case names, matrix
    columns such as ``"first_steps"``, or shell patterns such as ``"adam*"``; None: all)."""
    if names is None:
        return tuple(cases)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    known = {c.name: c for c in cases}
    out = []
    for n in names:
        if n in known:
            out.append(known[n])
        elif n in COLUMNS:
            out += [c for c in cases if c.column == n]
        elif any(ch in n for ch in "*?["):
            out += [c for c in cases if fnmatch.fnmatchcase(c.name, n)]
        else:
            raise ValueError(f"unknown case {n!r}; accepted values: {', '.join(known)}, a column "
                             f"({', '.join(COLUMNS)}) or a pattern such as 'adam*'")
    return tuple({c.name: c for c in out}.values())


def case_problem(case, activation="relu", data_dir=None):
    """The NumPy problem of ``case`` with ``activation`` ``"relu"`` (hgref.problems.mnist_mlp)
    or ``"tanh"`` (the same data and w0; autograd derivatives)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; accepted values: 'relu', 'tanh'")
    return _problem(case.minibatch, activation, data_dir)[0]


def _tanh_cross_entropy(w, X, y, widths):
    a, o = X, 0
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        W = anp.reshape(w[o:o + n_in * n_out], (n_in, n_out))
        b = w[o + n_in * n_out:o + n_in * n_out + n_out]
        o += n_in * n_out + n_out
        a = anp.dot(a, W) + b
        if i < len(widths) - 2:
            a = anp.tanh(a)
    m = anp.max(a, axis=1, keepdims=True)       # logsumexp without scipy's slower generic path
    lse = m[:, 0] + anp.log(anp.sum(anp.exp(a - m), axis=1))
    return anp.mean(lse - a[np.arange(len(y)), y])


@functools.lru_cache(maxsize=8)
def _problem(minibatch, activation, data_dir):
    from ..data import load_mnist, split_indices
    from ..problems import make_problem, mnist_mlp

    if not minibatch:
        p = mnist_mlp(hidden=(HIDDEN,), batch_size=FULL_BATCH, sizes=(FULL_BATCH, 1, 1), data_dir=data_dir)
        objective_data = p.batch(0, 0)
    else:
        n_train, n_val, batch_size = MINIBATCH
        p = mnist_mlp(hidden=(HIDDEN,), batch_size=batch_size, sizes=(n_train, n_val, 1), data_dir=data_dir)
        images, labels = load_mnist(p.info["split"], data_dir)
        val = split_indices(images.shape[0], tuple(p.info["sizes"]), p.info["split_seed"])[1]
        objective_data = (images[val], labels[val])
    batch = (lambda t, seed: objective_data) if not minibatch else p.batch
    if activation == "relu":
        if not minibatch:
            p = p._replace(name=f"mnist_mlp{HIDDEN}_fullbatch", batch=batch,
                           objective=lambda w: p.loss(w, objective_data),
                           objective_grad=lambda w: p.value_and_grad(w, objective_data)[1],
                           objective_is_loss=True)
        return p, objective_data
    widths = tuple(p.info["layers"])
    XE, yE = objective_data
    q = make_problem(f"mnist_mlp{HIDDEN}_tanh" + ("" if minibatch else "_fullbatch"), p.w0,
                     lambda w, b: _tanh_cross_entropy(w, b[0], b[1], widths),
                     objective=lambda w: _tanh_cross_entropy(w, XE, yE, widths), batch=batch,
                     info=dict(p.info, activation="tanh"))
    return q._replace(objective_is_loss=not minibatch), objective_data
