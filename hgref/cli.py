"""Command-line interface: ``hgref <command> [options]`` (``hgref --help`` lists them).

Commands (each writes ``<out>/<command>/``: a results JSON, per-run records under
``runs/`` so that a killed command resumes, and figures):

* ``toy`` — MARTHE Fig. 1 on Beale and smoothed Bukin N.6 (the default main job, < 1 min).
* ``schedules`` — MARTHE §5 / Fig. 2 on MNIST: offline LRS-OPT vs online schedules.
* ``hd`` — HD with momentum/Adam as learning-rate optimizers and the HD reproducibility report.
* ``check`` — check a hypergradient optimizer against the exact oracle (:mod:`hgref.testing.cli`).

Help texts are plain text (:func:`_plain` strips the docstrings' reST markup).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from pathlib import Path

__all__ = ["main", "build_parser"]

from ._argtypes import choices as _choices
from ._argtypes import formats as _formats
from ._argtypes import number as _number
from ._argtypes import positive_float as _positive_float
from ._argtypes import positive_int as _positive_int
from ._argtypes import seed as _seed
from ._argtypes import unit as _unit

_DESCRIPTION = """\
hgref: reference library for learning-rate hypergradients (exact oracle, HD, RTHO, MARTHE).

Each experiment command writes OUT/<command>/ (default ./results/<command>/): a results
JSON, one record per run under runs/ (re-running a stopped command resumes it), and
figures. Ctrl-C or SIGTERM stops a command within 2 s, keeping the finished runs.
'hgref COMMAND --help' describes a command."""


def _plain(doc):
    """A docstring as plain help text: ``x`` and :role:`x` become x."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", doc or "")
    return re.sub(r"``([^`]+)``", r"\1", text)


