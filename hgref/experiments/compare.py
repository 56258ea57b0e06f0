"""``hgref compare``: hgref's online rules against the learning-rate-free optimizers, with the oracle as yardstick.

Tasks (same problems, splits, initial weights and minibatch order per seed as the commands they
come from; built by those commands' own functions):

* ``marthe_mlp`` — MARTHE §5 (``hgref schedules``): ReLU MLP 784-50-50-10 (paper 500-500), SGD,
  batch 100, T = 512, E = validation loss, η_0 = 0.01. hgref's methods run the SGD dynamics.
* ``hd_logreg``, ``hd_mlp`` — the HD papers' MNIST tasks (``hgref hd``): logistic regression and a
  ReLU MLP 784-100-100-10 (paper 1000-1000), batch 128, 20 epochs, α_0 = 1e-3; hgref's methods
  run the Adam dynamics (HD with the training objective, as the HD papers; RTHO/MARTHE with E).

Methods, each with its authors' defaults and a small grid on the one knob its README names
(``GRIDS``; the table reports the grid value of lowest mean final validation loss, every value is
in the results): ``constant`` (grid of η), ``hd``, ``rtho`` (grid of β), ``marthe`` (adaptive μ and
β, β_0 = 0, grid of the β-update step), from hgref's torch bridge; ``prodigy`` (d_coef),
``dadapt_sgd``/``dadapt_adam`` (lr), ``schedulefree_sgd``/``schedulefree_adamw`` (lr; evaluated in
``optimizer.eval()`` mode), ``dog`` (reps_rel; evaluated at its polynomial-decay average),
``mechanic_sgd``/``mechanic_adam`` (no knob) — :mod:`hgref.torch.peers`. LRS-OPT's schedule (MARTHE
§5, the reference) comes from ``hgref schedules``' records ``<out>/schedules/runs/seed=<s>-lrs_opt.json``
of the same seeds; ``--lrs-opt`` runs the missing ones there (they are the same runs).

Per run: the effective learning rate η_t of every step (the step size the method applied, e.g.
d·lr for D-Adaptation), validation loss every ``eval_every`` steps, final train/validation/test
loss and accuracy (test: the held-out 2300 images), wall time per step over plain torch SGD in the
same process (``compare.wall.json``, kept out of the deterministic results file). On
``marthe_mlp``, **the oracle's view**: f_T and ‖∇f_T‖ (:func:`hgref.oracle.hypergradient`, NumPy,
float64) at the method's effective schedule, and f_T over LRS-OPT's f_T of the same seed — exact
for the methods whose iterates are scalar-η SGD (hgref's, D-Adapt SGD, DoG's iterates); for
Schedule-Free SGD and Mechanic SGD it is plain SGD run with their η_t ("transplanted"); for the
Adam-type ones it does not apply (their η_t is an Adam step size).

Sized for ~30 min on 2 cores: ``hgref compare --lrs-opt`` (318 runs, plus one 600-iteration LRS-OPT
optimisation; two others reused from ``hgref schedules``) measured 21 min 49 s wall at a 1-min load
of 1.2–2.8, 1584 CPU-seconds (2026-12-02).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import hd as hd_exp
from . import schedules as sch
from .runner import RunSpec, format_value, load_record, run_table, write_results

__all__ = ["Setup", "DEFAULT", "PAPER", "TINY", "TASKS", "METHODS", "GRIDS", "configure", "compare_specs",
           "compare_job", "run_compare", "add_compare_command"]

TASKS = ("marthe_mlp", "hd_logreg", "hd_mlp")
HGREF = ("constant", "hd", "rtho", "marthe")
PEER_KEYS = ("prodigy", "dadapt_sgd", "dadapt_adam", "schedulefree_sgd", "schedulefree_adamw", "dog",
             "mechanic_sgd", "mechanic_adam")
METHODS = HGREF + PEER_KEYS
_PEER_GRIDS = {"prodigy": (0.5, 1.0, 2.0), "dadapt_sgd": (0.5, 1.0, 2.0), "dadapt_adam": (0.5, 1.0, 2.0),
               "schedulefree_sgd": (0.3, 1.0, 3.0), "schedulefree_adamw": (0.001, 0.0025, 0.01),
               "dog": (1e-6, 1e-4), "mechanic_sgd": (None,), "mechanic_adam": (None,)}
#: family -> method -> knob values (None: the method's default, no knob).
GRIDS = {"sgd": dict(constant=(0.01, 0.03, 0.1, 0.3, 1.0), hd=sch.BETAS["hd"], rtho=sch.BETAS["rtho"],
                     marthe=sch.BETAS["marthe"], **_PEER_GRIDS),
         "adam": dict(constant=(1e-4, 3e-4, 1e-3, 3e-3), hd=(1e-8, hd_exp.BETA["adam"], 1e-6),
                      rtho=(1e-9, 1e-8, 1e-7), marthe=(1e-9, 1e-8, 1e-7), **_PEER_GRIDS)}
_TINY_GRIDS = {fam: {m: (g[len(g) // 2],) for m, g in grid.items()} for fam, grid in GRIDS.items()}
FAMILY = {"marthe_mlp": "sgd", "hd_logreg": "adam", "hd_mlp": "adam"}
DTYPES = ("float64", "float32")


class Setup(NamedTuple):
    """One configuration of ``hgref compare``."""

    tasks: tuple
    seeds: tuple
    methods: tuple
    schedules: sch.Setup     # the marthe_mlp task and LRS-OPT (hgref schedules' setup)
    hd: hd_exp.Setup         # the hd_* tasks (hgref hd's setup)
    grids: dict              # family -> method -> knob values
    eval_every: dict         # task -> steps between validation evaluations
    timing_steps: int        # plain-SGD steps timed per run (wall-time ratio)
    device: str
    dtype: str
    lrs_opt: bool            # run LRS-OPT where its records are missing


DEFAULT = Setup(TASKS, (0, 1, 2), METHODS, sch.DEFAULT, hd_exp.DEFAULT, GRIDS,
                {"marthe_mlp": 8, "hd_logreg": 11, "hd_mlp": 11}, 64, "cpu", "float64", False)
PAPER = DEFAULT._replace(seeds=tuple(range(sch.PAPER.n_seeds)), schedules=sch.PAPER, hd=hd_exp.PAPER)
TINY = DEFAULT._replace(seeds=(0,), schedules=sch.TINY, hd=hd_exp.TINY, grids=_TINY_GRIDS,
                        eval_every={"marthe_mlp": 4, "hd_logreg": 1, "hd_mlp": 1}, timing_steps=2)


def configure(base: Setup, *, seeds=None, tasks=None, methods=None, device=None, dtype=None, lrs_opt=None):
    """``base`` with the given fields replaced (None keeps the base value)."""
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; accepted values: {', '.join(DTYPES)}")
    for name, values, valid in (("tasks", tasks, TASKS), ("methods", methods, METHODS)):
        bad = [v for v in values or () if v not in valid]
        if bad:
            raise ValueError(f"unknown {name} {', '.join(map(repr, bad))}; accepted values: {', '.join(valid)}")
    changes = dict(seeds=seeds, tasks=tasks, methods=methods, device=device, dtype=dtype, lrs_opt=lrs_opt)
    return base._replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in changes.items() if v is not None})


def _task_problem(setup, task, seed):
    """The other command's own run config of ``task`` and ``seed`` (a constant-η run)."""
    if task == "marthe_mlp":
        specs = sch.schedule_specs(setup.schedules._replace(seeds=(seed,), methods=("constant",)))
        return dict(specs[0].config), setup.schedules.eta0, setup.schedules.steps
    model = task.split("_")[1]
    h = setup.hd._replace(seeds=(seed,), models=(model,), ops=("adam",), lops=("none",), alpha0s=(), grid=False)
    cfg = dict(hd_exp.hd_specs(h)[0].config)
    return cfg, setup.hd.alpha0, cfg["steps"]


