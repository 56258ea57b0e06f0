"""The command line: help, flag validation, output-folder errors, resume after SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hgref.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("toy", "schedules", "hd"):
        assert command in out


@pytest.mark.parametrize("argv, flag, valid", [
    (["toy", "--problems", "rosenbrock"], "--problems", "beale, bukin"),
    (["toy", "--methods", "hd,adam"], "--methods", "hd, rtho, marthe"),
    (["toy", "--formats", "gif"], "--formats", "png, svg, pdf"),
    (["toy", "--steps", "0"], "--steps", "> 0"),
    (["schedules", "--init", "zeros"], "--init", "glorot"),
    (["schedules", "--methods", "sgdr"], "--methods", "constant, hd, rtho, marthe_mu, marthe_hmu, marthe, lrs_opt"),
    (["schedules", "--betas", "-1"], "--betas", "> 0"),
    (["hd", "--ops", "rmsprop"], "--ops", "sgd, sgdn, adam"),
    (["hd", "--lops", "momentum"], "--lops", "none, sgd, sgdn, adam"),
    (["hd", "--seeds", "x"], "--seeds", "integer"),
    (["hd", "--jobs", "0"], "--jobs", "> 0"),
    (["schedules", "--tiny", "--paper-scale"], "--paper-scale", "not allowed"),
])
def test_bad_flags_name_the_flag_and_valid_values(capsys, argv, flag, valid):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and valid in err


def test_toy_rejects_several_seeds(tmp_path, capsys):
    assert main(["toy", "--out", str(tmp_path), "--seeds", "0", "1", "--quiet"]) == 2
    assert "deterministic" in capsys.readouterr().err


def test_unwritable_out_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert main(["toy", "--out", str(blocker / "results"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "hgref toy: error" in err and "cannot be created" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]


_TOY = ["toy", "--problems", "bukin", "--methods", "hd", "--steps", "100", "--jobs", "1", "--quiet"]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")


def test_resume_after_sigkill_gives_identical_json(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([sys.executable, "-m", "hgref.cli", *_TOY, "--out", str(ref)], check=True, env=_env(), cwd=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "hgref.cli", *_TOY, "--out", str(killed)], env=_env(), cwd=ROOT)
    runs = killed / "toy" / "runs"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(runs.glob("*.json"))) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(runs.glob("*.json")))
    assert 2 <= done < 7, "the kill should land mid-table"
    assert not (killed / "toy" / "toy.json").exists()
    subprocess.run([sys.executable, "-m", "hgref.cli", *_TOY, "--out", str(killed)], check=True, env=_env(), cwd=ROOT)
    assert (killed / "toy" / "toy.json").read_bytes() == (ref / "toy" / "toy.json").read_bytes()
    assert not list(runs.glob(".*.tmp"))
    data = json.loads((ref / "toy" / "toy.json").read_text())
    assert len(data["runs"]) == 7 and data["hgref_version"]
