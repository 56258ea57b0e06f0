"""Command-line interface: ``hgref <command> [options]`` (``hgref --help`` lists them)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

FORMATS = ("png", "svg", "pdf")


def _formats(text):
    fmts = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise argparse.ArgumentTypeError(f"invalid format {','.join(bad) or text!r}; accepted values: {', '.join(FORMATS)}")
    return fmts


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _common(p):
    p.add_argument("--out", type=Path, default=Path("results"),
                   help="output folder (default: ./results)")
    p.add_argument("--formats", type=_formats, default=("png",),
                   help="figure formats, comma-separated from png,svg,pdf (default: png)")


def build_parser():
    parser = argparse.ArgumentParser(prog="hgref", description=__doc__)
    from . import __version__
    parser.add_argument("--version", action="version", version=f"hgref {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    toy = sub.add_parser("toy", help="gradient descent on Beale and smoothed Bukin N.6 (no data needed)")
    _common(toy)
    toy.add_argument("--steps", type=int, default=500, help="steps of gradient descent (default: 500)")
    toy.add_argument("--eta", type=_positive_float, nargs="+", default=[0.001, 0.003, 0.01],
                     help="constant learning rates to draw (default: 0.001 0.003 0.01)")
    toy.set_defaults(func=_run_toy)

    from .testing.cli import add_check_command   # hgref check: see hgref/testing/cli.py
    add_check_command(sub)
    return parser


def _run_toy(args):
    from .experiments.toy import constant_lr_trajectories
    paths = constant_lr_trajectories(args.out / "toy", steps=args.steps, etas=args.eta, formats=args.formats)
    for p in paths:
        print(p)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "steps", 1) < 1:
        parser.error(f"argument --steps: expected an integer >= 1, got {args.steps}")
    try:
        args.func(args)
    except (ValueError, OSError) as exc:
        print(f"hgref {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
