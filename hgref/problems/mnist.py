"""MNIST classification with ReLU MLPs and softmax cross-entropy (MARTHE §5).

The weights are one flat float64 vector: for each layer ``W`` (in × out, row-major)
then ``b`` (out). A batch is ``(X, y)`` with ``X`` float64 (B, 784) and ``y`` int64
(B,). ``loss`` is written with ``autograd.numpy``; ``value_and_grad``,
``grad_and_hvp`` and ``objective_grad`` are hand-written backprop and Pearlmutter
R-operator passes that agree with autograd to rounding error and share one
forward pass.
"""
from __future__ import annotations

import functools
import math
import numbers

import autograd.numpy as anp
import numpy as np
from autograd.scipy.special import logsumexp

from .._checks import check_choice, check_int, check_scalar
from ..data import load_mnist, split_indices
from .base import make_problem

__all__ = ["mnist_mlp", "mnist_logreg"]

_INITS = ("glorot", "he", "zeros")


def _views(w, shapes):
    """[(W, b), ...] as views into the flat vector ``w``."""
    out, o = [], 0
    for n_in, n_out in shapes:
        W = w[o:o + n_in * n_out].reshape(n_in, n_out)
        o += n_in * n_out
        out.append((W, w[o:o + n_out]))
        o += n_out
    return out


def _cross_entropy(w, X, y, shapes):
    """Mean softmax cross-entropy, in autograd.numpy (the reference for the fast passes)."""
    a, o = X, 0
    for i, (n_in, n_out) in enumerate(shapes):
        W = anp.reshape(w[o:o + n_in * n_out], (n_in, n_out))
        b = w[o + n_in * n_out:o + n_in * n_out + n_out]
        o += n_in * n_out + n_out
        z = anp.dot(a, W) + b
        a = z * (z > 0) if i < len(shapes) - 1 else z  # ReLU with derivative 0 at 0
    return anp.mean(logsumexp(a, axis=1) - a[np.arange(len(y)), y])


def _forward(layers, X):
    """Activations [X, a_1, ..., a_{L-1}] and logits."""
    acts = [X]
    for W, b in layers[:-1]:
        z = acts[-1] @ W
        z += b
        acts.append(np.maximum(z, 0.0, out=z))
    W, b = layers[-1]
    logits = acts[-1] @ W
    logits += b
    return acts, logits


def _softmax_ce(logits, y):
    """(mean cross-entropy, softmax probabilities)."""
    m = logits.max(axis=1, keepdims=True)
    p = np.exp(logits - m)
    s = p.sum(axis=1, keepdims=True)
    p /= s
    loss = np.mean(np.log(s[:, 0]) + m[:, 0] - logits[np.arange(len(y)), y])
    return float(loss), p


def _value_and_grad(w, X, y, shapes, l2):
    layers = _views(w, shapes)
    acts, logits = _forward(layers, X)
    loss, delta = _softmax_ce(logits, y)
    delta[np.arange(len(y)), y] -= 1.0
    delta /= len(y)
    g = np.empty_like(w)
    gl = _views(g, shapes)
    for l in range(len(shapes) - 1, -1, -1):
        (W, _), (gW, gb) = layers[l], gl[l]
        np.matmul(acts[l].T, delta, out=gW)
        np.sum(delta, axis=0, out=gb)
        if l:
            delta = delta @ W.T
            delta *= acts[l] > 0
    if l2:
        loss += 0.5 * l2 * float(w @ w)
        g += l2 * w
    return loss, g