def _common(p, seeds, data=True):
    """Flags of every experiment command; ``data=False`` (toy): no --data-dir, one --seed only."""
    from .experiments.runner import default_jobs
    p.add_argument("--out", type=Path, default=Path("results"),
                   help="output folder; results go to OUT/<command>/ (default: ./results)")
    p.add_argument("--formats", type=_formats, default=("png",),
                   help="figure formats, comma-separated from png,svg,pdf (default: png)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--seeds", type=_seed, nargs="+", metavar="SEED", default=None,
                       help=f"random seeds (default: {' '.join(map(str, seeds))})" if data else argparse.SUPPRESS)
    group.add_argument("--seed", type=_seed, default=None, help=(
        "a single random seed (same as --seeds SEED)" if data else
        "seed recorded in the results (default: 0; the toy problems are deterministic)"))
    p.add_argument("--jobs", type=_positive_int, default=default_jobs(),
                   help=f"worker processes for the run table (default: {default_jobs()})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if data:
        p.add_argument("--data-dir", type=Path, default=None,
                       help="folder holding mnist/ (default: $HGREF_DATA, else ~/.hgref/data)")
    p.set_defaults(default_seeds=tuple(seeds), data_dir=None)


def build_parser():
    from . import __version__
    from .experiments import hd as hd_exp
    from .experiments import schedules as sch
    from .experiments import toy as toy_exp

    parser = argparse.ArgumentParser(prog="hgref", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hgref {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    toy = sub.add_parser("toy", help="MARTHE Fig. 1: HD, RTHO, MARTHE on Beale and Bukin (no data, < 1 min)",
                         description=_plain(toy_exp.__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(toy, seeds=(0,), data=False)
    toy.add_argument("--steps", type=_positive_int, default=500, help="steps of gradient descent (default: 500)")
    toy.add_argument("--problems", type=_choices(("beale", "bukin")), default=("beale", "bukin"),
                     help="comma-separated from beale,bukin (default: both)")
    toy.add_argument("--methods", type=_choices(toy_exp.METHODS), default=toy_exp.METHODS,
                     help=f"comma-separated from {','.join(toy_exp.METHODS)} (default: all)")
    toy.add_argument("--lrs-opt", action="store_true", help="also draw the LRS-OPT schedule (L-BFGS-B oracle)")
    toy.add_argument("--lrs-opt-maxiter", type=_positive_int, default=100,
                     help="L-BFGS-B iterations of LRS-OPT (default: 100)")
    toy.set_defaults(func=_run_toy)

    s = sub.add_parser("schedules", help="MARTHE §5 / Fig. 2 on MNIST: LRS-OPT vs online schedules",
                       description=_plain(sch.__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(s, seeds=tuple(range(sch.DEFAULT.n_seeds)))
    scale = s.add_mutually_exclusive_group()
    paper = sch.PAPER
    scale.add_argument("--paper-scale", action="store_true",
                       help=f"the paper's protocol: MLP 784-{'-'.join(map(str, paper.hidden))}-10 (\"three-layer\" read "
                            f"as three weight layers; --hidden 500 500 500 for three hidden layers), "
                            f"{paper.n_seeds} seeds, LRS-OPT {paper.lrs_opt_seeds} seeds x {paper.lrs_opt_iterations} "
                            f"PGD iterations (step {paper.lrs_opt_lr:g}); with --device cuda through the torch "
                            "reverse mode in float32 (days on CPU)")
    scale.add_argument("--tiny", action="store_true", help="a seconds-long configuration for tests")
    s.add_argument("--hidden", type=_positive_int, nargs="+", default=None,
                   help=f"hidden layer widths (default: {' '.join(map(str, sch.DEFAULT.hidden))})")
    s.add_argument("--steps", type=_positive_int, default=None, help="T, steps of SGD (default: 512)")
    s.add_argument("--init", choices=sch.INITS, default="glorot",
                   help="weight initialisation (default: glorot = Glorot-uniform, zero biases)")
    s.add_argument("--methods", type=_choices(sch.METHODS), default=sch.METHODS,
                   help=f"comma-separated from {','.join(sch.METHODS)} (default: all)")
    s.add_argument("--betas", type=_positive_float, nargs="+", default=None,
                   help="one β grid for every online method (default: per method, adaptive MARTHE 1e-9 ... 1e-3)")
    s.add_argument("--mus", type=_unit, nargs="+", default=None,
                   help=f"fixed μ grid of MARTHE (default: {_scaled(sch, 'mus')})")
    from .lrsopt import OUTERS
    s.add_argument("--outer", choices=tuple(OUTERS), default=None,
                   help=f"LRS-OPT outer optimizer (default: {sch.DEFAULT.lrs_opt_outer}; pgd is the paper's)")
    s.add_argument("--lrs-opt-iterations", type=_positive_int, default=None, help=f"outer iterations of LRS-OPT (default: {_scaled(sch, 'lrs_opt_iterations')})")
    s.add_argument("--lrs-opt-lr", type=_positive_float, default=None,
                   help=f"step size of the outer optimizer (default: {_scaled(sch, 'lrs_opt_lr')})")
    s.add_argument("--lrs-opt-max-change", type=_number(0.0, strict=False), default=None,
                   help=f"per-entry clip of a PGD step, 0 = off (default: {sch.DEFAULT.lrs_opt_max_change})")
    s.add_argument("--lrs-opt-restart", type=_number(0.0, strict=False), default=None,
                   help="safeguard: undo a step whose f_T exceeds this factor times the best, halve the step; "
                        f"0 = off (default: {sch.DEFAULT.lrs_opt_restart})")
    s.add_argument("--lrs-opt-seeds", type=_positive_int, default=None, help=f"number of seeds for LRS-OPT (default: {_scaled(sch, 'lrs_opt_seeds')})")
    s.add_argument("--device", default=None,
                   help="LRS-OPT hypergradients by the torch reverse mode on this device (cpu, cuda, cuda:1; "
                        "needs torch); default: the NumPy oracle in float64")
    s.add_argument("--torch-dtype", choices=("float32", "float64"), default=None,
                   help="dtype of the torch reverse mode (default: float32)")
    s.set_defaults(func=_run_schedules)

    h = sub.add_parser("hd", help="HD with momentum/Adam lr-optimizers; HD reproducibility report (MNIST)",
                       description=_plain(hd_exp.__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(h, seeds=(0,))
    hscale = h.add_mutually_exclusive_group()
    hscale.add_argument("--paper-scale", action="store_true",
                        help="the papers' epochs (20 logreg, 100 MLP) and 2×1000 hidden units (hours)")
    hscale.add_argument("--tiny", action="store_true", help="a seconds-long configuration for tests")
    h.add_argument("--models", type=_choices(hd_exp.MODELS), default=hd_exp.MODELS,
                   help=f"comma-separated from {','.join(hd_exp.MODELS)} (default: both)")
    h.add_argument("--ops", type=_choices(hd_exp.OPS, hd_exp.OP_ALIASES), default=hd_exp.OPS,
                   help=f"model optimizers, comma-separated from {','.join(hd_exp.OPS)} (sgdn: Nesterov "
                        "momentum 0.9; 'nesterov' is accepted too; default: all)")
    h.add_argument("--lops", type=_choices(hd_exp.LOPS), default=hd_exp.LOPS,
                   help=f"learning-rate optimizers, comma-separated from {','.join(hd_exp.LOPS)} (default: all)")
    h.add_argument("--epochs", type=_positive_int, default=None, help="epochs per run (both models)")
    h.add_argument("--alpha0s", type=_positive_float, nargs="+", default=None,
                   help="initial learning rates of the insensitivity table (default: 1e-2 5e-3 1e-3 5e-4 1e-4)")
    h.add_argument("--no-grid", action="store_true", help="skip the β × α0 grid of the reproducibility report")
    h.set_defaults(func=_run_hd)

    from .testing.cli import add_check_command   # hgref check: see hgref/testing/cli.py
    add_check_command(sub)
    from .experiments.compare import add_compare_command   # hgref compare: see hgref/experiments/compare.py
    add_compare_command(sub)
    for command in sub.choices.values():          # every command's help as plain text
        command.description = _plain(command.description)
    return parser


def _scaled(module, field):
    """Default of a setup field, naming --tiny / --paper-scale where they differ."""
    def text(v):
        if v is None:
            return "off"
        return " ".join(f"{x:g}" for x in v) if isinstance(v, tuple) else f"{v:g}"
    base = text(getattr(module.DEFAULT, field))
    other = [f"{flag} {text(getattr(setup, field))}" for flag, setup in
             (("--tiny", module.TINY), ("--paper-scale", module.PAPER)) if getattr(setup, field) != getattr(module.DEFAULT, field)]
    return base + (f"; {', '.join(other)}" if other else "")


def _seeds(args):
    if args.seed is not None:
        return (args.seed,)
    return tuple(dict.fromkeys(args.seeds)) if args.seeds else args.default_seeds


def _run_toy(args):
    from .experiments.toy import run_toy
    if len(_seeds(args)) != 1:
        raise ValueError("the toy problems are deterministic: give one --seed, not several --seeds")
    return run_toy(args.out / "toy", seed=_seeds(args)[0], steps=args.steps, problem_names=args.problems, methods=args.methods,
                   lrs_opt=args.lrs_opt, lrs_opt_maxiter=args.lrs_opt_maxiter, formats=args.formats,
                   jobs=args.jobs, progress=not args.quiet)


def _run_schedules(args):
    from .experiments import schedules as sch
    base = sch.PAPER if args.paper_scale else sch.TINY if args.tiny else sch.DEFAULT
    seeds = _seeds(args) if (args.seed is not None or args.seeds) else tuple(range(base.n_seeds))
    if args.device is not None:     # fail now, not after the online runs
        try:
            import torch
        except ImportError:
            raise ValueError(f"--device {args.device} needs torch: pip install 'hgref[torch]'") from None
        try:
            device = torch.device(args.device)
        except RuntimeError:
            raise ValueError(f"invalid --device {args.device!r}; accepted values: cpu, cuda, cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: no CUDA device is available; use --device cpu")
    setup = sch.configure(base, seeds=seeds, hidden=args.hidden, steps=args.steps, init=args.init,
                          methods=args.methods, betas=args.betas, mus=args.mus, lrs_opt_outer=args.outer,
                          lrs_opt_iterations=args.lrs_opt_iterations, lrs_opt_lr=args.lrs_opt_lr,
                          lrs_opt_max_change=args.lrs_opt_max_change, lrs_opt_restart=args.lrs_opt_restart,
                          lrs_opt_seeds=args.lrs_opt_seeds, device=args.device, torch_dtype=args.torch_dtype)
    return sch.run_schedules(args.out / "schedules", setup, formats=args.formats, jobs=args.jobs,
                             progress=not args.quiet)


def _run_hd(args):
    from .experiments import hd as hd_exp
    base = hd_exp.PAPER if args.paper_scale else hd_exp.TINY if args.tiny else hd_exp.DEFAULT
    setup = hd_exp.configure(base, seeds=_seeds(args), models=args.models, ops=args.ops, lops=args.lops,
                             epochs=args.epochs, alpha0s=args.alpha0s, grid=not args.no_grid)
    return hd_exp.run_hd(args.out / "hd", setup, formats=args.formats, jobs=args.jobs,
                         progress=not args.quiet)


def _on_sigterm(signum, frame):
    from .experiments.runner import Interrupted
    raise Interrupted(signum)


def _stopped(command, exc):
    """The one line printed when a signal stops a command, and its exit code (128 + signal)."""
    signum = getattr(exc, "signum", signal.SIGINT)
    name = signal.Signals(signum).name
    if getattr(exc, "done", None) is not None:
        saved = f"{exc.done} of {exc.total} runs finished and saved in {exc.folder}"
    else:
        saved = "finished runs are saved"
    print(f"hgref {command}: stopped by {name}; {saved}; run the same command again to resume",
          file=sys.stderr)
    return 128 + signum


def main(argv=None):
    """Run ``hgref`` with ``argv``; return the exit code.

    Exit codes: 0 done; 2 bad input (argparse errors exit 2 too); 130 stopped by SIGINT
    (Ctrl-C) and 143 stopped by SIGTERM (128 + signal number, the shell convention). A
    stop takes well under 2 s: queued runs are cancelled, running workers ended, finished
    runs stay saved, and one line on stderr says how to resume.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._threads import limit_threads
    from .io import ensure_dir
    saved_data = os.environ.get("HGREF_DATA")
    if args.data_dir is not None:   # seen by worker processes; restored below for in-process callers
        os.environ["HGREF_DATA"] = str(args.data_dir)
    in_main = threading.current_thread() is threading.main_thread()
    saved_term = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    limit_threads(1)  # one BLAS thread per process: measured 1.5-4x faster here (see _threads)
    try:
        ensure_dir(args.out / args.command)
        paths = args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"hgref {args.command}: error: {_cli_message(exc, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        code = _stopped(args.command, exc)
        if argv is None:    # the command itself (not a caller in Python): leave at once. Records
            sys.stdout.flush()    # are on disk; interpreter teardown (matplotlib, autograd) took
            sys.stderr.flush()    # 1-2 s under load, 6 s at load 7, past the 2 s promise
            os._exit(code)
        return code
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, saved_term)
        if args.data_dir is not None:
            if saved_data is None:
                os.environ.pop("HGREF_DATA", None)
            else:
                os.environ["HGREF_DATA"] = saved_data
    for path in paths:
        print(path)
    return 0


_API_HINT = re.compile(r"Fix: set HGREF_DATA to a directory holding mnist/<file>, pass data_dir=, or run "
                       r"hgref\.data\.download_mnist\((.*?)\) on a machine with internet access\.")


def _cli_message(exc, args):
    """The error text in command-line terms: ``--data-dir`` named, command-line advice."""
    text = str(exc)
    if getattr(args, "data_dir", None) is not None:
        text = text.replace("from HGREF_DATA)", "from --data-dir)")
    return _API_HINT.sub(lambda m: "Fix: pass --data-dir DIR (or set HGREF_DATA=DIR) with the file in "
                         "DIR/mnist/, or fetch it on a machine with internet: python -c \"import "
                         f"hgref.data; hgref.data.download_mnist({m.group(1)})\".", text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
