"""``hgref check TARGET``: run the battery on an importable optimizer (see :mod:`hgref.testing`).

TARGET is a dotted path (``package.module.name`` or ``package.module:name``; the current
directory is importable) to one of:

* a :class:`hgref.testing.TorchAdapter` (e.g. ``hgref.testing.bridge.rtho``);
* a torch factory ``make_optimizer(params, case) -> optimizer`` (an optimizer class taking
  ``(params, case)`` works too) whose optimizer has a ``hypergradient()`` method — give
  ``--mu``;
* with ``--rule``: a NumPy factory ``make_rule(case) -> hgref.rules.Rule`` (or a Rule).

``--mode own`` checks a torch optimizer on its own update (no declaration; finite differences
through copies of it), ``--objective`` declares what its estimate differentiates
(``validation``, ``loss``, ``train``). Prints the per-case table (``--json``: the report as JSON,
with per-step values) and writes the JSON report to ``OUT/check/report.json``; exit code 0 when
the verdict is PASSED, 1 when a case fails, 3 when it is INCOMPLETE (fewer than the matrix cases
of the optimizer's own dynamics were checked), 2 on a usage error.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

__all__ = ["add_check_command", "resolve", "run_check"]


def resolve(path):
    """The object named by ``module.attr`` / ``module:attr`` (ValueError if not importable)."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, sep, attr = path.partition(":")
    parts = module_name.split(".") if not sep else [module_name]
    for k in range(len(parts), 0, -1):
        name = ".".join(parts[:k])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if name == missing or name.startswith(missing + "."):
                continue      # ``name`` is not a module: try a shorter prefix
            raise ValueError(f"cannot import {name!r} (needed by {path!r}): {exc}") from exc
        rest = (attr.split(".") if sep else parts[k:])
        try:
            for a in rest:
                obj = getattr(obj, a)
        except AttributeError:
            raise ValueError(f"{name!r} has no attribute {'.'.join(rest)!r} (target {path!r})") from None
        return obj
    raise ValueError(f"cannot import {path!r}: no module {parts[0]!r} on the path")


def add_check_command(sub):
    """Add the ``check`` subcommand to the ``hgref`` argument parser."""
    p = sub.add_parser("check", help="check a hypergradient optimizer against the exact oracle "
                       "(hgref.testing battery)", description=__doc__.split("\n\n")[0])
    p.add_argument("target", help="dotted path: TorchAdapter, torch factory (params, case) -> "
                   "optimizer, or with --rule a factory case -> hgref Rule")
    p.add_argument("--mu", default=None,
                   help="the estimator's discount: 0 (HD), 1 (RTHO), a MARTHE mu; with --rule also "
                        "the name of the info entry holding mu_t (e.g. mu)")
    p.add_argument("--rule", action="store_true", help="TARGET is a NumPy rule factory case -> Rule")
    p.add_argument("--cases", default=None, help="comma-separated case names, dynamics or matrix "
                   "columns (e.g. adam,first_steps; default: all)")
    p.add_argument("--mode", choices=("declared", "own"), default="declared",
                   help="declared: the case's hgref dynamics, exact oracle (default); own: the "
                        "optimizer's own update, finite differences through it (torch only)")
    p.add_argument("--objective", choices=("validation", "loss", "train"), default=None,
                   help="what the estimate differentiates: validation E (default), minibatch loss "
                        "L_t, or train = L_t + coupled weight decay (what p.grad holds)")
    p.add_argument("--rtol", type=float, default=None,
                   help="per-step relative tolerance (default 1e-10 declared, 1e-6 own)")
    p.add_argument("--atol", type=float, default=0.0, help="per-step absolute tolerance (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", type=Path, default=Path("results"),
                   help="output folder; the JSON report goes to OUT/check/report.json (default: ./results)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder holding mnist/ (default: $HGREF_DATA, else ~/.hgref/data)")
    p.set_defaults(func=run_check)
    return p


def _mu(text, rule):
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        if rule:
            return text
        raise ValueError(f"--mu must be a number, got {text!r}") from None


def run_check(args):
    """Run the battery on ``args.target``; print the report, write it to
    ``OUT/check/report.json`` and return ``[that path]``; ``SystemExit(1)`` if a case fails."""
    from ..rules import Rule
    from .battery import get_cases
    from .torch_checks import TorchAdapter

    cases = get_cases(args.cases)
    target = resolve(args.target)
    mu = _mu(args.mu, args.rule)
    data_dir = None if args.data_dir is None else str(args.data_dir)
    common = dict(cases=cases, atol=args.atol, data_dir=data_dir, name=args.target,
                  objective=args.objective)
    if args.rule or isinstance(target, Rule):
        from .battery import check_rule
        make_rule = (lambda case: target) if isinstance(target, Rule) else target
        if mu is None:
            raise ValueError("--mu is required for a rule: the discount of its estimate (0: HD, 1: RTHO)")
        if args.mode != "declared":
            raise ValueError("--mode own applies to torch optimizers; a rule runs hgref's dynamics")
        report = check_rule(make_rule, mu=mu, rtol=1e-10 if args.rtol is None else args.rtol, **common)
    elif isinstance(target, TorchAdapter) or callable(target):
        from .torch_checks import check_torch_optimizer
        report = check_torch_optimizer(target, mu=mu, mode=args.mode, rtol=args.rtol, **common)
    else:
        raise ValueError(f"{args.target} is a {type(target).__name__}: expected a TorchAdapter, a "
                         "factory (params, case) -> optimizer, or with --rule a factory case -> Rule")
    from ..io import atomic_write_json

    print(json.dumps(report.to_dict(), indent=1) if args.json else report.details())
    path = Path(args.out) / "check" / "report.json"
    atomic_write_json(path, report.to_dict())
    if not report.passed:
        print(path, file=sys.stderr)
        raise SystemExit(1 if report.failed else 3)
    return [path]
