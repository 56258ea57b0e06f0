"""hgref compare: the torch loop's effective-schedule recorder (known schedules), the divergence
rule, the oracle twin (exact for scalar-η SGD methods), and ``hgref compare --tiny`` end to end
(results, resume, LRS-OPT records shared with ``hgref schedules``, bad input)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def tp():
    import torch
    torch.set_num_threads(1)
    from hgref.problems import mnist_mlp
    from hgref.torch.mnist import mnist_torch
    return mnist_torch(mnist_mlp((8,), sizes=(300, 100, 100), seed=1))


def test_recorder_gives_a_torch_scheduler_s_exponential_schedule(tp):
    import torch
    from hgref.torch.compare import train
    from hgref.torch.peers import Stepper
    model = tp.model()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    out = train(tp, Stepper(opt, model, post=sched.step), 7)
    np.testing.assert_allclose(out["etas"], 0.2 * 0.9 ** np.arange(7), rtol=1e-15)


def test_recorder_on_the_bridge_constant_and_exponential(tp):
    """hgref's constant rule records η_0; under hgref.torch.make_scheduler('exponential') it
    records η_0 γ^t — the η of hgref.rules.exponential, which hgref.train.run reports."""
    from hgref import dynamics, rules
    from hgref.torch import make_scheduler
    from hgref.torch.compare import make_method, train
    from hgref.train import run
    out = train(tp, make_method("constant", tp.model(), tp, value=0.05), 5)
    assert out["etas"] == [0.05] * 5
    stepper = make_method("constant", tp.model(), tp, value=0.05)
    sched = make_scheduler(stepper.optimizer, "exponential", gamma=0.8)
    stepper._post = sched.step
    out = train(tp, stepper, 6)
    ref = run(tp.problem, dynamics.sgd(), rules.exponential(gamma=0.8), 0.05, 6, metrics=False)
    np.testing.assert_allclose(out["etas"], ref.etas, rtol=1e-15)
    np.testing.assert_allclose(out["etas"], 0.05 * 0.8 ** np.arange(6), rtol=1e-15)


@pytest.mark.parametrize("method,value", [("constant", 0.1), ("hd", 1e-3), ("marthe", 1e-3), ("dadapt_sgd", None)])
def test_oracle_twin_is_exact_for_scalar_sgd_methods(tp, method, value):
    """The recorded schedule replayed by the NumPy oracle on the same w_0 and minibatches gives
    the torch run's E(w_T) (float64): the recorder and the twin agree to rounding."""
    from hgref import dynamics
    from hgref.oracle import hypergradient
    from hgref.torch.compare import make_method, train
    out = train(tp, make_method(method, tp.model(), tp, value=value), 10, seed=3)
    hg = hypergradient(tp.problem, dynamics.sgd(), out["etas"], seed=3)
    assert hg.value == pytest.approx(out["last_iterate_val_loss"], rel=1e-12)
    assert out["metrics"]["val_loss"] == pytest.approx(hg.value, rel=1e-12)


def test_divergence_rule():
    from hgref.torch.compare import divergence, stalled
    assert divergence(0.1, 1.0, True) is None
    assert divergence(0.1, math.nan, True) == "loss"
    assert divergence(math.inf, 1.0, True) == "eta"
    assert divergence(0.1, 1.0, False) == "weights"
    assert divergence(1e3 + 1, 1.0, True) == "eta>1e3" and divergence(-2e3, 1.0, True) == "eta>1e3"
    assert stalled([2.0] + [1.0] * 9 + [2.5]) and not stalled([2.0] + [1.0] * 10)


def test_a_run_stops_at_the_diverging_step(tp):
    from hgref.torch.compare import make_method, train
    out = train(tp, make_method("constant", tp.model(), tp, value=5e3), 5)
    assert (out["diverged_at"], out["reason"], out["etas"], out["metrics"]) == (0, "eta>1e3", [], {})
    out = train(tp, make_method("hd", tp.model(), tp, value=1e9, eta0=0.1), 30)   # HD throws η up
    assert out["reason"] == "eta>1e3" and out["diverged_at"] >= 1
    assert len(out["etas"]) == out["diverged_at"] and max(out["etas"]) <= 1e3
    import torch
    from hgref.torch.peers import Stepper
    model = tp.model()
    out = train(tp, Stepper(torch.optim.SGD(model.parameters(), lr=0.1), model,
                            post=lambda: model.weights[0].data.fill_(math.inf)), 5)
    assert (out["diverged_at"], out["reason"]) == (0, "weights")


