"""Shared test configuration: data directory, hypothesis profile."""
import os
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
