"""Run tables: records, resume after interruption (identical results), stale configs, errors."""
import json

import pytest

from hgref.experiments.runner import (RunSpec, format_value, load_record, normalize, run_table,
                                      square_job, write_results)


def _specs(n=4):
    return [RunSpec(f"x={i}", {"x": i}) for i in range(n)]


def _results_bytes(out, specs, **kw):
    records = run_table(out, specs, square_job, progress=False, **kw)
    path = write_results(out / "res.json", "squares", {"n": len(specs)}, records, {"total": sum(
        r["result"]["y"] for r in records.values())})
    return path.read_bytes()


def test_records_written_per_run_and_in_spec_order(tmp_path):
    records = run_table(tmp_path, _specs(), square_job, progress=False)
    assert list(records) == ["x=0", "x=1", "x=2", "x=3"]
    assert [r["result"]["y"] for r in records.values()] == [0, 1, 4, 9]
    rec = json.loads((tmp_path / "runs" / "x=3.json").read_text())
    assert rec["config"] == {"x": 3} and rec["result"] == {"y": 9} and "seconds" in rec["timing"]


def test_resume_after_partial_run_gives_identical_results(tmp_path):
    fresh = _results_bytes(tmp_path / "a", _specs())
    _results_bytes(tmp_path / "b", _specs()[:2])          # "killed" after two runs
    calls = []

    def counting_job(config, scratch=None):
        calls.append(config["x"])
        return square_job(config)

    run_table(tmp_path / "b", _specs(), counting_job, progress=False)
    assert calls == [2, 3]                               # finished runs are skipped
    assert _results_bytes(tmp_path / "b", _specs()) == fresh
    timing = json.loads((tmp_path / "b" / "res.timing.json").read_text())
    assert set(timing["runs"]) == {"x=0", "x=1", "x=2", "x=3"}
    assert "timing" not in fresh.decode() and "seconds" not in fresh.decode()


def test_changed_config_is_recomputed(tmp_path):
    run_table(tmp_path, [RunSpec("a", {"x": 2})], square_job, progress=False)
    assert load_record(tmp_path, RunSpec("a", {"x": 3})) is None
    records = run_table(tmp_path, [RunSpec("a", {"x": 3})], square_job, progress=False)
    assert records["a"]["result"] == {"y": 9}


def test_corrupt_record_is_recomputed(tmp_path):
    run_table(tmp_path, [RunSpec("a", {"x": 2})], square_job, progress=False)
    (tmp_path / "runs" / "a.json").write_text("{ truncated")
    assert run_table(tmp_path, [RunSpec("a", {"x": 2})], square_job, progress=False)["a"]["result"] == {"y": 4}


def test_process_pool_gives_the_same_results(tmp_path):
    assert _results_bytes(tmp_path / "a", _specs(), jobs=2) == _results_bytes(tmp_path / "b", _specs())


@pytest.mark.parametrize("specs, match", [
    ([RunSpec("a b", {})], "file-safe"),
    ([RunSpec("a", {}), RunSpec("a", {})], "twice"),
])
def test_bad_specs(tmp_path, specs, match):
    with pytest.raises(ValueError, match=match):
        run_table(tmp_path, specs, square_job, progress=False)


def test_bad_jobs(tmp_path):
    with pytest.raises(ValueError, match="jobs"):
        run_table(tmp_path, _specs(1), square_job, jobs=0, progress=False)


def test_unwritable_out_fails_before_any_run(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="cannot be created"):
        run_table(blocker / "out", _specs(), square_job, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_helpers():
    assert format_value(1e-3) == "1e-03" and format_value(0.5) == "0.5" and format_value(5e-4) == "5e-04"
    assert normalize({"a": (1, 2.5)}) == {"a": [1, 2.5]}
