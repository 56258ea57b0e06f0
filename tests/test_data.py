"""MNIST loader, downloader (through file:// mirrors only), index splits, and the suite's data source."""
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hgref import data
from hgref.data import (MNIST_FILES, MNIST_MD5, DataError, MissingDataError, download_mnist, ensure_mnist,
                        load_mnist, parse_idx, split_indices)

TEST_FILES = MNIST_FILES["test"]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shared(mnist_data):
    """The data directory holding mnist/ (root conftest: HGREF_DATA, ../shared/data or the cache)."""
    assert (mnist_data / "mnist" / TEST_FILES[0]).is_file(), f"no MNIST test files under {mnist_data}/mnist"
    return mnist_data


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _copy_test_files(shared, folder, files=TEST_FILES):
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(shared / "mnist" / f, folder / f)
    return folder


def _corrupt_copy(src, dst):
    raw = bytearray(Path(src).read_bytes())
    raw[1000:1010] = bytes(b ^ 0xFF for b in raw[1000:1010])
    Path(dst).write_bytes(bytes(raw))
    return bytes(raw)


# --------------------------------------------------------------------------- loading

def test_shared_files_have_canonical_md5(shared):
    for f in TEST_FILES:
        assert _md5(shared / "mnist" / f) == MNIST_MD5[f]


