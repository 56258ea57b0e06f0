"""MARTHE §6 experiments: VGG-11-BN on CIFAR-10 (SGDM) and ResNet-18 on CIFAR-100 (Adam).

``python -m hgref.torch.cifar --dataset cifar10 --method marthe --seed 0`` trains one run and
writes ``<out>/<dataset>-<method>-seed<k>.json`` (η per step, validation loss/accuracy per
epoch, final test accuracy). §6 settings: batch 128, 200 epochs, L = cross-entropy + weight
decay 5·10⁻⁴ (in the dynamics, torch convention), E = unregularised cross-entropy on
validation data; SGDM μ = 0.9, η0 = 0.1; Adam η0 = 3·10⁻⁴; HD β = 10⁻⁶, RTHO β = 10⁻⁸;
staircase ×0.1 every 60 epochs, exponential ×0.99 per epoch, SGDR T0 = 10 epochs, Tmult = 2;
5 seeds (``--seed 0 … 4``).

Choices the paper leaves open (stated here, overridable): the last 5000 training images are
the validation set (E); ∇E at every step comes from one validation minibatch of 128, cycled,
with the network in ``eval()`` mode (BatchNorm running statistics, not updated by E); MARTHE's
β (step size of the β update, β0 = 0) defaults to 10⁻⁸ — the paper picks it by decimating
from a large value until training does not diverge (``--hyper-lr``). No data augmentation.

Data: the CIFAR "python version" archives extracted under ``--data-dir``
(``cifar-10-batches-py/`` or ``cifar-100-python/``); nothing is downloaded. The development
machines have no CIFAR files: ``--smoke`` runs a few steps on random tensors of CIFAR shape.
"""
from __future__ import annotations

import argparse
import os
import pickle
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..io import atomic_write_json
from .models import resnet18, vgg11_bn
from .optim import HypergradientOptimizer
from .schedules import make_scheduler

__all__ = ["CONFIGS", "METHODS", "load_cifar", "train", "main"]

CONFIGS = {
    "cifar10": dict(model=vgg11_bn, classes=10, dynamics="heavy_ball", lr=0.1),
    "cifar100": dict(model=resnet18, classes=100, dynamics="adam", lr=3e-4),
}
METHODS = ("constant", "exponential", "staircase", "sgdr", "hd", "rtho", "marthe")
HYPER_LR = {"hd": 1e-6, "rtho": 1e-8, "marthe": 1e-8}
_FILES = {"cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
          "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels")}
_MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32).reshape(1, 3, 1, 1)
_STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32).reshape(1, 3, 1, 1)


def load_cifar(dataset, data_dir):
    """(X_train, y_train, X_test, y_test) as normalised float32 NCHW arrays and int64 labels."""
    folder, train_files, test_files, key = _FILES[dataset]
    root = Path(data_dir) / folder

    def read(names):
        xs, ys = [], []
        for name in names:
            path = root / name
            if not path.is_file():
                raise FileNotFoundError(f"CIFAR file {path} not found: extract the python version of "
                                        f"{dataset} (https://www.cs.toronto.edu/~kriz/cifar.html) "
                                        f"under --data-dir {data_dir}")
            with open(path, "rb") as f:
                d = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[key], dtype=np.int64))
        x = np.concatenate(xs).astype(np.float32) / 255.0
        return (x - _MEAN) / _STD, np.concatenate(ys)

    return (*read(train_files), *read(test_files))


def _random_cifar(classes, n_train, n_test, seed):
    g = np.random.default_rng(seed)
    return (g.standard_normal((n_train, 3, 32, 32), dtype=np.float32), g.integers(0, classes, n_train),
            g.standard_normal((n_test, 3, 32, 32), dtype=np.float32), g.integers(0, classes, n_test))


@torch.no_grad()
def _evaluate(model, X, y, device, batch=500):
    model.eval()
    loss = correct = 0.0
    for i in range(0, len(X), batch):
        xb, yb = torch.as_tensor(X[i:i + batch], device=device), torch.as_tensor(y[i:i + batch], device=device)
        out = model(xb)
        loss += float(F.cross_entropy(out, yb, reduction="sum"))
        correct += float((out.argmax(1) == yb).sum())
    model.train()
    return loss / len(X), correct / len(X)