def build_problem(task, config):
    """The NumPy problem of a run (through ``hgref schedules`` / ``hgref hd``'s builders)."""
    return sch.problem_of(config) if task == "marthe_mlp" else hd_exp._problem(config)


def lrs_opt_specs(setup: Setup):
    """``hgref schedules``' LRS-OPT run specs for the compare seeds (keys and configs as that command's)."""
    s = setup.schedules._replace(seeds=tuple(setup.seeds), methods=("lrs_opt",), lrs_opt_seeds=len(setup.seeds))
    return [spec for spec in sch.schedule_specs(s) if spec.config["method"] == "lrs_opt"]


def compare_specs(setup: Setup, lrs_records=None):
    """The run table: task × seed × method × knob value, plus the LRS-OPT reference per seed."""
    specs = []
    for task in setup.tasks:
        fam = FAMILY[task]
        for seed in setup.seeds:
            problem, eta0, steps = _task_problem(setup, task, seed)
            base = {"task": task, "family": fam, "problem": problem, "seed": seed, "steps": steps,
                    "eta0": eta0, "eval_every": setup.eval_every[task], "device": setup.device,
                    "dtype": setup.dtype}
            rec = (lrs_records or {}).get(seed) if task == "marthe_mlp" else None
            if rec is not None:
                specs.append(RunSpec(f"{task}-seed={seed}-lrs_opt", dict(
                    base, method="lrs_opt", value=None, schedule=rec["result"]["etas"],
                    source=f"schedules/runs/{rec['key']}.json")))
            for method in setup.methods:
                for value in setup.grids[fam][method]:
                    knob = "" if value is None else f"-{format_value(value)}"
                    specs.append(RunSpec(f"{task}-seed={seed}-{method}{knob}", dict(
                        base, method=method, value=value, timing_steps=min(setup.timing_steps, steps),
                        hd_objective="validation" if fam == "sgd" else "train",
                        oracle=fam == "sgd")))
    return specs