def _grad_and_hvp(w, X, y, v, shapes, l2, with_grad=True):
    """Forward, R-forward, backward and R-backward passes (Pearlmutter 1994).

    Hidden activations and their R-values are stacked as rows ``[a; Ra]`` and the
    backpropagated errors as ``[Rδ; δ]``, so that ``Ra Wᵀ``-type products pair up
    into one matmul of 2B rows: ``[a; Ra] W``, ``[a; Ra]ᵀ [Rδ; δ] = aᵀRδ + Raᵀδ``
    and ``[Rδ; δ] Wᵀ``. ``with_grad=False`` (the reverse-mode adjoint, which has ∇L_t
    from its forward sweep) skips the weight gradients ``aᵀδ`` — on 784-32-10 one of
    the four 784-row matmuls — and returns ``(loss, None, h)``.
    """
    B, L = X.shape[0], len(shapes)
    layers, vlayers = _views(w, shapes), _views(v, shapes)
    (W, b), (V, c) = layers[0], vlayers[0]
    z = X @ W
    z += b
    rz = X @ V
    rz += c
    stacks = []                               # [(a; Ra) stacked, ReLU mask] per hidden layer
    for l in range(1, L):
        mask = z > 0
        ar = np.empty((2 * B, z.shape[1]))
        np.multiply(z, mask, out=ar[:B])
        np.multiply(rz, mask, out=ar[B:])
        stacks.append((ar, mask))
        (W, b), (V, c) = layers[l], vlayers[l]
        zz = ar @ W                           # [a W; Ra W]
        z, rz = zz[:B], zz[B:]
        z += b
        rz += ar[:B] @ V
        rz += c
    loss, p = _softmax_ce(z, y)
    d = np.empty((2 * B, p.shape[1]))         # [Rδ; δ] at the logits
    np.multiply(p, rz - np.sum(p * rz, axis=1, keepdims=True), out=d[:B])
    d[B:] = p
    d[B + np.arange(B), y] -= 1.0
    d /= B
    h = np.empty_like(w)
    g = np.empty_like(w) if with_grad else None
    hl = _views(h, shapes)
    gl = _views(g, shapes) if with_grad else None
    for l in range(L - 1, -1, -1):
        (hW, hb), W = hl[l], layers[l][0]
        a = stacks[l - 1][0] if l else X
        if l:
            np.matmul(a.T, d, out=hW)         # aᵀRδ + Raᵀδ
        else:
            np.matmul(X.T, d[:B], out=hW)
        np.sum(d[:B], axis=0, out=hb)
        if with_grad:
            gW, gb = gl[l]
            np.matmul(a[:B].T, d[B:], out=gW)
            np.sum(d[B:], axis=0, out=gb)
        if l:
            dn = d @ W.T                      # [Rδ Wᵀ; δ Wᵀ]
            dn[:B] += d[B:] @ vlayers[l][0].T
            dn.reshape(2, B, -1)[...] *= stacks[l - 1][1]   # ReLU'' = 0: no Rz term
            d = dn
    if l2:
        loss += 0.5 * l2 * float(w @ w)
        h += l2 * v
        if with_grad:
            g += l2 * w
    return loss, g, h


def _evaluate(w, X, y, shapes):
    """(mean cross-entropy, accuracy) on (X, y)."""
    _, logits = _forward(_views(w, shapes), X)
    loss, _ = _softmax_ce(logits, y)
    return loss, float(np.mean(np.argmax(logits, axis=1) == y))


def _init_weights(shapes, init, seed):
    rng, parts = np.random.default_rng(seed), []
    for n_in, n_out in shapes:
        if init == "glorot":
            lim = math.sqrt(6.0 / (n_in + n_out))
            W = rng.uniform(-lim, lim, size=(n_in, n_out))
        elif init == "he":
            W = rng.normal(0.0, math.sqrt(2.0 / n_in), size=(n_in, n_out))
        else:
            W = np.zeros((n_in, n_out))
        parts += [W.ravel(), np.zeros(n_out)]
    return np.concatenate(parts)


