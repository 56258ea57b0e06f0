"""Wall time of the hgref.testing battery per mode, for one optimizer (targets: declared < 30 s,
own-dynamics < 3 min on 2 cores).

Usage: ``python benchmarks/bench_testing.py [--quick]`` → benchmarks/results/testing.json.

Timed, case by case, in one process with one torch/BLAS thread: the NumPy rule checker
(``check_rule``, hgref RTHO), and the torch driver in ``mode="declared"`` and ``mode="own"`` on
hgref.torch's RTHO (a tangent rule: gradient with graph + one Hessian-vector product + ∇E per
step, the most expensive estimator kind) and HD (a gradient per step). Also recorded: each
report's verdict and coverage, the own/declared time ratio, and the load average, since the
machine is shared. ``--quick`` runs the first_steps column only.
"""
from __future__ import annotations

import argparse
import os
import time

import torch
from common import write

from hgref import rules
from hgref._threads import single_threaded
from hgref.testing import BATTERY, check_rule, check_torch_optimizer, get_cases, hgref_adapter


def _timed(fn, cases):
    from hgref.testing import reference

    per_case, results = {}, []
    reference._CACHE.clear()          # each mode pays for its own exact reference
    for case in cases:
        t0 = time.perf_counter()
        report = fn((case,))
        per_case[case.name] = round(time.perf_counter() - t0, 3)
        results.extend(report.results)
    total = sum(per_case.values())
    verdict = report._replace(results=tuple(results))
    return {"total_s": round(total, 2), "per_case_s": per_case, "verdict": verdict.verdict,
            "coverage": verdict.coverage_text(),
            "max_rel_error": max((r.max_rel_error for r in results if r.comparison), default=None)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="first_steps column only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = get_cases("first_steps") if args.quick else BATTERY
    load = os.getloadavg()
    out = {"cases": [c.name for c in cases], "load_before": load}
    with single_threaded():
        check_rule(lambda c: rules.rtho(0.0), mu=1.0, cases=cases[:1])    # warm-up: data, imports
        check_torch_optimizer(hgref_adapter("rtho"), cases=get_cases("sgd_first_steps"))
        out["numpy_rule_rtho"] = _timed(lambda cs: check_rule(lambda c: rules.rtho(0.0), mu=1.0, cases=cs), cases)
        for rule in ("rtho", "hd"):
            adapter = hgref_adapter(rule)
            for mode in ("declared", "own"):
                key = f"torch_{rule}_{mode}"
                out[key] = _timed(lambda cs, m=mode: check_torch_optimizer(adapter, cases=cs, mode=m), cases)
                print(key, out[key]["total_s"], "s", out[key]["verdict"], flush=True)
            out[f"torch_{rule}_own_over_declared"] = round(out[f"torch_{rule}_own"]["total_s"]
                                                           / out[f"torch_{rule}_declared"]["total_s"], 2)
    out["load_after"] = os.getloadavg()
    write("testing_quick" if args.quick else "testing", out)


if __name__ == "__main__":
    main()
