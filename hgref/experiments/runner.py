"""Run tables: the shared machinery of every experiment command.

An experiment is a list of :class:`RunSpec` (a file-safe ``key`` and a JSON config) and
a module-level ``job(config) -> dict``. :func:`run_table` runs the jobs that have no
finished record yet, writing each record atomically to ``<out>/runs/<key>.json`` as soon
as it finishes, so a killed command resumes where it stopped. A record holds the config,
the hgref version and the result; wall-clock time lives in a separate ``timing`` field
that :func:`write_results` leaves out, so the results file of a resumed command is
byte-identical to the one of an uninterrupted command.

SIGINT (Ctrl-C) or an :class:`Interrupted` raised by a signal handler (the CLI turns
SIGTERM into one) stops a table at once: queued runs are cancelled, running workers are
ended (their runs are lost), finished runs stay saved, and :class:`Interrupted` (a
``KeyboardInterrupt``) is raised with the counts. Workers never outlive the parent
(:mod:`hgref.experiments._pool`).

>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> recs = run_table(out, [RunSpec("a", {"x": 2})], square_job, progress=False)
>>> recs["a"]["result"]
{'y': 4}
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, NamedTuple

from .. import __version__
from ..io import atomic_write_json, ensure_dir, read_json, to_jsonable
from . import _pool

__all__ = ["RunSpec", "Interrupted", "run_table", "write_results", "load_record", "normalize",
           "default_jobs", "square_job", "sleep_job", "format_value"]


class Interrupted(KeyboardInterrupt):
    """A run table stopped by a signal; its finished runs are saved under ``folder``.

    Attributes: ``signum`` (``signal.SIGINT`` or ``signal.SIGTERM``), ``done`` and ``total``
    (runs finished and saved / runs in the table; None when raised by a signal handler),
    ``folder`` (the ``runs/`` folder).
    """

    def __init__(self, signum=signal.SIGINT, done=None, total=None, folder=None):
        super().__init__(signum, done, total, folder)
        self.signum, self.done, self.total, self.folder = int(signum), done, total, folder

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


class RunSpec(NamedTuple):
    """One run of a run table."""

    key: str       # file-safe unique name, e.g. "beale-hd-beta=1e-03"
    config: dict   # JSON-serialisable arguments of the job


def normalize(obj):
    """``obj`` as it reads back from JSON (tuples → lists, NumPy → Python, non-finite → None)."""
    return json.loads(json.dumps(to_jsonable(obj), allow_nan=False))


def format_value(x) -> str:
    """Short file-safe text of a number for run keys: 0.001 → '1e-03', 0.5 → '0.5'."""
    x = float(x)
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4):
        return f"{x:.0e}" if float(f"{x:.0e}") == x else f"{x:.3e}"
    return f"{x:g}"


def default_jobs() -> int:
    """Worker processes by default: the cores available, at most 2."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(2, n))


def square_job(config, scratch=None):
    """A trivial job (for examples and tests): ``{"y": x²}``."""
    return {"y": config["x"] ** 2}


def sleep_job(config, scratch=None):
    """A job that sleeps ``config["seconds"]`` (for tests of interruption): ``{"slept": s}``."""
    time.sleep(config["seconds"])
    return {"slept": config["seconds"]}


def _record_path(out, key):
    return Path(out) / "runs" / f"{key}.json"


def load_record(out, spec: RunSpec):
    """The finished record of ``spec`` under ``out``, or None (missing, unreadable or stale)."""
    path = _record_path(out, spec.key)
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    if record.get("config") != normalize(spec.config) or "result" not in record:
        return None
    return record


def _scratch_path(out, key):
    return Path(out) / "runs" / f"{key}.scratch"


def _timed(job, config, scratch):
    start = time.perf_counter()
    result = job(config, scratch)
    return normalize(result), time.perf_counter() - start


