"""Settings shared by every part of the suite (tests/, notebooks/, doctests in hgref/).

* One BLAS thread (small matrices; tests that start worker processes would otherwise
  oversubscribe the cores; set before NumPy is first imported) and the Agg backend.
* Hypothesis profiles (deadline off: a loaded machine is no failure; bounded examples):
  ``ci`` derandomized, ``dev`` random. ``HGREF_HYPOTHESIS_PROFILE`` selects one; the default
  is ``ci`` when ``CI`` is set (as in ``.ci/run``), else ``dev``.
* The MNIST test-set files, found once per session, in this order: ``$HGREF_DATA`` (used as
  it is, never downloaded into: CI sets it), ``../shared/data`` beside the repository (the
  development machines), else the user cache ``~/.hgref/data``, downloaded into it through
  :func:`hgref.data.ensure_mnist` if missing (md5-checked, atomic; mirrors from
  ``HGREF_MNIST_MIRRORS``, space-separated, else :data:`hgref.data.MIRRORS`). If none has
  them (offline), every test that needs them is skipped with one reason saying how to
  provide them, and every other test runs: a test that ends in
  :class:`hgref.data.MissingDataError` (directly, in a doctest or in a notebook cell)
  is reported as skipped, and tests that start the CLI in a subprocess ask for the
  ``mnist_data`` fixture.
"""
import importlib.util
import inspect
import os
from pathlib import Path

import pytest

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parent
_SHARED = ROOT.parent / "shared" / "data"
if "HGREF_DATA" not in os.environ and _SHARED.is_dir():
    os.environ["HGREF_DATA"] = str(_SHARED)

# torch is an optional extra: without it, the bridge and its tests are not collected (the
# README's test command installs it, and so does CI).
if importlib.util.find_spec("torch") is None:
    collect_ignore_glob = ["hgref/torch/*", "tests/test_torch_*.py"]

from hypothesis import HealthCheck, settings  # noqa: E402

_HYPOTHESIS = dict(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow],
                   database=None)
settings.register_profile("ci", derandomize=True, **_HYPOTHESIS)
settings.register_profile("dev", derandomize=False, **_HYPOTHESIS)
settings.load_profile(os.environ.get("HGREF_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

#: (data directory or None, how it was found, or why the MNIST tests are skipped)
_MNIST = {}


def _find_mnist():
    """Locate (or fetch once into the user cache) the MNIST test-set files."""
    from hgref import data
    configured = os.environ.get("HGREF_DATA")
    files = " and ".join(data.MNIST_FILES["test"])
    how = (f"To run them, put {files} into DIR/mnist/ and set HGREF_DATA=DIR, or on a machine "
           f"with internet run: python -c \"import hgref.data; hgref.data.ensure_mnist()\" "
           f"(it downloads into ~/.hgref/data).")
    if configured:
        try:
            return data.ensure_mnist("test", configured, download=False), f"HGREF_DATA={configured}"
        except (OSError, data.DataError) as exc:
            return None, f"MNIST test-set files unusable in HGREF_DATA={configured} ({_brief(exc)}). {how}"
    mirrors = os.environ.get("HGREF_MNIST_MIRRORS", "").split() or data.MIRRORS
    cache = data.default_data_dir()[0]
    try:
        folder = data.ensure_mnist("test", cache, mirrors=mirrors, timeout=15.0)
    except (OSError, data.DataError) as exc:
        return None, (f"MNIST test-set files not available: HGREF_DATA is unset, they are not in "
                      f"{cache} and could not be downloaded ({_brief(exc)}). {how}")
    os.environ["HGREF_DATA"] = str(folder)
    return folder, f"user cache {folder}"


def _brief(exc):
    """The first line of an error, and its first detail line (the first mirror's failure)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    text = " ".join(lines[:2])
    return text if len(text) <= 300 else text[:297] + "..."


def pytest_configure(config):
    _MNIST["folder"], _MNIST["note"] = _find_mnist()


def pytest_report_header(config):
    if _MNIST["folder"] is not None:
        return f"hgref: MNIST test-set files from {_MNIST['note']}"
    return f"hgref: tests that need MNIST are skipped: {_MNIST['note']}"


@pytest.fixture(scope="session")
def mnist_data():
    """The folder holding mnist/ (also ``$HGREF_DATA``); the test is skipped if there is none."""
    from hgref.data import MissingDataError
    if _MNIST["folder"] is None:
        raise MissingDataError(_MNIST["note"])      # reported as a skip (below)
    return Path(_MNIST["folder"])


def _is_missing_data(exc):
    """Whether a test failed for lack of the MNIST files (also inside a doctest or notebook)."""
    from hgref.data import MissingDataError
    inner = getattr(exc, "exc_info", None)          # doctest.UnexpectedException
    if inner is not None:
        exc = inner[1]
    seen = exc
    while seen is not None:
        if isinstance(seen, MissingDataError):
            return True
        seen = seen.__cause__ or seen.__context__
    result = exc.args[0] if exc.args else None      # nbmake: NotebookFailedException(result)
    return "MissingDataError" in str(getattr(getattr(result, "error", None), "trace", ""))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (_MNIST.get("folder") is None and report.failed and call.excinfo is not None
            and _is_missing_data(call.excinfo.value)):
        # one location and one reason for every such skip, so `-ra` prints a single line
        report.outcome = "skipped"
        report.longrepr = (__file__, _find_mnist.__code__.co_firstlineno, f"Skipped: {_MNIST['note']}")