def _oracle(problem, etas, seed):
    from .. import dynamics
    from .._checks import DivergenceError
    from ..oracle import hypergradient
    try:
        hg = hypergradient(problem, dynamics.sgd(), np.asarray(etas, dtype=float), seed=seed)
    except DivergenceError as exc:
        return {"f_T": None, "grad_norm": None, "diverged_at": exc.step}
    return {"f_T": hg.value, "grad_norm": float(np.linalg.norm(hg.grad)), "diverged_at": None}


def _lrs_reference(config):
    """LRS-OPT's schedule through the NumPy loop (metrics, validation curve) and the oracle."""
    from .. import dynamics, rules
    from ..train import run
    problem = build_problem(config["task"], config["problem"])
    etas = [float(e) for e in config["schedule"]]
    tr = run(problem, dynamics.sgd(), rules.schedule("lrs_opt", lambda t: etas[t]), 1.0, len(etas),
             seed=config["seed"], eval_every=config["eval_every"], on_divergence="return")
    return {"etas": tr.etas, "diverged_at": tr.diverged_at, "reason": None, "stalled": False,
            "eval_steps": tr.eval_steps, "val_losses": tr.objectives, "metrics": tr.metrics,
            "oracle": dict(_oracle(problem, etas, config["seed"]), view="exact"),
            "method_info": {"base": "sgd", "scalar_sgd": True, "evaluated": "iterate",
                            "note": f"offline reference ({config['source']})"}}


_HGREF_KNOBS = {"constant": "η", "hd": "β", "rtho": "β", "marthe": "β step"}


def _method_info(method):
    if method in HGREF:
        return {"base": "hgref", "scalar_sgd": True, "evaluated": "iterate", "note": "",
                "knob": _HGREF_KNOBS[method], "default": None}
    from ..torch.peers import PEERS
    p = PEERS[method]
    return {"base": p.base, "scalar_sgd": p.scalar_sgd, "evaluated": p.evaluated, "note": p.note,
            "knob": p.knob, "default": p.default}


def compare_job(config, scratch=None):
    """One run: the torch training of a method (or the LRS-OPT reference) and the oracle's view."""
    if config["method"] == "lrs_opt":
        return _lrs_reference(config)
    import torch
    from ..torch.compare import make_method, sgd_step_seconds, train
    from ..torch.mnist import mnist_torch
    torch.set_num_threads(1)
    problem = build_problem(config["task"], config["problem"])
    tp = mnist_torch(problem, dtype=getattr(torch, config["dtype"]), device=config["device"])
    dyn = config["family"]
    stepper = make_method(config["method"], tp.model(), tp, dynamics=dyn, value=config["value"],
                          eta0=config["eta0"], hd_objective=config["hd_objective"])
    out = train(tp, stepper, config["steps"], config["seed"], eval_every=config["eval_every"])
    info = _method_info(config["method"])
    sgd_seconds = sgd_step_seconds(tp, config["timing_steps"], config["seed"])
    out["wall"] = {"step_seconds": out.pop("step_seconds"), "sgd_step_seconds": sgd_seconds}
    view = None
    if config["oracle"] and out["diverged_at"] is None:
        view = "exact" if info["scalar_sgd"] else "transplanted" if info["base"] == "sgd" else None
    out["oracle"] = dict(_oracle(problem, out["etas"], config["seed"]), view=view) if view else {"view": None}
    out["method_info"] = info
    return out


