"""Argument types of the ``hgref`` command line: each parses one flag's text and raises
``argparse.ArgumentTypeError`` naming the accepted values."""
from __future__ import annotations

import argparse

__all__ = ["FORMATS", "formats", "choices", "number", "unit", "positive_float", "positive_int", "seed"]

FORMATS = ("png", "svg", "pdf")


def formats(text):
    fmts = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise argparse.ArgumentTypeError(f"invalid format {','.join(bad) or text!r}; accepted values: {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(fmts))


def choices(valid, aliases=None):
    """Type for comma-separated lists drawn from ``valid`` (``aliases``: old spelling -> name)."""
    aliases = aliases or {}

    def parse(text):
        items = tuple(aliases.get(s.strip(), s.strip()) for s in text.split(",") if s.strip())
        bad = [s for s in items if s not in valid]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"invalid value {','.join(bad) or text!r}; accepted values (comma-separated): {', '.join(valid)}")
        return tuple(dict.fromkeys(items))
    parse.__name__ = "list"
    return parse


def number(low=0.0, strict=True, integer=False):
    def parse(text):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not (value > low if strict else value >= low) or value == float("inf"):
            rel = ">" if strict else ">="
            raise argparse.ArgumentTypeError(f"expected a finite value {rel} {low:g}, got {text!r}")
        return value
    parse.__name__ = "int" if integer else "float"
    return parse


def unit(text):
    """A number in [0, 1] (MARTHE's μ)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a value in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:     # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a value in [0, 1], got {text!r}")
    return value


unit.__name__ = "float"
positive_float = number(0.0)
positive_int = number(0, integer=True)
seed = number(0, strict=False, integer=True)