def _main(*argv):
    from hgref.cli import main
    return main(["compare", "--tiny", "--quiet", "--jobs", "1", *argv])


def test_compare_tiny_end_to_end_resume_and_shared_lrs_opt(tmp_path, mnist_data):
    from hgref.cli import main
    assert _main("--out", str(tmp_path), "--lrs-opt") == 0
    out = tmp_path / "compare"
    data = json.loads((out / "compare.json").read_text())
    assert {r["key"] for r in data["runs"]} >= {"marthe_mlp-seed=0-lrs_opt", "hd_mlp-seed=0-mechanic_adam"}
    assert all("wall" not in r["result"] for r in data["runs"])
    tasks = data["summary"]["tasks"]
    assert set(tasks) == {"marthe_mlp", "hd_logreg", "hd_mlp"}
    sgd = tasks["marthe_mlp"]["methods"]
    assert len(sgd) == 13 and all(len(tasks[t]["methods"]) == 12 for t in ("hd_logreg", "hd_mlp"))
    lrs = sgd["lrs_opt"]["rows"]["none"]
    assert lrs["f_T_over_lrs_opt"] == [1.0]
    for method in ("constant", "hd", "rtho", "marthe", "dadapt_sgd", "dog"):     # scalar-η SGD: exact twin
        row = sgd[method]["rows"][sgd[method]["best"]]
        assert row["oracle_view"] == "exact" and row["twin_gap"][0] <= 1e-12 * row["f_T_mean"]
    assert sgd["schedulefree_sgd"]["rows"]["1"]["oracle_view"] == "transplanted"
    assert sgd["prodigy"]["rows"]["1"]["oracle_view"] is None
    assert "f_T" not in json.dumps(tasks["hd_mlp"]["methods"]["hd"]["rows"])
    wall = json.loads((out / "compare.wall.json").read_text())
    assert wall["median_ratio"]["marthe_mlp"]["constant"]["0.1"] > 0
    assert (out / "compare.png").stat().st_size > 0 and "LRS-OPT" in (out / "compare.md").read_text()
    # LRS-OPT went into hgref schedules' own records: that command reuses them
    lrs_record = tmp_path / "schedules" / "runs" / "seed=0-lrs_opt.json"
    stamp = lrs_record.stat().st_mtime_ns
    assert main(["schedules", "--tiny", "--quiet", "--methods", "lrs_opt", "--out", str(tmp_path)]) == 0
    assert lrs_record.stat().st_mtime_ns == stamp
    # resume: nothing reruns, the results file is byte-identical
    before = (out / "compare.json").read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    assert _main("--out", str(tmp_path), "--lrs-opt") == 0
    assert (out / "compare.json").read_bytes() == before
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == stamps


def test_without_lrs_opt_records_the_reference_is_reported_missing(tmp_path, mnist_data):
    assert _main("--out", str(tmp_path), "--tasks", "marthe_mlp", "--methods", "constant,dog") == 0
    data = json.loads((tmp_path / "compare" / "compare.json").read_text())
    assert data["summary"]["lrs_opt_missing_seeds"] == [0]
    assert set(data["summary"]["tasks"]["marthe_mlp"]["methods"]) == {"constant", "dog"}


@pytest.mark.parametrize("argv,message", [
    (("--device", "gpu0"), "--device: invalid device 'gpu0'; accepted values: cpu, cuda"),
    (("--methods", "adamw"), "--methods: invalid value 'adamw'; accepted values"),
    (("--tasks", "cifar"), "--tasks: invalid value 'cifar'; accepted values"),
    (("--dtype", "float16"), "--dtype: invalid choice"),
])
def test_bad_arguments_name_the_option(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        _main("--out", str(tmp_path), *argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_unusable_device_and_missing_peers_are_clear_errors(tmp_path, capsys, monkeypatch, mnist_data):
    import torch
    if not torch.cuda.is_available():
        assert _main("--out", str(tmp_path), "--device", "cuda") == 2
        assert "--device 'cuda' is not usable here" in capsys.readouterr().err
    import hgref.torch.peers as peers
    monkeypatch.setattr(peers, "missing_packages", lambda keys: ["prodigyopt==1.1.2"])
    assert _main("--out", str(tmp_path), "--methods", "prodigy") == 2
    assert "pip install 'hgref[peers]'" in capsys.readouterr().err
