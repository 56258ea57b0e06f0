"""hgref.torch.schedules: the torch schedulers are the hgref §6 schedules, step by step."""
import pytest
import torch

from hgref.rules import schedules
from hgref.torch import make_scheduler

CASES = [
    (schedules.exponential(0.99), "ExponentialLR"),
    (schedules.exponential(0.9, every=7), "StepLR"),
    (schedules.staircase(every=60, factor=0.1), "StepLR"),
    (schedules.sgdr(T0=10, Tmult=2), "CosineAnnealingWarmRestarts"),
    (schedules.sgdr(T0=5, Tmult=1, eta_min=0.1), "CosineAnnealingWarmRestarts"),
    (schedules.constant(), "ConstantLR"),
]


@pytest.mark.parametrize("rule, cls", CASES, ids=[c[0].name + str(i) for i, c in enumerate(CASES)])
def test_torch_scheduler_equals_hgref_schedule(rule, cls):
    eta0 = 0.1
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=eta0)
    sched = make_scheduler(opt, rule)
    assert type(sched).__name__ == cls
    factor = rule.hyperparams["factor"]
    for t in range(300):
        assert opt.param_groups[0]["lr"] == pytest.approx(eta0 * factor(t), rel=1e-12, abs=1e-15)
        opt.step()
        sched.step()


def test_by_name_and_bad_names():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert type(make_scheduler(opt, "sgdr", T0=10)).__name__ == "CosineAnnealingWarmRestarts"
    with pytest.raises(ValueError, match="schedule"):
        make_scheduler(opt, "cosine")
    with pytest.raises(ValueError, match="hyperparams"):
        make_scheduler(opt, schedules.constant(), every=3)
