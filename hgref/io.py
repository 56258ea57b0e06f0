"""Results files: atomic JSON writes (temp file + ``os.replace``) and NumPy-aware encoding."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_write_json", "read_json", "to_jsonable", "ensure_dir"]


def to_jsonable(obj):
    """Convert NumPy scalars/arrays (recursively) to JSON types; non-finite floats → None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def ensure_dir(path) -> Path:
    """Create ``path`` (and parents); raise a clear error if it is not writable."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"output folder {str(path)!r} cannot be created: {exc.strerror}") from exc
    if not os.access(path, os.W_OK):
        raise PermissionError(f"output folder {str(path)!r} is not writable")
    return path


def atomic_write_json(path, data) -> Path:
    """Write ``data`` as JSON to ``path`` atomically: readers see the old file or the new one."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(to_jsonable(data), fh, indent=1, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_json(path):
    """Read a JSON results file."""
    with open(path) as fh:
        return json.load(fh)
