"""Settings shared by every part of the suite (tests/, notebooks/, doctests in hgref/).

One BLAS thread (small matrices; tests that start worker processes would otherwise
oversubscribe the cores; set before NumPy is first imported), the Agg backend, and the
default data directory ``../shared/data`` beside the repository when ``HGREF_DATA`` is unset.
"""
import importlib.util
import os
from pathlib import Path

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
