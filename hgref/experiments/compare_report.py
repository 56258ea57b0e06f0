"""Summary, Markdown table and figure of ``hgref compare`` (:mod:`hgref.experiments.compare`).

Per task and method: every knob value's mean ± sd (over seeds) of the final validation loss and
accuracy and of the test accuracy, divergences and stalls, steps to reach the constant baseline's
final validation loss (the best constant η of the grid, per seed, on the method's own validation
curve), and on the SGD task the oracle's f_T, ‖∇f_T‖ and f_T / f_T(LRS-OPT) (same seed). The
reported value of a method is its grid value of lowest mean final validation loss among the
values with no diverged seed.
"""
from __future__ import annotations

import numpy as np

from ._figures import mean_sd, pyplot
from .runner import format_value

__all__ = ["summarize", "wall_summary", "markdown", "figure"]

_TOL = 1e-9


def _vkey(value):
    return "none" if value is None else format_value(value)


def _groups(records):
    out = {}
    for key, rec in records.items():
        c = rec["config"]
        out.setdefault(c["task"], {}).setdefault(c["method"], {}).setdefault(_vkey(c["value"]), []).append(key)
    return out


def _final_val(res):
    return res["val_losses"][-1] if res["diverged_at"] is None and res["val_losses"] else None


def _steps_to(res, target):
    if target is None or res["diverged_at"] is not None:
        return None
    for t, v in zip(res["eval_steps"], res["val_losses"]):
        if v <= target * (1 + _TOL):
            return int(t)
    return None


def _row(records, keys, baseline, lrs_f):
    recs = [records[k] for k in keys]
    res = [r["result"] for r in recs]
    seeds = [r["config"]["seed"] for r in recs]
    ok = [r["diverged_at"] is None for r in res]
    metric = lambda name: [r["metrics"].get(name) if o else None for r, o in zip(res, ok)]  # noqa: E731
    row = {"value": recs[0]["config"]["value"], "n_seeds": len(recs),
           "n_diverged": sum(not o for o in ok),
           "diverged_at": [r["diverged_at"] for r in res], "reasons": [r["reason"] for r in res],
           "n_stalled": sum(bool(r.get("stalled")) for r in res)}
    for name in ("val_loss", "val_acc", "test_acc"):
        row[f"{name}_mean"], row[f"{name}_sd"] = mean_sd(metric(name))
    steps = [_steps_to(r, baseline.get(s)) for r, s in zip(res, seeds)]
    row["steps_to_baseline"] = steps
    row["steps_to_baseline_mean"] = mean_sd(steps)[0] if any(x is not None for x in steps) else None
    oracle = [r.get("oracle") or {} for r in res]
    row["oracle_view"] = next((o["view"] for o in oracle if o.get("view")), None)
    if row["oracle_view"]:
        f = [o.get("f_T") for o in oracle]
        row["f_T_mean"], row["f_T_sd"] = mean_sd(f)
        row["grad_norm_mean"] = mean_sd([o.get("grad_norm") for o in oracle])[0]
        rel = [fi / lrs_f[s] if fi is not None and lrs_f.get(s) else None for fi, s in zip(f, seeds)]
        row["f_T_over_lrs_opt"] = rel
        row["f_T_over_lrs_opt_mean"] = mean_sd(rel)[0] if any(x is not None for x in rel) else None
        row["oracle_diverged_at"] = [o.get("diverged_at") for o in oracle]
    row["twin_gap"] = [abs(o["f_T"] - r["last_iterate_val_loss"]) if o.get("view") == "exact" and o.get("f_T")
                       is not None and r.get("last_iterate_val_loss") is not None else None
                       for o, r in zip(oracle, res)]
    return row


def _best(rows):
    ok = {k: r for k, r in rows.items() if r["n_diverged"] == 0 and np.isfinite(r["val_loss_mean"])}
    return min(ok, key=lambda k: ok[k]["val_loss_mean"]) if ok else None


