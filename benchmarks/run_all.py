"""Run every benchmark in one process; write results/all.json and results/summary.md.

Usage: ``python benchmarks/run_all.py [--quick] [--no-torch]`` (``--quick``: ≲ 5 min on 2 cores).

Reuses the single benchmarks' functions (:mod:`bench_dynamics`, :mod:`bench_rules`,
:mod:`bench_oracle`, :mod:`bench_torch`) and adds:

* oracle cost vs T: reverse and forward ∇f_T / plain T-step run on the MNIST MLP
  784-32-10 (SGD, η = 0.1, batch 100), T = 32…512, with the peak traced memory of each
  (``tracemalloc``, a separate untimed call) and a plot ``results/oracle_cost_vs_T.png``.
  Forward mode costs T(T−1)/2 tangent products on this problem (state size n ≫ T), so it
  is measured up to T = 128 with ``--quick`` (256 without): larger T are left out, not
  extrapolated.
* the issue-19 targets, each a ratio within this run: API ``run`` at default threads / one
  thread (:mod:`bench_threads`), reverse oracle / plain run at T = 512, torch reverse mode /
  plain torch SGD (:mod:`bench_torch_reverse`), torch MARTHE/RTHO with E = L through the
  fused closure / torch SGD step and HD / torch SGD step (:mod:`bench_torch`); the summary
  starts with them against their targets, a miss marked **MISSED**, and the load average
  (``os.getloadavg``) at the start and the end of the run; then what bounds the fused step
  from below (:mod:`torch_floor`: GEMM flop count, the pass's GEMMs alone, the pass alone).
* LRS-OPT (:func:`hgref.lrsopt.lrs_opt_pgd`) seconds per outer iteration on the §5
  problem, reduced (784-32-10, T = 128) and at paper size (784-500-500-10, T = 512): the
  latter is first timed at T = 16 and extrapolated linearly; if the extrapolation is under
  a minute, one real outer iteration at T = 512 is run and reported as measured.

Every ratio is measured within this one run (interleaved, :func:`common.ratio`). BLAS runs
single-threaded (see :mod:`bench_oracle`).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]      # the benchmarks, then this checkout's hgref

import numpy as np  # noqa: E402
from common import RESULTS, machine, ratio, write  # noqa: E402

import bench_dynamics  # noqa: E402
import bench_rules  # noqa: E402
import bench_threads  # noqa: E402
from hgref import dynamics as D  # noqa: E402
from hgref import problems, rules  # noqa: E402
from hgref.lrsopt import lrs_opt_pgd  # noqa: E402
from hgref.oracle import hypergradient  # noqa: E402
from hgref.train import run  # noqa: E402

TARGETS = {"hd": 1.05, "marthe": 3.0, "reverse_oracle": 3.0, "api_threads": 1.25, "torch_reverse": 5.0,
           "torch_marthe_fused": 2.5, "torch_hd": 1.05}


def peak_bytes(fn):
    """Peak memory traced by ``tracemalloc`` (NumPy buffers included) during ``fn()``."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def oracle_vs_T(quick):
    problem, dyn, eta = problems.mnist_mlp((32,)), D.sgd(), 0.1
    Ts = (32, 64, 128, 256, 512)
    fwd_max = 128 if quick else 256
    rows = []
    for T in Ts:
        schedule = np.full(T, eta)

        def plain():
            return run(problem, dyn, rules.constant(), eta, T, metrics=False)

        def rev():
            return hypergradient(problem, dyn, schedule)

        def fwd():
            return hypergradient(problem, dyn, schedule, method="forward")

        row = {"T": T, "plain_s": None, "reverse": None, "forward": None}
        r = ratio(rev, plain, repeat=7)           # short calls: load spikes need more pairs
        row["plain_s"] = r["denominator_s"]
        row["reverse"] = {"ratio": r["ratio"], "seconds": r["numerator_s"], "peak_bytes": peak_bytes(rev)}
        row["plain_peak_bytes"] = peak_bytes(plain)
        if T <= fwd_max:
            f = ratio(fwd, plain, repeat=1, warmup=0)
            row["forward"] = {"ratio": f["ratio"], "seconds": f["numerator_s"], "peak_bytes": peak_bytes(fwd)}
        print("oracle T", T, {k: (v["ratio"] if isinstance(v, dict) else v) for k, v in row.items()}, flush=True)
        rows.append(row)
    return {"problem": problem.name, "dim": problem.dim, "dynamics": "sgd", "eta": eta,
            "forward_measured_up_to_T": fwd_max, "rows": rows}