def train(dataset, method, seed=0, epochs=200, batch_size=128, weight_decay=5e-4, hyper_lr=None,
          n_val=5000, data=None, device="cpu", max_steps=None, log=print):
    """One §6 run; returns the results dict (see module docstring)."""
    cfg = CONFIGS[dataset]
    if method not in METHODS:
        raise ValueError(f"Invalid method: {method!r}; accepted values: {', '.join(map(repr, METHODS))}")
    torch.manual_seed(seed)
    Xtr, ytr, Xte, yte = data
    Xva, yva, Xtr, ytr = Xtr[-n_val:], ytr[-n_val:], Xtr[:-n_val], ytr[:-n_val]
    model = cfg["model"](cfg["classes"]).to(device)
    online = method in ("hd", "rtho", "marthe")
    rule = method if online else "constant"
    kw = dict(hyper_lr=HYPER_LR[method] if hyper_lr is None else hyper_lr) if online else {}
    opt = HypergradientOptimizer(model.parameters(), cfg["lr"], cfg["dynamics"], rule, momentum=0.9,
                                 weight_decay=weight_decay, objective="validation" if online else None,
                                 sync_lr=False, **kw)
    steps_per_epoch = len(Xtr) // batch_size
    sched = {"exponential": lambda: make_scheduler(opt, "exponential", gamma=0.99, every=steps_per_epoch),
             "staircase": lambda: make_scheduler(opt, "staircase", every=60 * steps_per_epoch, factor=0.1),
             "sgdr": lambda: make_scheduler(opt, "sgdr", T0=10 * steps_per_epoch, Tmult=2)}.get(method)
    sched = sched() if sched else None
    tangent = method in ("rtho", "marthe")
    gen = np.random.default_rng(seed)
    val_at = [0]
    history, t, start = [], 0, time.time()

    def objective():
        i = val_at[0] % (len(Xva) // batch_size)
        val_at[0] += 1
        xb = torch.as_tensor(Xva[i * batch_size:(i + 1) * batch_size], device=device)
        yb = torch.as_tensor(yva[i * batch_size:(i + 1) * batch_size], device=device)
        model.eval()
        try:
            return F.cross_entropy(model(xb), yb)
        finally:
            model.train()

    for epoch in range(epochs):
        order = gen.permutation(len(Xtr))
        for k in range(steps_per_epoch):
            idx = order[k * batch_size:(k + 1) * batch_size]
            xb, yb = torch.as_tensor(Xtr[idx], device=device), torch.as_tensor(ytr[idx], device=device)

            def closure():
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward(create_graph=tangent)
                return loss

            opt.step(closure, objective_closure=objective if online else None)
            if sched is not None:
                sched.step()
            t += 1
            if max_steps is not None and t >= max_steps:
                break
        val_loss, val_acc = _evaluate(model, Xva, yva, device)
        history.append({"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc, "lr": opt.param_groups[0]["lr"],
                        "seconds": time.time() - start})
        log(f"{dataset}/{method}/seed{seed} epoch {epoch}: val loss {val_loss:.4f} acc {val_acc:.4f} "
            f"lr {opt.param_groups[0]['lr']:.3g}")
        if max_steps is not None and t >= max_steps:
            break
    test_loss, test_acc = _evaluate(model, Xte, yte, device)
    return {"dataset": dataset, "method": method, "seed": seed, "steps": t, "epochs": history,
            "test_loss": test_loss, "test_acc": test_acc, "lr": opt.lr_history().tolist(),
            "config": {"model": cfg["model"].__name__, "dynamics": cfg["dynamics"], "eta0": cfg["lr"],
                       "batch_size": batch_size, "weight_decay": weight_decay, "n_val": n_val,
                       "hyper_lr": kw.get("hyper_lr")}}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m hgref.torch.cifar", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=tuple(CONFIGS), default="cifar10")
    p.add_argument("--method", choices=METHODS, default="marthe")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hyper-lr", type=float, default=None, help="β (default: HD 1e-6, RTHO 1e-8, MARTHE 1e-8)")
    p.add_argument("--data-dir", default=os.environ.get("CIFAR_DATA", "data"))
    p.add_argument("--out", default="results/cifar")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="a few steps on random CIFAR-shaped tensors")
    args = p.parse_args(argv)
    cfg = CONFIGS[args.dataset]
    if args.smoke:
        data = _random_cifar(cfg["classes"], 16, 8, args.seed)
        result = train(args.dataset, args.method, args.seed, epochs=1, batch_size=4, n_val=8, data=data,
                       device=args.device, max_steps=2, hyper_lr=args.hyper_lr)
    else:
        data = load_cifar(args.dataset, args.data_dir)
        result = train(args.dataset, args.method, args.seed, epochs=args.epochs, batch_size=args.batch_size,
                       hyper_lr=args.hyper_lr, data=data, device=args.device)
    path = Path(args.out) / f"{args.dataset}-{args.method}-seed{args.seed}{'-smoke' if args.smoke else ''}.json"
    atomic_write_json(path, result)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
