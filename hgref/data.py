"""MNIST in its published IDX format: checksummed loading, downloading, splitting.

The data directory is ``data_dir`` if given, else ``$HGREF_DATA``, else
``~/.hgref/data``; files are looked up in ``<dir>/mnist/`` and then in ``<dir>/``
(so ``data_dir`` may also be the ``mnist`` folder itself). Every file is checked
against the md5 of the published ``.gz`` before it is parsed; nothing here ever
overwrites or deletes a file it did not create.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from ._checks import check_choice, check_int

__all__ = ["DataError", "MissingDataError", "MIRRORS", "MNIST_FILES", "default_data_dir",
           "download_mnist", "ensure_mnist", "load_mnist", "parse_idx", "split_indices"]

#: split -> (images file, labels file)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
#: canonical md5 of the published .gz files
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: mirrors of the published files, tried in order by :func:`download_mnist`
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_SPLITS = tuple(MNIST_FILES)
_CHUNK = 1 << 20


class DataError(ValueError):
    """A data file is corrupt, malformed, or could not be obtained."""


class MissingDataError(FileNotFoundError):
    """An MNIST file is not in the data directory (the message says where it was sought)."""


def default_data_dir(data_dir=None):
    """Return ``(directory, origin)``: ``data_dir``, else ``$HGREF_DATA``, else ``~/.hgref/data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "data_dir argument"
    env = os.environ.get("HGREF_DATA")
    if env:
        return Path(env).expanduser(), "HGREF_DATA"
    return Path("~/.hgref/data").expanduser(), "default ~/.hgref/data"


def _fix_hint(directory):
    return (f"Fix: set HGREF_DATA to a directory holding mnist/<file>, pass data_dir=, or run "
            f"hgref.data.download_mnist({str(directory)!r}) on a machine with internet access.")


def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _locate(directory, origin, fname):
    """Path of ``fname`` in ``directory/mnist`` or ``directory``; else FileNotFoundError."""
    candidates = (directory / "mnist" / fname, directory / fname)
    for path in candidates:
        if path.is_file():
            return path.resolve()
    where = " or ".join(str(p.parent) for p in candidates)
    raise MissingDataError(
        f"MNIST file {fname!r} (md5 {MNIST_MD5[fname]}) not found in {where} "
        f"(data directory {str(directory)!r} from {origin}). {_fix_hint(directory)}")


def _verify(path):
    expected, actual = MNIST_MD5[path.name], _md5(path)
    if actual != expected:
        raise DataError(
            f"MNIST file {str(path)!r} is corrupt or not the published file: md5 {actual}, "
            f"expected {expected}. The file was left untouched; move it away and fetch a fresh "
            f"copy. {_fix_hint(path.parent)}")


def parse_idx(raw, *, ndim, name="<bytes>"):
    """Parse an uncompressed IDX buffer of unsigned bytes into a uint8 array.

    The header is two zero bytes, the type code 0x08 (unsigned byte), the number of
    dimensions, then each dimension as a big-endian uint32.

    >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]), ndim=1)
    array([7, 9], dtype=uint8)
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{name}: not an IDX file (magic number must start with two zero bytes)")
    if raw[2] != 0x08:
        raise DataError(f"{name}: IDX type code must be 0x08 (unsigned byte), got {raw[2]:#04x}")
    if raw[3] != ndim:
        raise DataError(f"{name}: IDX file must have {ndim} dimension(s), header says {raw[3]}")
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise DataError(f"{name}: IDX header truncated ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) - start != int(np.prod(dims)):
        raise DataError(f"{name}: IDX header announces dims {dims} ({int(np.prod(dims))} bytes) "
                        f"but the payload has {len(raw) - start} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


@functools.lru_cache(maxsize=2)
def _read_split(images_path, labels_path, stamp):
    """Verified, parsed, read-only arrays; ``stamp`` (sizes, mtimes) invalidates the cache."""
    for path in (images_path, labels_path):
        _verify(path)
    images = parse_idx(gzip.decompress(images_path.read_bytes()), ndim=3, name=str(images_path))
    labels = parse_idx(gzip.decompress(labels_path.read_bytes()), ndim=1, name=str(labels_path))
    if images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
        raise DataError(f"MNIST images {images.shape} and labels {labels.shape} do not match "
                        f"(expected (n, 28, 28) and (n,)) in {images_path.parent}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: labels must lie in 0..9, found {labels.max()}")
    x = images.reshape(images.shape[0], -1).astype(np.float64)
    x *= 1.0 / 255.0
    y = labels.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_mnist(split="test", data_dir=None):
    """Load an MNIST split as ``(images, labels)``.

    Args:
      split: ``"test"`` (10,000 images) or ``"train"`` (60,000).
      data_dir: directory holding ``mnist/<file>`` (or the files themselves);
        default ``$HGREF_DATA``, else ``~/.hgref/data``.

    Returns:
      ``images`` float64 of shape (n, 784) in [0, 1] and ``labels`` int64 of shape
      (n,). Both are read-only and shared by a cache keyed on the resolved paths:
      copy them before modifying.

    Raises:
      MissingDataError: a file is missing (a FileNotFoundError; the message says where it
        was sought and how to provide it).
      DataError: a file's md5 or IDX header is wrong.
    """
    check_choice("split", split, _SPLITS)
    directory, origin = default_data_dir(data_dir)
    paths = tuple(_locate(directory, origin, f) for f in MNIST_FILES[split])
    stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    return _read_split(*paths, stamp)


def _target_dir(directory):
    return directory if directory.name == "mnist" else directory / "mnist"


def _fetch(url, target, expected, timeout):
    """Download ``url`` to a temp file beside ``target``; md5-check; ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        h = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as src:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != expected:
            raise DataError(f"md5 {h.hexdigest()}, expected {expected}")
        os.replace(tmp, target)
        tmp = None
    finally:
        if tmp is not None:
            os.unlink(tmp)