def plot_oracle(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hgref.plotting import PALETTE
    rows = result["rows"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for mode, color in (("reverse", PALETTE[0]), ("forward", PALETTE[1])):
        pts = [(r["T"], r[mode]["ratio"], r[mode]["peak_bytes"]) for r in rows if r[mode]]
        T, rat, mem = zip(*pts)
        ax1.plot(T, rat, "o-", color=color, label=mode)
        ax2.plot(T, np.array(mem) / 2**20, "o-", color=color, label=mode)
    ax2.plot([r["T"] for r in rows], [r["plain_peak_bytes"] / 2**20 for r in rows], "o-", color=PALETTE[2],
             label="plain run")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("T (steps)")
        ax.legend()
    ax1.set_ylabel("time / plain T-step run")
    ax1.axhline(TARGETS["reverse_oracle"], color="grey", ls=":", lw=1)
    ax2.set_ylabel("peak traced memory (MiB)")
    fig.suptitle(f"exact hypergradient on {result['problem']}, SGD", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def lrsopt_timing():
    from hgref.problems.mnist import mnist_mlp

    def per_iteration(problem, steps, iterations):
        t0 = time.perf_counter()
        lrs_opt_pgd(problem, D.sgd(), steps=steps, lr=0.1, iterations=iterations, seed=1000)
        return (time.perf_counter() - t0) / iterations

    small = mnist_mlp((32,))
    out = {"reduced": {"problem": small.name, "steps": 128, "iterations": 2,
                       "seconds_per_iteration": per_iteration(small, 128, 2), "kind": "measured"}}
    paper = mnist_mlp((500, 500))
    probe = per_iteration(paper, 16, 1)
    estimate = probe * 512 / 16
    out["paper_probe"] = {"problem": paper.name, "steps": 16, "seconds_per_iteration": probe}
    if estimate <= 60:
        out["paper"] = {"problem": paper.name, "steps": 512, "iterations": 1, "kind": "measured",
                        "seconds_per_iteration": per_iteration(paper, 512, 1), "extrapolated_from_T16": estimate}
    else:
        out["paper"] = {"problem": paper.name, "steps": 512, "kind": "extrapolated linearly from T = 16",
                        "seconds_per_iteration": estimate}
    print("lrsopt", out, flush=True)
    return out


def target_rows(res):
    """(what, measured ratio, target) of the issue-19 targets found in ``res``."""
    rows = [("API `hgref.run` (64 steps, 784-32-10), default threads / one thread",
             res["threads"]["ratios"]["run_64_steps/default"]["ratio"], TARGETS["api_threads"])]
    last = res["oracle_vs_T"]["rows"][-1]
    rows.append((f"reverse oracle / plain run, 784-32-10, T = {last['T']}", last["reverse"]["ratio"],
                 TARGETS["reverse_oracle"]))
    for r in (res.get("torch_reverse") or {}).get("rows", []):
        rows.append((f"torch reverse mode / plain torch SGD, {r['network']}, {r['dtype']}, T = {r['T']}",
                     r["ratio"], TARGETS["torch_reverse"]))
    if res.get("torch"):
        t = res["torch"]["results"]["float32"]
        rows += [("torch MARTHE, E = L, fused closure / torch SGD step (784-500×3-10, f32)",
                  t["marthe_train_fused_vs_torch_sgd"]["ratio"], TARGETS["torch_marthe_fused"]),
                 ("torch RTHO, E = L, fused closure / torch SGD step", t["rtho_train_fused_vs_torch_sgd"]["ratio"],
                  TARGETS["torch_marthe_fused"]),
                 ("torch HD / torch SGD step", t["hd_vs_torch_sgd"]["ratio"], TARGETS["torch_hd"]),
                 ("control: a second torch SGD model / torch SGD step (A/A: the noise floor)",
                  t["torch_sgd_vs_torch_sgd"]["ratio"], 1.05)]
    return rows


FLOOR_ROWS = (("gemm_flops_fused_over_sgd", "GEMM flops of the exact gradient + HVP step / an SGD step's (a count)"),
              ("fused_gemms_vs_sgd_gemms", "the fused pass's GEMMs alone / an SGD step's GEMMs alone"),
              ("fused_gemms_vs_torch_sgd", "the fused pass's GEMMs alone / torch SGD step"),
              ("sgd_gemms_vs_torch_sgd", "an SGD step's GEMMs alone / torch SGD step"),
              ("tangent_pass_vs_torch_sgd", "the fused tangent pass alone (no rule, update or μ) / torch SGD step"))


def floor_lines(res):
    """The table of what bounds the fused step from below (:mod:`torch_floor`), if measured."""
    floor = ((res.get("torch") or {}).get("results") or {}).get("floor")
    if not floor:
        return []
    lines = ["", "What bounds the torch MARTHE/RTHO fused step from below (784-500×3-10, f32, this run):", "",
             "| floor | ratio |", "|---|---|"]
    return lines + [f"| {what} | {floor[key]['ratio']:.2f}× |" for key, what in FLOOR_ROWS if key in floor]


def summary_table(res, info):
    load = res.get("load", {})
    lines = [f"Measured {info['date']} on {info['processor']}, {info['cpu_count']} cores "
             f"({info['platform']}, Python {info['python']}); command: `python benchmarks/{info['command']}`; "
             f"load average (1 min) {load.get('start', ['?'])[0]:.2f} at the start, "
             f"{load.get('end', ['?'])[0]:.2f} at the end. "
             "Ratios are medians of interleaved repetitions within this one run.", "",
             "| target (issue 19) | measured | target | |", "|---|---|---|---|"]
    for what, value, target in target_rows(res):
        lines.append(f"| {what} | {value:.2f}× | ≤ {target}× | {'met' if value <= target else '**MISSED**'} |")
    lines += floor_lines(res)
    lines += ["", "| benchmark | measured | target |", "|---|---|---|"]

    def row(name, value, target=""):
        lines.append(f"| {name} | {value} | {target} |")

    dyn = res["dynamics"]
    for prob, v in dyn.items():
        row(f"plain step, {prob} (ms: sgd / heavy_ball / nesterov / adam)",
            " / ".join(f"{v[n]['step_s'] * 1e3:.3g}" for n in bench_dynamics.NAMES))
    rr = res["rules"]["ratios"]
    for dname, v in rr.items():
        for key, tgt in (("hd/E=L", "≤ 1.05×"), ("rtho/E=L", "≤ 3×"), ("marthe_mu0.9/E=L", "≤ 3×"),
                         ("marthe_adaptive/E=L", "≤ 3×"), ("marthe_adaptive/E=val100", "≤ 4×")):
            row(f"{key.replace('/', ' ')} / plain, {dname}, MLP 784-500-500-500-10", f"{v[key]['ratio']:.2f}×", tgt)
    for r in res["oracle_vs_T"]["rows"]:
        fwd = f"{r['forward']['ratio']:.1f}× ({r['forward']['peak_bytes'] / 2**20:.0f} MiB)" if r["forward"] else "—"
        row(f"oracle / plain run, MLP 784-32-10, T = {r['T']}: reverse (peak) · forward (peak)",
            f"{r['reverse']['ratio']:.2f}× ({r['reverse']['peak_bytes'] / 2**20:.0f} MiB) · {fwd}", "reverse ≤ 3×")
    lr = res["lrsopt"]
    row(f"LRS-OPT s / outer iteration, {lr['reduced']['problem']}, T = 128", f"{lr['reduced']['seconds_per_iteration']:.2f} s")
    row(f"LRS-OPT s / outer iteration, {lr['paper']['problem']}, T = 512 ({lr['paper']['kind']})",
        f"{lr['paper']['seconds_per_iteration']:.1f} s")
    if res.get("torch"):
        t = res["torch"]["results"]
        row("torch HD / torch.optim.SGD step (float32, MLP 784-500-500-500-10)",
            f"{t['float32']['hd_vs_torch_sgd']['ratio']:.2f}×", "≤ 1.05×")
        row("torch MARTHE / torch.optim.SGD step (float32)", f"{t['float32']['marthe_vs_torch_sgd']['ratio']:.2f}×", "≤ 3×")
        for k, v in t["torch_vs_numpy"].items():
            row(f"torch bridge / NumPy, {k.replace('_', ' ')}", f"{v['ratio']:.2f}×")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repetitions (≲ 5 min)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch bridge")
    args = parser.parse_args()
    q, t0 = args.quick, time.perf_counter()
    res = {"targets": TARGETS, "load": {"start": os.getloadavg()}}
    steps, repeat = (5, 3) if q else (20, 5)
    res["dynamics"] = {"beale": bench_dynamics.bench(problems.beale(), 200, repeat)}
    for hidden in ((32,), (500, 500, 500)):
        p = problems.mnist_mlp(hidden=hidden, batch_size=100)
        res["dynamics"][p.name] = bench_dynamics.bench(p, steps, repeat)
    print("dynamics done", flush=True)
    res["rules"] = bench_rules.collect(quick=q)
    res["threads"] = bench_threads.collect(quick=q)
    res["oracle_vs_T"] = oracle_vs_T(q)
    plot_oracle(res["oracle_vs_T"], RESULTS / "oracle_cost_vs_T.png")
    res["lrsopt"] = lrsopt_timing()
    res["torch"] = None
    if not args.no_torch:
        try:
            import bench_torch
        except ImportError as exc:
            print("torch benchmarks skipped:", exc)
        else:
            import bench_torch_reverse
            res["torch"] = bench_torch.collect(quick=q)
            res["torch_reverse"] = bench_torch_reverse.collect(quick=q)
    res["total_seconds"] = time.perf_counter() - t0
    res["load"]["end"] = os.getloadavg()
    res["env"] = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    write("all", res)
    table = summary_table(res, machine())
    (RESULTS / "summary.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