def test_load_test_split(shared):
    x, y = load_mnist("test", shared)
    assert x.shape == (10000, 784) and x.dtype == np.float64
    assert y.shape == (10000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == TEST_COUNTS
    assert not x.flags.writeable and not y.flags.writeable  # shared cache


def test_load_from_env_var_and_from_mnist_folder(shared, monkeypatch):
    monkeypatch.setenv("HGREF_DATA", str(shared))
    x, y = load_mnist()
    x2, y2 = load_mnist(data_dir=shared / "mnist")  # data_dir may be the mnist folder itself
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert load_mnist()[0] is x  # cached


def test_unknown_split_names_accepted_values(shared):
    with pytest.raises(ValueError, match="split.*'train', 'test'"):
        load_mnist("val", shared)


def test_missing_directory_names_file_and_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(MissingDataError) as err:
        load_mnist("test", missing)
    assert isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    for part in (TEST_FILES[0], str(missing), MNIST_MD5[TEST_FILES[0]], "HGREF_DATA", "data_dir=",
                 "download_mnist"):
        assert part in msg


def test_default_directory_is_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("HGREF_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"\.hgref"):
        load_mnist()


def test_missing_labels_file_is_named(shared, tmp_path):
    _copy_test_files(shared, tmp_path / "mnist", files=TEST_FILES[:1])
    with pytest.raises(FileNotFoundError, match=TEST_FILES[1]):
        load_mnist("test", tmp_path)


def test_train_split_missing_is_named(shared, tmp_path):
    _copy_test_files(shared, tmp_path / "mnist")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        load_mnist("train", tmp_path)


def test_corrupt_file_names_both_md5_and_is_left_untouched(shared, tmp_path):
    folder = _copy_test_files(shared, tmp_path / "mnist")
    bad = _corrupt_copy(shared / "mnist" / TEST_FILES[0], folder / TEST_FILES[0])
    with pytest.raises(DataError) as err:
        load_mnist("test", tmp_path)
    assert isinstance(err.value, ValueError)
    msg = str(err.value)
    assert MNIST_MD5[TEST_FILES[0]] in msg and hashlib.md5(bad).hexdigest() in msg
    assert str(folder / TEST_FILES[0]) in msg and "download_mnist" in msg
    assert (folder / TEST_FILES[0]).read_bytes() == bad


# --------------------------------------------------------------------------- IDX headers

def _idx(dims, payload, type_code=0x08, magic=b"\x00\x00"):
    header = magic + bytes([type_code, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()
    return header + bytes(payload)


def test_parse_idx_roundtrip():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(_idx(arr.shape, arr.tobytes()), ndim=3), arr)


@pytest.mark.parametrize("raw, match", [
    (_idx((3,), b"abc", magic=b"\x01\x00"), "magic"),
    (_idx((3,), b"abc", type_code=0x0D), "type code"),
    (_idx((3, 1), b"abc"), "dimension"),
    (_idx((4,), b"abc"), "payload"),
    (b"\x00\x00\x08\x01\x00", "truncated"),
    (b"\x00", "magic"),
])
def test_parse_idx_rejects_bad_headers(raw, match):
    with pytest.raises(DataError, match=match):
        parse_idx(raw, ndim=1)


def test_loader_rejects_bad_header_behind_valid_md5(shared, tmp_path, monkeypatch):
    folder = _copy_test_files(shared, tmp_path / "mnist")
    images = folder / TEST_FILES[0]
    images.write_bytes(gzip.compress(_idx((10000, 28, 27), bytes(10000 * 28 * 27))))
    monkeypatch.setitem(MNIST_MD5, TEST_FILES[0], _md5(images))  # pretend it is canonical
    with pytest.raises(DataError, match=r"28, 27"):
        load_mnist("test", tmp_path)


# --------------------------------------------------------------------------- downloading

@pytest.fixture
def mirror(shared, tmp_path):
    return _copy_test_files(shared, tmp_path / "mirror")


def _uri(folder):
    return folder.as_uri() + "/"


def test_download_through_file_mirror(shared, mirror, tmp_path):
    dest = tmp_path / "dest"
    paths = download_mnist(dest, splits=("test",), mirrors=[_uri(tmp_path / "absent"), _uri(mirror)])
    assert sorted(os.listdir(dest / "mnist")) == sorted(TEST_FILES)  # no temp files left
    for f in TEST_FILES:
        assert paths[f] == dest / "mnist" / f and _md5(paths[f]) == MNIST_MD5[f]
    x, y = load_mnist("test", dest)
    assert np.bincount(y).tolist() == TEST_COUNTS and x.shape == (10000, 784)
    # present files are kept, not fetched again: a dead mirror is fine now
    stamps = [os.stat(paths[f]).st_mtime_ns for f in TEST_FILES]
    download_mnist(dest, splits="test", mirrors=_uri(tmp_path / "absent"))
    assert [os.stat(paths[f]).st_mtime_ns for f in TEST_FILES] == stamps


def test_download_into_mnist_folder_itself(mirror, tmp_path):
    download_mnist(tmp_path / "mnist", splits=("test",), mirrors=[_uri(mirror)])
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(TEST_FILES)


def test_download_rejects_bad_checksum_and_leaves_nothing(mirror, tmp_path):
    _corrupt_copy(mirror / TEST_FILES[0], mirror / TEST_FILES[0])
    dest = tmp_path / "dest"
    with pytest.raises(DataError) as err:
        download_mnist(dest, splits=("test",), mirrors=[_uri(mirror)])
    msg = str(err.value)
    assert TEST_FILES[0] in msg and MNIST_MD5[TEST_FILES[0]] in msg and _md5(mirror / TEST_FILES[0]) in msg
    assert not dest.exists()                 # the folders it created are removed again


def test_download_falls_back_to_next_mirror(shared, mirror, tmp_path):
    bad = _copy_test_files(shared, tmp_path / "bad")
    _corrupt_copy(bad / TEST_FILES[0], bad / TEST_FILES[0])
    dest = tmp_path / "dest"
    download_mnist(dest, splits=("test",), mirrors=[_uri(bad), _uri(mirror)])
    assert sorted(os.listdir(dest / "mnist")) == sorted(TEST_FILES)
    assert _md5(dest / "mnist" / TEST_FILES[0]) == MNIST_MD5[TEST_FILES[0]]


def test_download_all_mirrors_fail(tmp_path):
    urls = [_uri(tmp_path / "a"), _uri(tmp_path / "b")]
    with pytest.raises(DataError) as err:
        download_mnist(tmp_path / "dest", splits=("test",), mirrors=urls)
    assert all(u + TEST_FILES[0] in str(err.value) for u in urls)
    assert not (tmp_path / "dest").exists()


def test_failed_download_keeps_folders_it_did_not_create(tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "full" / "mnist").mkdir(parents=True)
    (tmp_path / "full" / "mnist" / "notes.txt").write_text("mine")
    for dest in (tmp_path / "dest", tmp_path / "full"):
        with pytest.raises(DataError):
            download_mnist(dest, splits="test", mirrors=_uri(tmp_path / "absent"))
    assert sorted(os.listdir(tmp_path)) == ["dest", "full"] and os.listdir(tmp_path / "dest") == []
    assert os.listdir(tmp_path / "full" / "mnist") == ["notes.txt"]


def test_ensure_mnist_uses_present_files_and_downloads_missing_ones(shared, mirror, tmp_path):
    dead = _uri(tmp_path / "absent")
    assert ensure_mnist("test", shared, mirrors=dead) == shared          # present: no download
    with pytest.raises(MissingDataError, match="HGREF_DATA"):
        ensure_mnist("test", tmp_path / "cache", download=False)
    assert not (tmp_path / "cache").exists()
    assert ensure_mnist("test", tmp_path / "cache", mirrors=[dead, _uri(mirror)]) == tmp_path / "cache"
    assert sorted(os.listdir(tmp_path / "cache" / "mnist")) == sorted(TEST_FILES)
    assert load_mnist("test", tmp_path / "cache")[0].shape == (10000, 784)
    with pytest.raises(DataError, match="every mirror failed"):
        ensure_mnist("train", tmp_path / "cache", mirrors=dead)
    assert sorted(os.listdir(tmp_path / "cache" / "mnist")) == sorted(TEST_FILES)


def test_download_never_overwrites_a_bad_user_file(shared, mirror, tmp_path):
    folder = tmp_path / "dest" / "mnist"
    folder.mkdir(parents=True)
    bad = _corrupt_copy(shared / "mnist" / TEST_FILES[0], folder / TEST_FILES[0])
    with pytest.raises(DataError, match=MNIST_MD5[TEST_FILES[0]]):
        download_mnist(tmp_path / "dest", splits=("test",), mirrors=[_uri(mirror)])
    assert (folder / TEST_FILES[0]).read_bytes() == bad


def test_download_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="splits"):
        download_mnist(tmp_path, splits=("val",), mirrors=[_uri(tmp_path)])
    with pytest.raises(ValueError, match="mirrors"):
        download_mnist(tmp_path, splits=("test",), mirrors=[])


def test_default_mirrors_are_https():
    assert data.MIRRORS and all(m.startswith("https://") and m.endswith("/") for m in data.MIRRORS)


# --------------------------------------------------------------------------- splits

def test_split_indices_disjoint_sized_deterministic():
    parts = split_indices(10000)
    assert [len(p) for p in parts] == [7000, 700, 2300]
    merged = np.concatenate(parts)
    assert len(np.unique(merged)) == merged.size and merged.min() >= 0 and merged.max() < 10000
    for a, b in zip(parts, split_indices(10000, seed=0)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(parts[0], split_indices(10000, seed=1)[0])


def test_split_indices_smaller_than_n():
    parts = split_indices(50, (10, 5), seed=3)
    assert [len(p) for p in parts] == [10, 5]
    assert len(set(np.concatenate(parts).tolist())) == 15


def test_split_indices_errors():
    with pytest.raises(ValueError, match=r"sizes.*n=100"):
        split_indices(100, (60, 50))
    with pytest.raises(ValueError, match=r"sizes\[1\]"):
        split_indices(100, (60, 0))
    with pytest.raises(TypeError, match="seed"):
        split_indices(100, (10,), seed=0.5)


# --------------------------------------------------------------------------- the suite's data source

_INNER = '''
from hgref import problems

def test_needs_mnist():
    assert problems.mnist_logreg(sizes=(100, 10, 10)).dim == 7850

def test_subprocess_needs_mnist(mnist_data):
    assert (mnist_data / "mnist").is_dir()

def test_needs_nothing():
    assert problems.beale().dim == 2
'''


def _inner_suite(tmp_path, **env):
    """Run a three-test suite under the repository's root conftest, as a new user would."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    shutil.copyfile(ROOT / "conftest.py", project / "conftest.py")
    (project / "test_inner.py").write_text(_INNER)
    base = {k: v for k, v in os.environ.items() if k not in ("HGREF_DATA", "HGREF_MNIST_MIRRORS")}
    base.update(PYTHONPATH=str(ROOT), HOME=str(tmp_path / "home"), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "test_inner.py"], cwd=project, env=base, capture_output=True, text=True)


def test_suite_uses_a_configured_folder_and_never_downloads(shared, tmp_path):
    res = _inner_suite(tmp_path, HGREF_DATA=str(shared), HGREF_MNIST_MIRRORS=_uri(tmp_path / "absent"))
    assert res.returncode == 0 and "3 passed" in res.stdout, res.stdout + res.stderr
    assert not (tmp_path / "home" / ".hgref").exists()


def test_suite_downloads_once_into_the_user_cache(mirror, tmp_path):
    res = _inner_suite(tmp_path, HGREF_MNIST_MIRRORS=f"{_uri(tmp_path / 'absent')} {_uri(mirror)}")
    assert res.returncode == 0 and "3 passed" in res.stdout, res.stdout + res.stderr
    cache = tmp_path / "home" / ".hgref" / "data" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(TEST_FILES)
    stamps = [os.stat(cache / f).st_mtime_ns for f in TEST_FILES]
    res = _inner_suite(tmp_path, HGREF_MNIST_MIRRORS=_uri(tmp_path / "absent"))   # offline now: cached
    assert res.returncode == 0 and "3 passed" in res.stdout, res.stdout + res.stderr
    assert [os.stat(cache / f).st_mtime_ns for f in TEST_FILES] == stamps


def test_suite_offline_skips_mnist_tests_with_one_reason(tmp_path):
    res = _inner_suite(tmp_path, HGREF_MNIST_MIRRORS=_uri(tmp_path / "absent"))
    out = res.stdout
    assert res.returncode == 0 and "1 passed, 2 skipped" in out, out + res.stderr
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 1 and skips[0].startswith("SKIPPED [2] conftest.py:"), out
    for part in ("could not be downloaded", "HGREF_DATA=DIR", "ensure_mnist", TEST_FILES[0]):
        assert part in skips[0]
    assert "Traceback" not in out and "KeyError" not in out and "PYTHONPATH" not in out
    assert not (tmp_path / "home" / ".hgref").exists()     # no empty cache folder left behind