def summarize(records):
    """``{"tasks": {task: {"baseline", "lrs_opt_f_T", "methods": {method: {"rows", "best", "info"}}}}}``."""
    tasks = {}
    for task, methods in _groups(records).items():
        lrs_f = {}
        for key in methods.get("lrs_opt", {}).get("none", []):
            o = records[key]["result"]["oracle"]
            lrs_f[records[key]["config"]["seed"]] = o.get("f_T")
        const = methods.get("constant", {})
        crow = {v: _row(records, keys, {}, {}) for v, keys in const.items()}
        cbest = _best(crow)
        baseline = {}
        if cbest is not None:
            for key in const[cbest]:
                baseline[records[key]["config"]["seed"]] = _final_val(records[key]["result"])
        any_key = next(iter(next(iter(methods.values())).values()))[0]
        entry = {"steps": records[any_key]["config"]["steps"],
                 "baseline": {"method": "constant", "value_key": cbest, "val_loss_by_seed": baseline},
                 "lrs_opt_f_T": lrs_f, "methods": {}}
        for method, by_value in methods.items():
            rows = {v: _row(records, keys, baseline, lrs_f) for v, keys in by_value.items()}
            info = records[next(iter(by_value.values()))[0]]["result"].get("method_info", {})
            entry["methods"][method] = {"rows": rows, "best": _best(rows), "info": info}
        tasks[task] = entry
    return {"tasks": tasks}


def wall_summary(records, walls):
    """Wall time per step over plain torch SGD, measured in the same process, per run and method."""
    runs, by = {}, {}
    for key, w in walls.items():
        if not w or not w.get("sgd_step_seconds"):
            continue
        c = records[key]["config"]
        ratio = w["step_seconds"] / w["sgd_step_seconds"]
        runs[key] = dict(w, ratio=ratio)
        by.setdefault(c["task"], {}).setdefault(c["method"], {}).setdefault(_vkey(c["value"]), []).append(ratio)
    means = {t: {m: {v: float(np.median(r)) for v, r in vs.items()} for m, vs in ms.items()} for t, ms in by.items()}
    return {"note": "wall time per step (loss, backward, optimizer step; hd/rtho/marthe include their ∇E) "
                    "over plain torch.optim.SGD on the same model and minibatches, same process; median over "
                    "seeds. Not deterministic: measured on a shared machine.", "median_ratio": means, "runs": runs}


def _label(method):
    from ..plotting import method_style
    return method_style(method)["label"]


def _fmt(m, s, scale=1.0, digits=3):
    if m is None or not np.isfinite(m):
        return "–"
    return f"{scale * m:.{digits}f} ± {scale * s:.{digits}f}" if s is not None and np.isfinite(s) else f"{scale * m:.{digits}f}"


TASK_TITLES = {"marthe_mlp": "MARTHE §5: MLP, SGD family",
               "hd_logreg": "HD papers: logistic regression, Adam family",
               "hd_mlp": "HD papers: MLP, Adam family"}


def _knob(method, m):
    """``"d_coef = 2 of {0.5, 1*, 2}"`` (``*``: the authors' default)."""
    info = m["info"]
    if method == "lrs_opt" or not info.get("knob"):
        return "–"
    default = info.get("default")
    dkey = None if default is None else format_value(default)
    grid = ", ".join(v + ("*" if v == dkey else "") for v in m["rows"])
    return f"{info['knob']} = {m['best']}" + ("" if len(m["rows"]) == 1 else f" of {{{grid}}}")


def _f_T(r, rel):
    if not r.get("oracle_view") or r.get("f_T_mean") is None or not np.isfinite(r["f_T_mean"]):
        return "–"
    return f"{r['f_T_mean']:.3f}" + ("" if rel is None else f" ({rel:.3f})")


def _title(task, entry):
    return f"{TASK_TITLES.get(task, task)}, T = {entry['steps']}"


