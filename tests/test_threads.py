"""hgref._threads: library calls run at the thread policy's BLAS thread count, restored after."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from hgref import dynamics, problems, rules
from hgref._threads import blas_threads, get_threads, set_threads
from hgref.oracle import hypergradient
from hgref.train import run


def _blas_threads():
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def _recording_problem(seen):
    base = problems.beale()

    def value_and_grad(w, batch):
        seen.append(_blas_threads())
        return base.value_and_grad(w, batch)

    return problems.make_problem("rec", base.w0, base.loss, value_and_grad=value_and_grad)


@pytest.fixture
def restore():
    previous = set_threads(None)
    yield
    set_threads(previous)


@pytest.mark.parametrize("setting, expected", [(None, {1}), (2, {2})])
def test_library_calls_use_the_policy_and_restore(restore, monkeypatch, setting, expected):
    monkeypatch.delenv("HGREF_THREADS", raising=False)
    set_threads(setting)
    seen = []
    p = _recording_problem(seen)
    with threadpool_limits(limits=3, user_api="blas"):
        run(p, dynamics.sgd(), rules.constant(), 0.01, 3)
        hypergradient(p, dynamics.sgd(), np.full(3, 0.01))
        after = _blas_threads()
    assert seen and all(s == expected for s in seen)
    assert after == {3}


def test_all_leaves_pools_and_env_sets_default(restore, monkeypatch):
    set_threads("all")
    seen = []
    with threadpool_limits(limits=3, user_api="blas"):
        run(_recording_problem(seen), dynamics.sgd(), rules.constant(), 0.01, 2)
    assert all(s == {3} for s in seen)
    set_threads(None)
    monkeypatch.setenv("HGREF_THREADS", "2")
    assert get_threads() == 2
    monkeypatch.setenv("HGREF_THREADS", "many")
    with pytest.raises(ValueError, match="HGREF_THREADS"):
        get_threads()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "two"])
def test_bad_thread_counts_are_rejected(restore, bad):
    with pytest.raises(ValueError, match="accepted values"):
        set_threads(bad)
    with pytest.raises(ValueError, match="accepted values"):
        with blas_threads(bad):
            pass