def _make_dirs(folder):
    """Create ``folder`` and missing parents; return the folders created, outermost first."""
    created, path = [], folder
    while not path.exists():
        created.append(path)
        path = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    return created[::-1]


def download_mnist(data_dir=None, splits=_SPLITS, mirrors=MIRRORS, *, timeout=60.0):
    """Download the published MNIST files into ``<data_dir>/mnist/``.

    Each file comes from the first mirror that serves it with the right md5; it
    is written to a temporary file in the same folder and moved into place
    atomically. Files already there with the right md5 are skipped; a file there
    with a wrong md5 is never overwritten (an error says so). If ``data_dir`` is
    itself named ``mnist`` the files go straight into it. On failure, the folders
    this call created are removed again if they are still empty.

    Args:
      data_dir: default ``$HGREF_DATA``, else ``~/.hgref/data``.
      splits: any of ``"train"``, ``"test"``.
      mirrors: base URLs (``https://``, ``file://``, ...) to which file names are appended.
      timeout: seconds per connection attempt.

    Returns:
      dict mapping each file name to its path.
    """
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    for s in splits:
        check_choice("splits entry", s, _SPLITS)
    mirrors = (mirrors,) if isinstance(mirrors, str) else tuple(mirrors)
    if not mirrors:
        raise ValueError("mirrors must list at least one base URL, got none")
    directory, _ = default_data_dir(data_dir)
    folder = _target_dir(directory)
    created = _make_dirs(folder)
    try:
        return _download_files(folder, splits, mirrors, timeout)
    except BaseException:
        for path in reversed(created):      # innermost first; a non-empty folder stays
            try:
                path.rmdir()
            except OSError:
                break
        raise


def _download_files(folder, splits, mirrors, timeout):
    done = {}
    for fname in (f for s in splits for f in MNIST_FILES[s]):
        target, expected = folder / fname, MNIST_MD5[fname]
        if target.exists():
            _verify(target)  # raises on a bad user file; never overwrites it
            done[fname] = target
            continue
        failures = []
        for base in mirrors:
            url = base if base.endswith("/") else base + "/"
            try:
                _fetch(url + fname, target, expected, timeout)
                break
            except (OSError, DataError) as exc:  # URLError is an OSError
                failures.append(f"{url + fname}: {exc}")
        else:
            raise DataError(f"could not download {fname!r} into {folder}; every mirror failed:\n  "
                            + "\n  ".join(failures)
                            + f"\nCopy the file (md5 {expected}) there by hand, or pass mirrors=.")
        done[fname] = target
    return done


def ensure_mnist(split="test", data_dir=None, *, download=True, mirrors=MIRRORS, timeout=60.0):
    """The data directory holding the verified files of ``split``; downloads them if missing.

    Files present (in ``<dir>/mnist/`` or ``<dir>/``) are md5-checked and used; missing
    ones are fetched by :func:`download_mnist` into ``<dir>/mnist/`` (``download=True``).
    The test suite calls this once per session with the user cache ``~/.hgref/data``
    when no folder is configured (see the root ``conftest.py``).

    Args:
      split: ``"test"`` or ``"train"``.
      data_dir: default ``$HGREF_DATA``, else ``~/.hgref/data``.
      download: fetch missing files (else raise :class:`MissingDataError`).
      mirrors, timeout: as in :func:`download_mnist`.

    Returns:
      the data directory (a :class:`pathlib.Path`, usable as ``data_dir`` or ``HGREF_DATA``).

    Raises:
      MissingDataError: a file is missing and ``download`` is False.
      DataError: a file present is corrupt, or every mirror failed.
    """
    check_choice("split", split, _SPLITS)
    directory, origin = default_data_dir(data_dir)
    try:
        for fname in MNIST_FILES[split]:
            _verify(_locate(directory, origin, fname))
        return directory
    except MissingDataError:
        if not download:
            raise
    download_mnist(directory, splits=(split,), mirrors=mirrors, timeout=timeout)
    return directory


def split_indices(n, sizes=(7000, 700, 2300), seed=0):
    """Disjoint random index arrays of the given sizes, drawn from ``range(n)`` by ``seed``.

    >>> [a.tolist() for a in split_indices(5, (2, 1), seed=0)]
    [[2, 4], [3]]
    """
    n = check_int("n", n)
    sizes = tuple(check_int(f"sizes[{i}]", s, low=1) for i, s in enumerate(sizes))
    seed = check_int("seed", seed)
    if sum(sizes) > n:
        raise ValueError(f"sizes must sum to at most n={n}, got sizes={sizes} (sum {sum(sizes)})")
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum((0,) + sizes)
    return tuple(perm[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
