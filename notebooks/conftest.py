"""Settings for executing the notebooks under pytest (``--nbmake``, see setup.cfg).

The kernels inherit this process's environment: one BLAS thread, the Agg backend, the
same default data directory as tests/conftest.py (``../shared/data`` beside the repository)
when ``HGREF_DATA`` is unset, and this checkout first on ``PYTHONPATH``, so the notebooks
exercise the code beside them even where another copy of hgref is installed.
"""
import os
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

_ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

_SHARED = _ROOT.parent / "shared" / "data"
if "HGREF_DATA" not in os.environ and _SHARED.is_dir():
    os.environ["HGREF_DATA"] = str(_SHARED)