def mnist_mlp(hidden=(32,), *, seed=0, batch_size=100, l2=0.0, init="glorot", data_dir=None,
              sizes=(7000, 700, 2300), split_seed=None, split="test"):
    """ReLU MLP 784-hidden-10 on an MNIST subset, trained by minibatches.

    ``L_t(w)`` = mean cross-entropy on minibatch t + (l2/2)·||w||²; ``E(w)`` = mean
    cross-entropy on the whole validation subset (no L2).

    Args:
      hidden: sizes of the hidden layers; ``()`` is logistic regression.
      seed: draws ``w0``.
      batch_size: examples per minibatch; an epoch is ``n_train // batch_size``
        steps of a fresh permutation ``default_rng([seed, epoch])`` (the remainder
        of each permutation is dropped), so ``batch(t, seed)`` is deterministic.
      l2: weight decay in the training loss only.
      init: ``"glorot"`` (uniform weights, zero biases; MARTHE §5), ``"he"``
        (normal) or ``"zeros"`` (sensible for logistic regression only).
      data_dir: see :func:`hgref.data.load_mnist`.
      sizes: (train, validation, test) sizes drawn from the MNIST ``split``.
      split_seed: seed of that draw; default ``seed``.
      split: MNIST file set the subsets come from, ``"test"`` or ``"train"``.

    ``metrics(w)`` gives ``{train,val,test}_{loss,acc}`` (cross-entropy without L2).
    """
    hidden = (hidden,) if isinstance(hidden, numbers.Integral) else tuple(hidden)
    hidden = tuple(check_int(f"hidden[{i}]", h, low=1) for i, h in enumerate(hidden))
    seed = check_int("seed", seed)
    l2 = check_scalar("l2", l2)
    check_choice("init", init, _INITS)
    split_seed = seed if split_seed is None else check_int("split_seed", split_seed)
    sizes = tuple(sizes)
    if len(sizes) != 3:
        raise ValueError(f"sizes must be (train, validation, test) sizes, got {sizes}")
    sizes = tuple(check_int(f"sizes[{i}]", n, low=1) for i, n in enumerate(sizes))
    batch_size = check_int("batch_size", batch_size, low=1)   # every argument checked before loading
    if batch_size > sizes[0]:
        raise ValueError(f"batch_size must be <= the training size {sizes[0]}, got {batch_size}")
    images, labels = load_mnist(split, data_dir)
    idx = split_indices(images.shape[0], sizes, split_seed)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = ((images[i], labels[i]) for i in idx)
    n_train = Xtr.shape[0]
    steps_per_epoch = n_train // batch_size
    widths = (images.shape[1],) + hidden + (10,)
    shapes = tuple(zip(widths[:-1], widths[1:]))

    def loss(w, batch):
        X, y = batch
        value = _cross_entropy(w, X, y, shapes)
        return value + 0.5 * l2 * anp.dot(w, w) if l2 else value

    def objective(w):
        return _cross_entropy(w, Xva, yva, shapes)

    @functools.lru_cache(maxsize=4)
    def _epoch_order(seed, epoch):
        order = np.random.default_rng([seed, epoch]).permutation(n_train)
        order.setflags(write=False)
        return order

    def batch(t, seed):
        t, seed = check_int("t", t), check_int("seed", seed)
        epoch, k = divmod(t, steps_per_epoch)
        i = _epoch_order(seed, epoch)[k * batch_size:(k + 1) * batch_size]
        return Xtr[i], ytr[i]

    def value_and_grad(w, b):
        return _value_and_grad(w, b[0], b[1], shapes, l2)

    def grad_and_hvp(w, b, v):
        return _grad_and_hvp(w, b[0], b[1], v, shapes, l2)

    def hvp(w, b, v):
        return _grad_and_hvp(w, b[0], b[1], v, shapes, l2, with_grad=False)[2]

    grad_and_hvp.hvp = hvp        # HVP-only pass, used by hgref.linearize.adjoint

    def objective_grad(w):
        return _value_and_grad(w, Xva, yva, shapes, 0.0)[1]

    def metrics(w):
        out = {}
        for name, (X, y) in (("train", (Xtr, ytr)), ("val", (Xva, yva)), ("test", (Xte, yte))):
            out[f"{name}_loss"], out[f"{name}_acc"] = _evaluate(w, X, y, shapes)
        return out

    name = "mnist_logreg" if not hidden else "mnist_mlp" + "-".join(map(str, hidden))
    info = {"hidden": list(hidden), "layers": list(widths), "seed": seed,
            "batch_size": batch_size, "l2": l2, "init": init, "sizes": list(sizes),
            "split_seed": split_seed, "split": split, "steps_per_epoch": steps_per_epoch}
    return make_problem(name, _init_weights(shapes, init, seed), loss, objective=objective,
                        batch=batch, value_and_grad=value_and_grad, grad_and_hvp=grad_and_hvp,
                        objective_grad=objective_grad, metrics=metrics, info=info)


def mnist_logreg(*, seed=0, batch_size=100, l2=0.0, init="glorot", data_dir=None,
                 sizes=(7000, 700, 2300), split_seed=None, split="test"):
    """Multinomial logistic regression on MNIST: :func:`mnist_mlp` with ``hidden=()``."""
    return mnist_mlp((), seed=seed, batch_size=batch_size, l2=l2, init=init, data_dir=data_dir,
                     sizes=sizes, split_seed=split_seed, split=split)
