"""The default ``hgref toy`` run table, computed once per test process (about 1 s) and
shared by tests/test_experiments_toy.py and tests/test_figures_toy.py."""
from __future__ import annotations

import functools

from hgref.experiments.runner import normalize
from hgref.experiments.toy import toy_specs, toy_job


@functools.lru_cache(maxsize=1)
def default_records():
    """``{key: {"config", "result"}}`` of every default run, as ``run_table`` returns them."""
    return {s.key: {"config": normalize(s.config), "result": normalize(toy_job(s.config))} for s in toy_specs()}
