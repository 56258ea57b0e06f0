"""hgref.torch under DistributedDataParallel (gloo, 2 CPU processes), float64.

Every rank must hold the same η at every step, and the weights must equal a single-process
run on the concatenated batch. HD uses DDP's averaged gradients as they are; MARTHE runs
forward/backward in ``no_sync()`` and lets the optimizer average gradient, HVP and ∇E
over the process group (see the module docstring of hgref.torch.optim).
"""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn import functional as F

from hgref.torch import HypergradientOptimizer
from hgref.torch.models import MLP

STEPS, B, WIDTHS = 8, 16, (12, 8, 3)
CONFIGS = {
    "hd": dict(dynamics="nesterov", rule="hd", hyper_lr=1e-2, objective="validation", weight_decay=1e-3),
    "marthe": dict(dynamics="adam", rule="marthe", hyper_lr=1e-4, weight_decay=1e-3),
}


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(STEPS, 2 * B, WIDTHS[0], generator=g, dtype=torch.float64)
    y = torch.randint(0, WIDTHS[-1], (STEPS, 2 * B), generator=g)
    Xv = torch.randn(2 * B, WIDTHS[0], generator=g, dtype=torch.float64)
    yv = torch.randint(0, WIDTHS[-1], (2 * B,), generator=g)
    return X, y, Xv, yv


def _model():
    return MLP(WIDTHS, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _train(model, opt, X, y, Xv, yv, tangent, ddp=None):
    for t in range(STEPS):
        def closure():
            opt.zero_grad()
            if ddp is not None and tangent:
                with ddp.no_sync():
                    loss = F.cross_entropy(ddp(X[t]), y[t])
                    loss.backward(create_graph=True)
            else:
                loss = F.cross_entropy((ddp or model)(X[t]), y[t])
                loss.backward(create_graph=tangent)
            return loss

        opt.step(closure, objective_closure=lambda: F.cross_entropy(model(Xv), yv))


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        X, y, Xv, yv = _data()
        shard = slice(rank * B, (rank + 1) * B)
        for name, cfg in CONFIGS.items():
            model = _model()
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            # process_group: ∇E of each rank's validation shard is averaged (and, for MARTHE,
            # the local gradient and HVP; HD's DDP-averaged gradient is left as it is)
            opt = HypergradientOptimizer(model.parameters(), lr=0.05, **cfg,
                                         process_group=dist.group.WORLD)
            _train(model, opt, X[:, shard], y[:, shard], Xv[shard], yv[shard],
                   cfg["rule"] == "marthe", ddp)
            torch.save({"lr": opt.lr_history(), "w": model.flat()},
                       os.path.join(out_dir, f"{name}-{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_ranks_equal_single_process(tmp_path):
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")   # fork: no re-import of torch in the children
    for name, cfg in CONFIGS.items():
        r0, r1 = (torch.load(tmp_path / f"{name}-{r}.pt") for r in range(2))
        assert torch.equal(r0["lr"], r1["lr"]), name          # same η on every rank, every step
        assert torch.equal(r0["w"], r1["w"]), name
        model = _model()
        opt = HypergradientOptimizer(model.parameters(), lr=0.05, **cfg)
        _train(model, opt, *_data(), cfg["rule"] == "marthe")
        single_lr, single_w = opt.lr_history(), model.flat()
        assert single_lr.std() > 0, name
        assert float((r0["lr"] - single_lr).abs().max() / single_lr.abs().max()) <= 1e-10, name
        assert float((r0["w"] - single_w).abs().max() / single_w.abs().max()) <= 1e-10, name
