"""Shared test configuration: data directory, BLAS threads, hypothesis profile."""
import os

# One BLAS thread: the suite runs small matrices, and tests that start worker processes
# would otherwise oversubscribe the cores (set before NumPy is first imported).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
from pathlib import Path

from hypothesis import HealthCheck, settings

_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "HGREF_DATA" not in os.environ and _SHARED.is_dir():
    os.environ["HGREF_DATA"] = str(_SHARED)

settings.register_profile(
    "hgref", deadline=None, max_examples=25, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "hgref"))
