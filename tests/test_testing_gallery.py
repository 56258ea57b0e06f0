"""The gallery: the bug classes found in released hypergradient code, each planted in a small
optimizer of tests/_hypergradient_optimizers.py (written here, none copied), caught on the
expected case and step with the expected diagnosis — and only on the cases that exercise it.

Each bug runs on the five matrix cases of its dynamics; the correct optimizer passes them all
(tests/test_testing_torch.py, tests/test_testing_own.py).
"""
import pytest

from _hypergradient_optimizers import adamhd_adapter, stacked_adapter, tangent_adapter
from _torch_helpers import torch_run  # noqa: F401  (one torch thread)
from hgref.testing import DIAGNOSES, check_torch_optimizer, get_cases

ALL5 = ("base", "lr_changes", "weight_decay", "validation", "first_steps")

#: bug: (adapter, mode, dynamics row, failing columns, first failing case, step, diagnosis, text)
GALLERY = {
    "learning rate frozen at its initial value inside the tangent": (
        tangent_adapter("lr_frozen"), "declared", "sgd", ("lr_changes", "first_steps"),
        "sgd_lr_changes", 2, "wrong_hypergradient", ""),
    "weight decay missing from the tangent": (
        tangent_adapter("no_wd_tangent"), "declared", "sgd", ("weight_decay",),
        "sgd_weight_decay", 2, "wrong_hypergradient", ""),
    "first momentum step: the tangent damps it (torch's first buffer is g, undamped)": (
        tangent_adapter("first_momentum_step"), "declared", "heavy_ball", ("first_steps",),
        "heavy_ball_first_steps", 1, "wrong_hypergradient", ""),
    "Nesterov flag ignored": (
        tangent_adapter("nesterov_ignored"), "declared", "nesterov", ALL5, "nesterov", 1,
        "wrong_dynamics", "the Nesterov flag is ignored"),
    "Adam tangent missing the identity term": (
        tangent_adapter("adam_no_identity"), "declared", "adam", ALL5, "adam", 2,
        "wrong_hypergradient", ""),
    "eps inside vs outside the square root (in the tangent)": (
        tangent_adapter("eps_inside"), "declared", "adam", ALL5, "adam", 2, "wrong_hypergradient", ""),
    "moments from before the update": (
        tangent_adapter("stale_moments"), "declared", "adam", ALL5, "adam", 2, "wrong_hypergradient", ""),
    "stale learning rate in an Adam tangent": (
        tangent_adapter("stale_lr"), "declared", "adam", ("lr_changes", "first_steps"),
        "adam_lr_changes", 2, "wrong_hypergradient", ""),
    "learning rate updated inside the per-parameter loop (released AdamHD)": (
        adamhd_adapter(lr_in_loop=True), "own", "adam", ALL5, "adam", 1, "per_tensor_eta",
        "each tensor follows w - eta*d, but with its own eta"),
    "learning rate turned into a tensor in group['lr']": (
        stacked_adapter("lr_tensor"), "declared", "sgd", ALL5, "sgd", 0, "lr_tensor",
        "param_groups[0]['lr'] is a Tensor"),
    "estimate reported one step late (after the update)": (
        tangent_adapter("late"), "declared", "sgd", ALL5, "sgd", 0, "shifted_late", ""),
}


@pytest.mark.parametrize("bug", GALLERY)
def test_planted_bug_is_caught_on_the_right_case_step_and_diagnosis(bug):
    adapter, mode, dyn, columns, first, step, diagnosis, text = GALLERY[bug]
    row = tuple(c for c in get_cases(",".join(ALL5[1:] + ("base",))) if c.dynamics == dyn)
    row = sorted(row, key=lambda c: ALL5.index(c.column))
    report = check_torch_optimizer(adapter, cases=row, mode=mode)
    failing = [c.name for c in row if c.column in columns]
    assert report.failed_cases == failing, report.table()
    assert report.verdict == "FAILED" and report.failed_cases[0] == first
    r = report.result(first)
    assert (r.status, r.diagnosis, r.first_bad_step) == ("fail", diagnosis, step), report.details()
    assert r.message.startswith(DIAGNOSES[diagnosis][:40]) and text in r.message
    assert {x.diagnosis for x in report.results if x.status == "fail"} == {diagnosis}
    assert f"--- case {first}: fail ({diagnosis})" in report.details()