def markdown(summary, wall):
    """The README table: one block per task, the best grid value of each method (the oracle's
    columns only on tasks where the oracle's view applies)."""
    lines = []
    for task, entry in summary["tasks"].items():
        oracle = any(r.get("oracle_view") for m in entry["methods"].values() for r in m["rows"].values())
        head = ["method", "knob (best of grid)", "val. acc. %", "val. loss", "test acc. %", "steps to const. loss",
                "time/step ÷ SGD"] + (["oracle f_T (÷ LRS-OPT's)", "‖∇f_T‖", "oracle"] if oracle else [])
        lines += [f"**{_title(task, entry)}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method, m in entry["methods"].items():
            best = m["best"]
            if best is None:
                cells = [_label(method), f"all {len(m['rows'])} grid values diverged"] + ["–"] * (len(head) - 2)
                lines.append("| " + " | ".join(cells) + " |")
                continue
            r = m["rows"][best]
            steps = r["steps_to_baseline"]
            reached = sum(s is not None for s in steps)
            st = f"{r['steps_to_baseline_mean']:.0f} ({reached}/{len(steps)})" if reached else f"never (0/{len(steps)})"
            ratio = wall.get("median_ratio", {}).get(task, {}).get(method, {}).get(best)
            view = r.get("oracle_view")
            cells = [_label(method), _knob(method, m), _fmt(r["val_acc_mean"], r["val_acc_sd"], 100, 1),
                     _fmt(r["val_loss_mean"], r["val_loss_sd"]), _fmt(r["test_acc_mean"], r["test_acc_sd"], 100, 1),
                     st, "–" if ratio is None else f"{ratio:.2f}"]
            if oracle:
                cells += [_f_T(r, r.get("f_T_over_lrs_opt_mean")),
                          "–" if not view else f"{r['grad_norm_mean']:.3g}", "n/a" if not view else view]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _seed0(records, task, method, vkey):
    keys = sorted((k for k, r in records.items() if r["config"]["task"] == task and r["config"]["method"] == method
                   and _vkey(r["config"]["value"]) == vkey), key=lambda k: records[k]["config"]["seed"])
    return records[keys[0]] if keys else None


def figure(records, summary, path, formats=("png",)):
    """Top: effective schedules η_t (first seed, best grid value) per task, LRS-OPT in black.
    Bottom: final validation accuracy per method, mean ± sd over seeds (dots: seeds)."""
    from ..plotting import method_style, save
    plt = pyplot()
    tasks = list(summary["tasks"])
    fig, axes = plt.subplots(2, len(tasks), figsize=(6.2 * len(tasks), 9.5), squeeze=False)
    handles = {}
    for j, task in enumerate(tasks):
        entry, ax, bx = summary["tasks"][task], axes[0, j], axes[1, j]
        names = list(entry["methods"])
        for i, method in enumerate(names):
            m = entry["methods"][method]
            style = method_style(method, marker=None)
            if m["best"] is not None:
                rec = _seed0(records, task, method, m["best"])
                etas = np.asarray(rec["result"]["etas"], dtype=float)
                lw = 2.2 if method == "lrs_opt" else 1.2
                (h,) = ax.plot(np.arange(len(etas)), np.where(etas > 0, etas, np.nan), lw=lw, **style)
                handles[method] = h
                r = m["rows"][m["best"]]
                accs = [100 * rec_["result"]["metrics"]["val_acc"] for rec_ in records.values()
                        if rec_["config"]["task"] == task and rec_["config"]["method"] == method
                        and _vkey(rec_["config"]["value"]) == m["best"] and rec_["result"]["metrics"]]
                bx.errorbar([i], [100 * r["val_acc_mean"]], yerr=[100 * r["val_acc_sd"]], fmt="o",
                            color=style["color"], capsize=4, ms=7)
                bx.plot([i] * len(accs), accs, ".", color="k", ms=4, alpha=0.6)
            else:
                bx.text(i, 0.02, "diverged", rotation=90, transform=bx.get_xaxis_transform(), ha="center", fontsize=8)
        seed0 = min(r["config"]["seed"] for r in records.values())
        ax.set(yscale="log", xlabel="step t", ylabel="effective learning rate η_t",
               title=f"{_title(task, entry)}\neffective η_t (seed {seed0}, best grid value)")
        if task == "marthe_mlp" and "lrs_opt" not in entry["methods"]:
            ax.text(0.5, 0.02, "LRS-OPT not available (run with --lrs-opt)", transform=ax.transAxes, ha="center")
        bx.set_xticks(range(len(names)), [_label(n) for n in names], rotation=60, ha="right", fontsize=8)
        bx.set(ylabel="final validation accuracy (%)", title="validation accuracy: mean ± sd over seeds (dots: seeds)")
        lrs = entry["methods"].get("lrs_opt")
        if lrs and lrs["best"]:
            bx.axhline(100 * lrs["rows"][lrs["best"]]["val_acc_mean"], color="k", ls="--", lw=0.8)
        bx.grid(axis="y", alpha=0.3)
    fig.legend([handles[k] for k in handles], [_label(k) for k in handles], loc="upper center",
               ncol=min(7, len(handles)), fontsize=9, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return save(fig, path, formats)
