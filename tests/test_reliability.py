"""Reliability catalogue: bad input, divergence, kill-and-resume, reproducibility.

The catalogue (linked from the README) is the list of ids below; run it with
``python -m pytest tests/test_reliability.py -q`` (≈ 30 s on 2 cores).

* ``API_CASES`` — bad input to the public API (hgref.run, hgref.oracle.hypergradient,
  hgref.lrsopt, hgref.rules, hgref.dynamics, hgref.problems, hgref.data.load_mnist,
  hgref.torch): each raises ValueError/TypeError/FileNotFoundError whose message names the
  argument and the accepted values, and nothing is written to the working folder.
* ``CLI_CASES`` — bad command lines to ``hgref`` (``hgref.cli.main``): exit code 2, stderr
  names the flag (or file) and the accepted values, no file under ``--out``.
* ``DIVERGENCE_RULES`` — every rule blown up by a huge η_0 or β: ``DivergenceError.step``,
  ``Trajectory.diverged_at`` with ``on_divergence="return"``, finite arrays up to that step,
  and no NaN in the JSON written from the trajectory.
* Kill and resume: ``hgref hd --tiny`` killed with SIGKILL after its first run record,
  re-run: results JSON byte-identical to an uninterrupted run (``hgref toy`` is covered by
  ``tests/test_cli.py::test_resume_after_sigkill_gives_identical_json``).
* Reproducibility: the same seed gives bitwise-identical w_T in two processes; a different
  seed gives a different w_T (MNIST MLP, SGD and Adam with MARTHE).

Module tests hold more checks of the same kind (tests/test_cli.py, test_train.py,
test_oracle.py, test_lrsopt.py, test_rules_*.py, test_data.py, test_torch_*.py).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hgref
from hgref import DivergenceError, data, lrsopt
from hgref import dynamics as D
from hgref import problems as P
from hgref import rules as R
from hgref.cli import main
from hgref.io import atomic_write_json
from hgref.oracle import hypergradient

ROOT = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")


def _beale():
    return P.beale()


def _run(eta0=0.1, steps=5, rule=None, **kw):
    return lambda: hgref.run(_beale(), D.sgd(), rule or R.constant(), eta0, steps, **kw)


def _hg(schedule, **kw):
    return lambda: hypergradient(_beale(), D.sgd(), schedule, **kw)


def _corrupt_dir(tmp):
    (tmp / "mnist").mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp / "mnist" / name).write_bytes(b"not a gzip file")
    return tmp


#: (id, call, exception type, regex the message must match: argument name + accepted values)
API_CASES = [
    ("run-eta0-negative", _run(eta0=-0.1), ValueError, r"eta0 must be a finite number >= 0"),
    ("run-eta0-nan", _run(eta0=NAN), ValueError, r"eta0 must be a finite number, got nan"),
    ("run-eta0-inf", _run(eta0=INF), ValueError, r"eta0 must be a finite number, got inf"),
    ("run-eta0-str", _run(eta0="0.1"), TypeError, r"eta0 must be a real number, got '0.1'"),
    ("run-steps-zero", _run(steps=0), ValueError, r"steps must be an integer >= 1, got 0"),
    ("run-steps-float", _run(steps=2.5), TypeError, r"steps must be an integer, got 2.5"),
    ("run-seed-negative", _run(seed=-1), ValueError, r"seed must be an integer >= 0"),
    ("run-on_divergence-unknown", _run(on_divergence="ignore"), ValueError,
     r"unknown on_divergence 'ignore'; accepted values: 'raise', 'return'"),
    ("run-eval_every-zero", _run(eval_every=0), ValueError, r"eval_every must be an integer >= 1"),
    ("oracle-schedule-empty", _hg([]), ValueError, r"schedule must not be empty"),
    ("oracle-schedule-nan", _hg([0.1, NAN]), ValueError, r"schedule must contain only finite numbers"),
    ("oracle-schedule-inf", _hg([INF]), ValueError, r"schedule must contain only finite numbers"),
    ("oracle-schedule-negative", _hg([0.1, -0.1]), ValueError, r"schedule must be >= 0 everywhere; entry 1"),
    ("oracle-schedule-2d", _hg(np.ones((2, 2))), ValueError, r"schedule must be a 1-d array, got shape \(2, 2\)"),
    ("oracle-schedule-dtype", _hg("abc"), TypeError, r"schedule must be a 1-d array of real numbers"),
    ("oracle-method-unknown", _hg([0.1], method="backward"), ValueError,
     r"unknown method 'backward'; accepted values: 'forward', 'reverse', 'fd'"),
    ("oracle-checkpoint-forward", _hg([0.1], method="forward", checkpoint_every=2), ValueError,
     r"checkpoint_every applies to method='reverse' only"),
    ("oracle-checkpoint-zero", _hg([0.1], checkpoint_every=0), ValueError, r"checkpoint_every must be an integer >= 1"),
    ("oracle-fd_step-zero", _hg([0.1], method="fd", fd_step=0), ValueError, r"fd_step must be a finite number > 0"),
    ("lrsopt-maxiter-zero", lambda: lrsopt.lrs_opt(_beale(), D.sgd(), [0.1], maxiter=0), ValueError,
     r"maxiter must be an integer >= 1"),
    ("lrsopt-schedule0-empty", lambda: lrsopt.lrs_opt(_beale(), D.sgd(), []), ValueError,
     r"schedule0 must not be empty"),
    ("lrsopt-method-unknown", lambda: lrsopt.lrs_opt(_beale(), D.sgd(), [0.1], method="x"), ValueError,
     r"unknown method 'x'; accepted values"),
    ("lrsopt_pgd-lr-negative", lambda: lrsopt.lrs_opt_pgd(_beale(), D.sgd(), [0.1], lr=-1, iterations=1,
                                                            state_path="state.json"),
     ValueError, r"lr must be a finite number > 0"),
    ("lrsopt_pgd-steps-mismatch", lambda: lrsopt.lrs_opt_pgd(_beale(), D.sgd(), [0.1], steps=3, lr=1,
                                                               iterations=1, state_path="state.json"),
     ValueError, r"steps must equal len\(schedule0\) = 1, got 3"),
    ("lrsopt_pgd-max_change-zero", lambda: lrsopt.lrs_opt_pgd(_beale(), D.sgd(), [0.1], lr=1, iterations=1,
                                                                max_change=0, state_path="state.json"),
     ValueError, r"max_change must be a finite number > 0"),
    ("hd-beta-negative", lambda: R.hd(-1.0), ValueError, r"beta must be a finite number >= 0"),
    ("hd-beta-nan", lambda: R.hd(NAN), ValueError, r"beta must be a finite number, got nan"),
    ("hd-lop-unknown", lambda: R.hd(0.1, lop="rmsprop"), ValueError,
     r"unknown lop 'rmsprop'; accepted values: 'sgd', 'sgdn', 'adam'"),
    ("hd-objective-unknown", lambda: R.hd(0.1, objective="test"), ValueError,
     r"unknown objective 'test'; accepted values: 'train', 'validation'"),
    ("hd-momentum-above-1", lambda: R.hd(0.1, lop="sgdn", momentum=1.5), ValueError, r"momentum must lie in \[0, 1\]"),
    ("marthe-mu-above-1", lambda: R.marthe(0.1, 1.5), ValueError, r"mu must lie in \[0, 1\], got 1.5"),
    ("marthe-mu-negative", lambda: R.marthe(0.1, -0.1), ValueError, r"mu must be a finite number >= 0"),
    ("marthe-mu-unknown-name", lambda: R.marthe(0.1, "auto"), ValueError,
     r"unknown mu 'auto'; accepted values: 'adaptive'"),
    ("marthe-variant-unknown", lambda: R.marthe(0.1, variant="x"), ValueError,
     r"unknown variant 'x'; accepted values: 'paper', 'released'"),
    ("marthe-beta-inf", lambda: R.marthe(INF), ValueError, r"beta must be a finite number, got inf"),
    ("rtho-beta-negative", lambda: R.rtho(-1), ValueError, r"beta must be a finite number >= 0"),
    ("exponential-gamma-negative", lambda: R.exponential(gamma=-0.5), ValueError, r"gamma must be a finite number >= 0"),
    ("exponential-every-zero", lambda: R.exponential(every=0), ValueError, r"every must be an integer >= 1"),
    ("staircase-every-zero", lambda: R.staircase(0), ValueError, r"every must be an integer >= 1"),
    ("staircase-factor-negative", lambda: R.staircase(10, factor=-1), ValueError, r"factor must be a finite number >= 0"),
    ("sgdr-T0-zero", lambda: R.sgdr(0), ValueError, r"T0 must be an integer >= 1"),
    ("sgdr-Tmult-zero", lambda: R.sgdr(10, Tmult=0), ValueError, r"Tmult must be an integer >= 1"),
    ("sgdr-eta_min-negative", lambda: R.sgdr(10, eta_min=-1), ValueError, r"eta_min must be a finite number >= 0"),
    ("decimate-factor-1", lambda: R.decimate(R.rtho, _beale(), D.sgd(), 0.01, 10, beta_start=1.0, factor=1.0),
     ValueError, r"factor must be a finite number > 1"),
    ("dynamics-name-unknown", lambda: D.get_dynamics("rmsprop"), ValueError,
     r"unknown dynamics 'rmsprop'; accepted values: 'sgd', 'heavy_ball', 'nesterov', 'adam'"),
    ("dynamics-momentum-negative", lambda: D.nesterov(momentum=-0.1), ValueError, r"momentum must be a finite number >= 0"),
    ("dynamics-weight_decay-negative", lambda: D.sgd(weight_decay=-1), ValueError, r"weight_decay must be a finite number >= 0"),
    ("adam-b1-one", lambda: D.adam(b1=1.0), ValueError, r"b1 must lie in \[0, 1\), got 1.0"),
    ("dynamics-step-eta-negative", lambda: D.sgd().step(D.sgd().init(np.zeros(2)), -1.0, np.zeros(2)), ValueError,
     r"eta must be a finite number >= 0"),
    ("dynamics-init-w0-2d", lambda: D.sgd().init(np.zeros((2, 2))), ValueError, r"w0 must be a 1-d array"),
    ("dynamics-step-grad-shape", lambda: D.adam().step(D.adam().init(np.zeros(2)), 0.1, np.zeros(3)), ValueError,
     r"grad must have shape \(2,\) \(the shape of state.w\), got \(3,\)"),
    ("beale-w0-length", lambda: P.beale(w0=[1, 2, 3]), ValueError, r"w0 must have length 2, got length 3"),
    ("bukin-eps-negative", lambda: P.bukin(eps=-1), ValueError, r"eps must be a finite number > 0"),
    ("quadratic-hessian-shape", lambda: P.quadratic(np.eye(2), [1, 2, 3]), ValueError,
     r"hessian must be a symmetric \(3, 3\) matrix"),
    ("mnist_mlp-hidden-zero", lambda: P.mnist_mlp(hidden=(0,)), ValueError, r"hidden\[0\] must be an integer >= 1"),
    ("mnist_mlp-batch_size-zero", lambda: P.mnist_mlp(batch_size=0), ValueError, r"batch_size must be an integer >= 1"),
    ("mnist_mlp-init-unknown", lambda: P.mnist_mlp(init="he2"), ValueError,
     r"unknown init 'he2'; accepted values: 'glorot', 'he', 'zeros'"),
    ("mnist_mlp-l2-negative", lambda: P.mnist_mlp(l2=-1), ValueError, r"l2 must be a finite number >= 0"),
    ("mnist_mlp-sizes-too-large", lambda: P.mnist_mlp(sizes=(70000, 10, 10)), ValueError,
     r"sizes must sum to at most n=10000"),
    ("load_mnist-split-unknown", lambda: data.load_mnist("validation"), ValueError,
     r"unknown split 'validation'; accepted values: 'train', 'test'"),
    ("load_mnist-missing-files", lambda: data.load_mnist("test", data_dir="no-such-dir"), FileNotFoundError,
     r"t10k-images-idx3-ubyte.gz.*not found in .*Fix: set HGREF_DATA"),
    ("load_mnist-corrupt-file", lambda: data.load_mnist("test", data_dir=_corrupt_dir(Path("corrupt"))), ValueError,
     r"is corrupt or not the published file.*move it away"),
]


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_api_input_is_a_clear_error_and_writes_nothing(call, exc, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = set(_files(tmp_path))
    with pytest.raises(exc, match=match):
        call()
    assert set(_files(tmp_path)) - before <= {"corrupt/mnist/t10k-images-idx3-ubyte.gz",
                                              "corrupt/mnist/t10k-labels-idx1-ubyte.gz"}


def test_torch_optimizer_bad_input():
    torch = pytest.importorskip("torch")
    from hgref.torch import HypergradientOptimizer
    params = [torch.nn.Parameter(torch.zeros(3))]
    for kwargs, match in [(dict(lr=-1.0), r"Invalid learning rate: -1.0"), (dict(lr=NAN), r"learning rate.*nan"), (dict(lr=0.1, rule="rmsprop"), r"rule.*rmsprop.*accepted values.*hd"),
                          (dict(lr=0.1, rule="hd", hyper_lr=-1.0), r"hyper_lr.*-1.0")]:
        lr = kwargs.pop("lr")
        with pytest.raises((ValueError, TypeError), match=match):
            HypergradientOptimizer(params, lr, **kwargs)


#: (id, argv after the command, regex on stderr naming the flag and accepted values)
CLI_CASES = [
    ("unknown-command", ["frobnicate"], r"invalid choice: 'frobnicate' \(choose from 'toy', 'schedules', 'hd', 'check', 'compare'\)"),
    ("toy-steps-zero", ["toy", "--steps", "0"], r"argument --steps: expected a finite value > 0, got '0'"),
    ("toy-steps-negative", ["toy", "--steps", "-3"], r"argument --steps: expected a finite value > 0"),
    ("toy-formats-unknown", ["toy", "--formats", "jpg"], r"argument --formats: invalid format 'jpg'; accepted values: png, svg, pdf"),
    ("toy-methods-unknown", ["toy", "--methods", "foo"], r"argument --methods: invalid value 'foo'; accepted values.*hd, rtho, marthe"),
    ("toy-jobs-zero", ["toy", "--jobs", "0"], r"argument --jobs: expected a finite value > 0"),
    ("toy-seed-negative", ["toy", "--seed", "-1"], r"argument --seed: expected a finite value >= 0"),
    ("toy-several-seeds", ["toy", "--seeds", "0", "1"], r"deterministic: give one --seed"),
    ("schedules-mus-above-1", ["schedules", "--tiny", "--mus", "1.5"], r"argument --mus: expected a value in \[0, 1\], got '1.5'"),
    ("schedules-mus-nan", ["schedules", "--tiny", "--mus", "nan"], r"argument --mus: expected a value in \[0, 1\], got 'nan'"),
    ("schedules-betas-inf", ["schedules", "--tiny", "--betas", "inf"], r"argument --betas: expected a finite value > 0"),
    ("schedules-betas-negative", ["schedules", "--tiny", "--betas", "-1"], r"argument --betas: expected a finite value > 0"),
    ("schedules-steps-float", ["schedules", "--tiny", "--steps", "2.5"], r"argument --steps: expected an integer, got '2.5'"),
    ("schedules-hidden-zero", ["schedules", "--tiny", "--hidden", "0"], r"argument --hidden: expected a finite value > 0"),
    ("schedules-tiny-and-paper", ["schedules", "--tiny", "--paper-scale"], r"not allowed with argument"),
    ("schedules-missing-data", ["schedules", "--tiny", "--data-dir", "{tmp}/nodata"],
     r"t10k-images-idx3-ubyte.gz.*not found in .*nodata.*from --data-dir\).*Fix: pass --data-dir DIR"),
    ("schedules-corrupt-data", ["schedules", "--tiny", "--data-dir", "{tmp}/corrupt"], r"is corrupt or not the published file"),
    ("hd-lops-unknown", ["hd", "--tiny", "--lops", "rmsprop"], r"argument --lops: invalid value 'rmsprop'; accepted values.*none, sgd, sgdn, adam"),
    ("hd-epochs-zero", ["hd", "--tiny", "--epochs", "0"], r"argument --epochs: expected a finite value > 0"),
    ("hd-alpha0s-nan", ["hd", "--tiny", "--alpha0s", "nan"], r"argument --alpha0s: expected a finite value > 0, got 'nan'"),
    ("toy-out-unwritable", ["toy", "--steps", "5", "--out", "{tmp}/blocker/results"], r"output folder .* cannot be created"),
]


@pytest.mark.parametrize("argv,match", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_command_line_exits_2_and_writes_nothing(argv, match, tmp_path, capsys):
    _corrupt_dir(tmp_path / "corrupt")
    (tmp_path / "blocker").write_text("")
    out = tmp_path / "out"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    env_before = os.environ.get("HGREF_DATA")
    try:
        code = main(argv + ["--quiet"] if argv[0] != "frobnicate" else argv)
    except SystemExit as exc:       # argparse errors
        code = exc.code
    assert code == 2
    assert re.search(match, capsys.readouterr().err, re.S)
    assert not out.exists() or _files(out) == []
    assert (tmp_path / "blocker").read_text() == ""
    assert os.environ.get("HGREF_DATA") == env_before      # --data-dir does not leak into the caller


# --- divergence ------------------------------------------------------------------------------

#: (id, rule, η0, dynamics): each blows up on Beale from its default start within 200 steps.
DIVERGENCE_RULES = [
    ("constant", R.constant(), 1e3, D.sgd()),
    ("exponential", R.exponential(0.999), 1e3, D.sgd()),
    ("staircase", R.staircase(50, 0.5), 1e3, D.sgd()),
    ("sgdr", R.sgdr(20), 1e3, D.sgd()),
    ("hd-sgd", R.hd(1e6, lop="sgd"), 1e-3, D.sgd()),
    ("hd-sgdn", R.hd(1e6, lop="sgdn"), 1e-3, D.sgd()),
    ("hd-adam", R.hd(1e3, lop="adam"), 1e-3, D.sgd()),
    ("rtho", R.rtho(1e6), 1e-3, D.sgd()),
    ("marthe-fixed-mu", R.marthe(1e6, 0.9, adapt_beta=False), 1e-3, D.sgd()),
    ("marthe-adaptive", R.marthe(1e6), 1e-3, D.sgd()),
    ("hd-sgd-on-adam", R.hd(1e6, lop="sgd"), 1e-3, D.adam()),
]


@pytest.mark.parametrize("rule,eta0,dyn", [c[1:] for c in DIVERGENCE_RULES], ids=[c[0] for c in DIVERGENCE_RULES])
def test_divergence_is_reported_with_its_step_and_no_nan_is_written(rule, eta0, dyn, tmp_path):
    problem = P.beale()
    with pytest.raises(DivergenceError, match=r"run diverged at step \d+: non-finite") as info:
        hgref.run(problem, dyn, rule, eta0, 200)
    step = info.value.step
    tr = hgref.run(problem, dyn, rule, eta0, 200, on_divergence="return")
    assert tr.diverged_at == step
    assert len(tr.etas) == len(tr.losses) == step
    assert np.all(np.isfinite(tr.etas)) and np.all(np.isfinite(tr.losses)) and np.all(np.isfinite(tr.state.w))
    path = atomic_write_json(tmp_path / "run.json", {"etas": tr.etas, "losses": tr.losses, "objective": tr.objective,
                                                     "diverged_at": tr.diverged_at})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["objective"] is None and json.loads(text)["diverged_at"] == step


# --- kill and resume -------------------------------------------------------------------------

_HD = ["hd", "--tiny", "--models", "logreg", "--ops", "sgd,adam", "--no-grid", "--jobs", "1", "--quiet"]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")   # HGREF_DATA: the root conftest


def test_hd_killed_mid_table_resumes_to_identical_json(tmp_path, mnist_data):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([sys.executable, "-m", "hgref.cli", *_HD, "--out", str(ref)], check=True, env=_env(), cwd=ROOT)
    n_runs = len(list((ref / "hd" / "runs").glob("*.json")))
    proc = subprocess.Popen([sys.executable, "-m", "hgref.cli", *_HD, "--out", str(killed)], env=_env(), cwd=ROOT)
    runs = killed / "hd" / "runs"
    deadline = time.time() + 60
    while time.time() < deadline and not list(runs.glob("*.json")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(runs.glob("*.json")))
    assert 1 <= done < n_runs, "the kill should land mid-table"
    assert not (killed / "hd" / "hd.json").exists()
    subprocess.run([sys.executable, "-m", "hgref.cli", *_HD, "--out", str(killed)], check=True, env=_env(), cwd=ROOT)
    assert (killed / "hd" / "hd.json").read_bytes() == (ref / "hd" / "hd.json").read_bytes()
    assert not list(runs.glob(".*.tmp"))


# --- reproducibility -------------------------------------------------------------------------

_SNIPPET = """
import hashlib, sys
from hgref import problems, dynamics, rules, run
p = problems.mnist_mlp((16,), sizes=(500, 100, 100))
for seed in (0, 0, 1):
    for dyn, rule in ((dynamics.sgd(), rules.constant()), (dynamics.adam(), rules.marthe(1e-6))):
        tr = run(p, dyn, rule, 1e-2, 20, seed=seed)
        print(seed, dyn.name, hashlib.sha256(tr.state.w.tobytes()).hexdigest(), tr.etas[-1].hex())