def _check_specs(specs):
    keys = set()
    for spec in specs:
        if not isinstance(spec, RunSpec):
            raise TypeError(f"specs must be RunSpec items, got {type(spec).__name__}")
        if not _KEY.match(spec.key):
            raise ValueError(f"run key {spec.key!r} is not file-safe (letters, digits, _.=+- only)")
        if spec.key in keys:
            raise ValueError(f"run key {spec.key!r} appears twice in the run table")
        keys.add(spec.key)


def run_table(out, specs, job: Callable, *, jobs=1, progress=True, desc="runs", on_record=None):
    """Run every spec without a finished record; return ``{key: record}`` in spec order.

    Args:
      out: output folder; records go to ``out/runs/<key>.json``.
      specs: the :class:`RunSpec` list (unique, file-safe keys).
      job: a module-level function ``job(config, scratch) -> dict`` (picklable when
        ``jobs > 1``); ``scratch`` is a per-run folder path (not created) where a long job
        may keep resumable state; it is deleted once the record is written.
      jobs: worker processes (1 runs in this process); workers use one BLAS thread each.
      progress: a tqdm bar over runs.
      desc: label of the bar.
      on_record: called as ``on_record(key, record)`` when a run finishes.

    A record is ``{"key", "config", "hgref_version", "result", "timing": {"seconds"}}``.
    Finished runs whose stored config equals the spec's config are not run again.
    """
    specs = list(specs)
    _check_specs(specs)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    ensure_dir(Path(out) / "runs")
    for stale in (Path(out) / "runs").glob(".*.json.*.tmp"):  # left by a kill during an atomic write
        stale.unlink(missing_ok=True)
    records = {spec.key: load_record(out, spec) for spec in specs}
    todo = [spec for spec in specs if records[spec.key] is None]

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc=desc, unit="run")

    def finish(spec, result, seconds):
        record = {"key": spec.key, "config": normalize(spec.config), "hgref_version": __version__,
                  "result": result, "timing": {"seconds": round(seconds, 3)}}
        atomic_write_json(_record_path(out, spec.key), record)
        shutil.rmtree(_scratch_path(out, spec.key), ignore_errors=True)
        records[spec.key] = record
        if on_record is not None:
            on_record(spec.key, record)
        if bar is not None:
            bar.update(1)

    try:
        if jobs == 1 or len(todo) <= 1:
            for spec in todo:
                finish(spec, *_timed(job, spec.config, _scratch_path(out, spec.key)))
        else:
            _run_pool(out, todo, job, min(jobs, len(todo)), finish)
    except KeyboardInterrupt as exc:
        done = sum(r is not None for r in records.values())
        raise Interrupted(getattr(exc, "signum", signal.SIGINT), done, len(specs),
                          Path(out) / "runs") from None
    finally:
        if bar is not None:
            bar.close()
    return {spec.key: records[spec.key] for spec in specs}


def _run_pool(out, todo, job, workers, finish):
    """Run ``todo`` on ``workers`` processes; on any exception or signal stop them at once."""
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_pool.init_worker,
                               initargs=(1, os.getpid()))
    try:
        futures = {pool.submit(_timed, job, spec.config, _scratch_path(out, spec.key)): spec for spec in todo}
        for future in as_completed(futures):
            finish(futures[future], *future.result())
    except BaseException:
        with _pool.signals_ignored():       # a second Ctrl-C must not break the cleanup
            _pool.stop(pool)
        raise
    pool.shutdown()


def write_results(path, experiment, config, records, summary=None):
    """Write the results file of a command: deterministic (no timings), atomic.

    Timings go to a sibling ``<stem>.timing.json``. Returns the results path.
    """
    path = Path(path)
    runs = [{"key": key, "config": rec["config"], "result": rec["result"]} for key, rec in records.items()]
    data = {"experiment": experiment, "hgref_version": __version__, "config": normalize(config),
            "summary": normalize(summary or {}), "runs": runs}
    timing = {"experiment": experiment,
              "total_run_seconds": round(sum(rec["timing"]["seconds"] for rec in records.values()), 3),
              "runs": {key: rec["timing"]["seconds"] for key, rec in records.items()}}
    atomic_write_json(path, data)
    atomic_write_json(path.with_name(path.stem + ".timing.json"), timing)
    return path