def run_compare(out, setup: Setup = DEFAULT, *, formats=("png",), jobs=1, progress=True, schedules_dir=None):
    """Run (or resume) the comparison; write ``compare.json``, ``compare.wall.json``, ``compare.md``
    and the figure ``compare.<fmt>``. LRS-OPT records are read from (``--lrs-opt``: run into)
    ``schedules_dir`` (default: ``<out>/../schedules``)."""
    from ..io import atomic_write_json
    from . import compare_report as report
    out = Path(out)
    schedules_dir = Path(schedules_dir) if schedules_dir is not None else out.parent / "schedules"
    _check_runtime(setup)
    lrs_specs = lrs_opt_specs(setup) if "marthe_mlp" in setup.tasks else []
    if setup.lrs_opt and lrs_specs:
        run_table(schedules_dir, lrs_specs, sch.schedule_job, jobs=jobs, progress=progress, desc="LRS-OPT")
    lrs = {spec.config["seed"]: load_record(schedules_dir, spec) for spec in lrs_specs}
    lrs = {seed: rec for seed, rec in lrs.items() if rec is not None}
    records = run_table(out, compare_specs(setup, lrs), compare_job, jobs=jobs, progress=progress, desc="compare")
    summary = report.summarize(records)
    summary["lrs_opt_missing_seeds"] = [s for s in setup.seeds if s not in lrs] if lrs_specs else []
    walls = {key: rec["result"].pop("wall", None) for key, rec in records.items()}
    config = dict(setup._asdict(), schedules=setup.schedules._asdict(), hd=setup.hd._asdict())
    results = write_results(out / "compare.json", "compare", config, records, summary)
    wall = atomic_write_json(out / "compare.wall.json", report.wall_summary(records, walls))
    table, tmp = out / "compare.md", out / ".compare.md.tmp"
    tmp.write_text(report.markdown(summary, report.wall_summary(records, walls)), encoding="utf-8")
    tmp.replace(table)                        # atomic, like the JSON files
    return [results, wall, table, *report.figure(records, summary, out / "compare", formats)]


def _check_runtime(setup):
    try:
        import torch
        from ..torch.peers import missing_packages
    except ImportError as exc:
        raise ValueError(f"hgref compare needs torch ({exc}): pip install 'hgref[torch,peers]'") from None
    missing = missing_packages(setup.methods)
    if missing:
        raise ValueError(f"methods {', '.join(m for m in setup.methods if m in PEER_KEYS)} need "
                         f"{' '.join(missing)}: pip install 'hgref[peers]' (or choose --methods)")
    try:
        dev = torch.device(setup.device)
        torch.zeros(1, device=dev)
    except (RuntimeError, AssertionError) as exc:
        raise ValueError(f"--device {setup.device!r} is not usable here ({exc}); accepted values: cpu, "
                         "cuda, cuda:N (with a CUDA build), mps") from None


_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps|xpu(:\d+)?)$")


def _device(text):
    import argparse
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"invalid device {text!r}; accepted values: cpu, cuda, cuda:N, mps, xpu")
    return text


def add_compare_command(sub):
    """Add ``hgref compare`` to the ``hgref`` argument parser."""
    import argparse
    from ..cli import _choices, _common
    p = sub.add_parser("compare", help="hgref's online rules vs Prodigy, D-Adaptation, Schedule-Free, DoG, "
                       "Mechanic, with the oracle and LRS-OPT as yardstick (torch)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p, seeds=DEFAULT.seeds)
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--paper-scale", action="store_true",
                       help="the papers' networks (500-500; 1000-1000, 100 epochs) and 20 seeds (days)")
    scale.add_argument("--tiny", action="store_true", help="a seconds-long configuration for tests")
    p.add_argument("--tasks", type=_choices(TASKS), default=None,
                   help=f"comma-separated from {','.join(TASKS)} (default: all)")
    p.add_argument("--methods", type=_choices(METHODS), default=None,
                   help=f"comma-separated from {','.join(METHODS)} (default: all)")
    p.add_argument("--device", type=_device, default="cpu", help="torch device (default: cpu)")
    p.add_argument("--dtype", choices=DTYPES, default="float64",
                   help="torch dtype (default: float64, bit-comparable with the NumPy oracle)")
    p.add_argument("--lrs-opt", action="store_true",
                   help="run LRS-OPT (hgref schedules' runs, into OUT/schedules/) where its records are missing")
    p.set_defaults(func=_run)
    return p


def _run(args):
    base = PAPER if args.paper_scale else TINY if args.tiny else DEFAULT
    seeds = (args.seed,) if args.seed is not None else tuple(dict.fromkeys(args.seeds)) if args.seeds else None
    setup = configure(base, seeds=seeds, tasks=args.tasks, methods=args.methods, device=args.device,
                      dtype=args.dtype, lrs_opt=args.lrs_opt)
    return run_compare(args.out / "compare", setup, formats=args.formats, jobs=args.jobs,
                       progress=not args.quiet)
