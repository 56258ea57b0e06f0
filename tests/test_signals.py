"""Clean stops: SIGINT (Ctrl-C) / SIGTERM stop a real ``hgref`` command within 2 s, queued runs
cancelled, finished runs saved, one line on how to resume, exit 130 / 143; workers never
outlive their parent (SIGKILL included). Linux: children are read from /proc."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hgref.experiments import runner
from hgref.experiments.runner import Interrupted, RunSpec, run_table, sleep_job, square_job

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")

TOY = ["toy", "--steps", "5000", "--methods", "hd,rtho", "--jobs", "2", "--quiet"]
HD = ["hd", "--tiny", "--models", "logreg", "--epochs", "200", "--no-grid", "--jobs", "2", "--quiet"]
SCHEDULES = ["schedules", "--tiny", "--steps", "400", "--lrs-opt-iterations", "30", "--jobs", "2", "--quiet"]


def _children(pid):
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):    # a thread that just ended
            kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _alive(pid):
    """Running (a zombie waiting for init to reap it is dead: it holds no memory)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "State:\tZ" not in status


def _wait_gone(pids, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.02)
    return [p for p in pids if _alive(p)]


def _start(argv, out, min_records=2):
    """Start ``hgref argv`` in its own session; return it once ``min_records`` runs are saved
    and both workers are up."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    # A SIGINT ignored here (a test run started with `&` from a script) would be inherited, and
    # Python then keeps ignoring Ctrl-C, as it should; a handled one is reset to default by exec.
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "hgref", *argv, "--out", str(out)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, saved)
    runs = out / argv[0] / "runs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if runs.is_dir() and len(list(runs.glob("*.json"))) >= min_records and len(_children(proc.pid)) >= 2:
            return proc, runs
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"hgref {argv[0]} ended or stalled before {min_records} runs: {proc.communicate()}")


def _stop(proc, sig, group):
    kids = _children(proc.pid)
    start = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)          # what Ctrl-C in a terminal does: the whole group
    else:
        proc.send_signal(sig)             # what `kill PID` does
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"not stopped 10 s after {sig!r}")
    return time.monotonic() - start, out, err, kids


@pytest.mark.parametrize("argv, sig, group, code, data", [
    (TOY, signal.SIGINT, True, 130, False),
    (HD, signal.SIGTERM, False, 143, True),
    (SCHEDULES, signal.SIGINT, True, 130, True),
], ids=["toy-ctrl-c", "hd-sigterm", "schedules-ctrl-c"])
def test_signal_stops_the_command_cleanly(argv, sig, group, code, data, tmp_path, request):
    if data:
        request.getfixturevalue("mnist_data")
    proc, runs = _start(argv, tmp_path)
    seconds, out, err, kids = _stop(proc, sig, group)
    assert seconds <= 2.0, f"took {seconds:.2f} s to stop"
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err                       # one line, no traceback
    name = signal.Signals(sig).name
    assert lines[0].startswith(f"hgref {argv[0]}: stopped by {name}; ") and "run the same command again to resume" in lines[0]
    records = sorted(runs.glob("*.json"))
    done, total = map(int, lines[0].split("; ")[1].split(" runs")[0].split(" of "))
    assert len(records) == done and 2 <= done < total and str(runs) in lines[0]
    for path in records:                              # every saved run is a complete record
        assert "result" in json.loads(path.read_text())
    assert not list(runs.glob(".*.tmp")) and not (tmp_path / argv[0] / f"{argv[0]}.json").exists()
    assert out == ""
    assert len(kids) == 2 and _wait_gone(kids, timeout=0.5) == []


def test_workers_die_with_their_parent_killed_by_sigkill(tmp_path):
    proc, _ = _start(TOY, tmp_path)
    kids = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert len(kids) == 2 and _wait_gone(kids, timeout=2.0) == []


def _raise_after(n, kids):
    seen = []

    def on_record(key, record):
        seen.append(key)
        if len(seen) == n:
            own = Path("/proc/self/cmdline").read_bytes()   # forked workers share it; e.g. a
            kids.extend(k for k in _children(os.getpid())  # resource tracker does not
                        if Path(f"/proc/{k}/cmdline").read_bytes() == own)
            raise KeyboardInterrupt
    return on_record


@pytest.mark.parametrize("jobs", [1, 2])
def test_interrupt_cancels_queued_runs_and_keeps_finished_ones(jobs, tmp_path):
    specs = [RunSpec(f"s{i}", {"seconds": 0.0 if i < 2 else 30.0}) for i in range(6)]
    if jobs == 1:
        specs = [RunSpec(f"s{i}", {"x": i}) for i in range(6)]
    start, kids = time.monotonic(), []
    with pytest.raises(Interrupted) as info:
        run_table(tmp_path, specs, sleep_job if jobs == 2 else square_job, jobs=jobs, progress=False,
                  on_record=_raise_after(1 if jobs == 2 else 3, kids))
    assert time.monotonic() - start < 5.0            # the 30 s runs were not waited for
    exc = info.value
    assert isinstance(exc, KeyboardInterrupt) and exc.signum == signal.SIGINT
    assert exc.total == 6 and exc.folder == tmp_path / "runs"
    assert exc.done == len(list((tmp_path / "runs").glob("*.json"))) == (1 if jobs == 2 else 3)
    assert len(kids) == (2 if jobs == 2 else 0) and _wait_gone(kids, timeout=2.0) == []


def test_interrupted_from_a_signal_handler_carries_the_signal():
    exc = Interrupted(signal.SIGTERM)
    assert exc.signum == signal.SIGTERM and exc.done is None and isinstance(exc, KeyboardInterrupt)
    assert runner.Interrupted is Interrupted