"""


def test_same_seed_is_bitwise_identical_across_processes(mnist_data):
    outs = [subprocess.run([sys.executable, "-c", _SNIPPET], check=True, env=_env(), cwd=ROOT,
                           capture_output=True, text=True).stdout.split("\n") for _ in range(2)]
    assert outs[0] == outs[1]
    lines = [line.split() for line in outs[0] if line]
    assert len(lines) == 6
    assert lines[0] == lines[2] and lines[1] == lines[3]                     # seed 0 twice in one process
    assert lines[4][2] != lines[0][2] and lines[5][2] != lines[1][2]         # seed 1 differs


# --- frictions a new user met (issue 15): each fixed, each checked ----------------------------

def _help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_help_is_plain_text_and_lists_every_command(capsys):
    out = _help([], capsys)
    for command in ("toy", "schedules", "hd", "check"):
        assert f"\n    {command}" in out
    for argv in ([], ["toy"], ["schedules"], ["hd"], ["check"]):
        text = _help(argv, capsys)
        assert "``" not in text and ":func:" not in text and ":mod:" not in text, argv


def test_toy_offers_only_the_flags_it_uses(capsys):
    out = _help(["toy"], capsys)
    assert "--data-dir" not in out and "--seeds" not in out and "--seed SEED" in out
    with pytest.raises(SystemExit) as exc:
        main(["toy", "--data-dir", "x"])
    assert exc.value.code == 2 and "unrecognized arguments: --data-dir" in capsys.readouterr().err


def test_schedules_help_shows_every_default_and_every_init_is_accepted(capsys):
    from hgref.experiments import schedules as sch
    from hgref.problems import mnist
    options = " ".join(_help(["schedules"], capsys).split("options:")[1].split()).split(" --")
    for flag in ("betas", "mus", "lrs-opt-iterations", "lrs-opt-lr", "lrs-opt-seeds"):
        assert any(o.startswith(flag + " ") and "(default: " in o for o in options), flag
    assert set(sch.INITS) <= set(mnist._INITS)              # what --init offers, mnist_mlp takes
    for init in sch.INITS:
        assert build_parser_args(["schedules", "--init", init]).init == init


def build_parser_args(argv):
    from hgref.cli import build_parser
    return build_parser().parse_args(argv)


def test_hd_op_vocabulary_is_one(capsys):
    from hgref.experiments import hd as hd_exp
    assert hd_exp.OPS == ("sgd", "sgdn", "adam") and "sgdn" in hd_exp.LOPS
    assert set(hd_exp.OP_LABELS) == set(hd_exp.BETA) == set(hd_exp.THRESHOLD) == set(hd_exp.OPS)
    assert hd_exp.OP_LABELS["sgdn"] == "SGDN" and hd_exp.LOP_LABELS["sgdn"] == "SGDN"
    assert build_parser_args(["hd", "--ops", "nesterov,sgd"]).ops == ("sgdn", "sgd")   # old spelling
    assert "`sgdn`" in (ROOT / "README.md").read_text()


def test_data_dir_errors_speak_command_line(tmp_path, capsys):
    assert main(["schedules", "--tiny", "--quiet", "--data-dir", str(tmp_path / "nodata"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "from --data-dir)" in err and "pass --data-dir DIR" in err
    assert "from HGREF_DATA" not in err and "data_dir=" not in err


def test_mnist_problem_checks_arguments_before_loading(tmp_path):
    nowhere = tmp_path / "no-data"          # would raise MissingDataError if it were loaded
    for kwargs, match in [(dict(batch_size=0), r"batch_size must be an integer >= 1"),
                          (dict(batch_size=200, sizes=(100, 10, 10)), r"batch_size must be <= the training size 100"),
                          (dict(sizes=(100, 0, 10)), r"sizes\[1\] must be an integer >= 1")]:
        with pytest.raises(ValueError, match=match):
            P.mnist_mlp(data_dir=nowhere, **kwargs)


def test_toy_command_prints_no_warning_under_w_error(tmp_path):
    # Beale's HD/RTHO β grids reach diverging runs: reported in the results, never warned
    res = subprocess.run([sys.executable, "-W", "error", "-m", "hgref", "toy", "--problems", "beale",
                          "--methods", "hd,rtho", "--quiet", "--out", str(tmp_path)], env=_env(), cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    data = json.loads((tmp_path / "toy" / "toy.json").read_text())
    assert any(r["result"].get("diverged_at") is not None for r in data["runs"])


_TORCH_NO_WARNING = """
import torch, warnings
from torch.optim.lr_scheduler import ExponentialLR, LambdaLR
from hgref.torch import HypergradientOptimizer, RTHO, SGDHD
w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
opt = RTHO([w], lr=0.1, hyper_lr=1e-3, objective="train")
def closure():
    opt.zero_grad()
    loss = (w ** 4).sum()
    loss.backward(create_graph=True)
    return loss
for _ in range(3):
    loss = opt.step(closure)
    assert float(loss) > 0 and not loss.requires_grad and not w.grad.requires_grad
h = opt.lr_history("hypergradient")
assert torch.equal(h, opt.lr_history(0, "hypergradient")) and h[1] != 0
try:
    HypergradientOptimizer([w], lr=0.1, rule="hd")
    raise SystemExit("hd without hyper_lr accepted")
except ValueError as exc:
    assert "hyper_lr" in str(exc)
HypergradientOptimizer([w], lr=0.1, rule="hd", hyper_lr=0.0)     # explicit 0: allowed
for make, warns in ((lambda o: ExponentialLR(o, 0.99), False), (lambda o: LambdaLR(o, lambda k: 0.99 ** k), True)):
    v = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = SGDHD([v], lr=0.1, hyper_lr=1e-2)
    sched = make(opt)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(4):
            opt.zero_grad(); (v ** 2).sum().backward(); opt.step(); sched.step()
    assert bool(seen) == warns and all("never adapts" in str(m.message) for m in seen), seen
    if not warns:   # chainable: the learned η is scaled, so HD still moves it
        assert opt.param_groups[0]["lr"] != 0.1 * 0.99 ** 4
print("ok")
"""


def test_torch_bridge_frictions_in_a_fresh_process():
    pytest.importorskip("torch")
    res = subprocess.run([sys.executable, "-W", "error", "-c", _TORCH_NO_WARNING], env=_env(), cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout == "ok\n" and res.stderr == "", res.stderr
